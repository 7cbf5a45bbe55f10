"""Frames to video: MP4 through the ffmpeg binary that the ``imageio-ffmpeg`` wheel carries (no system
ffmpeg needed), GIF through Pillow. Frames stream to the encoder, so a long trajectory never sits in memory.
Files appear under their final name only once complete.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UsageError

FORMATS = ("mp4", "gif")


class VideoWriter:
    """Append ``[H, W, 3]`` uint8 frames; :meth:`close` finishes the file (use as a context manager).

    Args:
        path: ``.mp4`` or ``.gif``.
        fps: frames per second.
        quality: MP4 quality 0-10 (imageio-ffmpeg's scale; 8 is visually lossless for these images).
    """

    def __init__(self, path: str | Path, fps: float = 15.0, quality: float = 8.0) -> None:
        self.path = Path(path)
        self.format = self.path.suffix.lower().lstrip(".")
        if self.format not in FORMATS:
            raise UsageError(f"{self.path}: video must be .mp4 or .gif")
        if fps <= 0:
            raise UsageError(f"fps must be positive, got {fps}")
        self.fps, self.quality = float(fps), float(quality)
        self._tmp: Path | None = None  # made with the first frame (keeping the extension the encoder reads)
        self._encoder = None
        self._gif: list[Image.Image] = []
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def append(self, frame: np.ndarray) -> None:
        """Add one ``[H, W, 3]`` uint8 frame; every frame must have the first one's size."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise UsageError(f"video frames must be [H, W, 3] uint8, got {frame.shape} {frame.dtype}")
        size = (frame.shape[1], frame.shape[0])
        if self._size is None:
            self._size = size
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a fresh name made with O_EXCL: the encoder never writes through a link planted at a guessable name
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem[:200]}.", suffix=f".part{self.path.suffix}",
                                       dir=self.path.parent)  # fmt: skip
            os.close(fd)
            self._tmp = Path(tmp)
            if self.format == "mp4":
                self._encoder = _mp4_encoder(self._tmp, size, self.fps, self.quality)
        elif size != self._size:
            raise UsageError(f"frame size {size} differs from the video's {self._size}")
        if self._encoder is not None:
            self._encoder.send(np.ascontiguousarray(frame))
        else:
            self._gif.append(Image.fromarray(frame).quantize(colors=256, method=Image.Quantize.MEDIANCUT))
        self.frames += 1

    def close(self) -> Path | None:
        """Finish and rename into place; returns the path, or None when no frame was added."""
        try:
            if self._encoder is not None:
                self._encoder.close()
                self._encoder = None
            elif self._gif:
                duration = round(1000 / self.fps)
                first, rest = self._gif[0], self._gif[1:]
                first.save(self._tmp, save_all=True, append_images=rest, duration=duration, loop=0, optimize=False)
                self._gif = []
            else:
                return None
            from ..utils.files import NEW_FILE_MODE

            os.chmod(self._tmp, NEW_FILE_MODE)  # mkstemp made it private
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Stop and delete the partial file."""
        if self._encoder is not None:
            # The encoder may already be gone; the partial file is removed either way.
            with contextlib.suppress(Exception):
                self._encoder.close()
            self._encoder = None
        self._gif = []
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)


def _mp4_encoder(path: Path, size: tuple[int, int], fps: float, quality: float):
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UsageError("MP4 needs the imageio-ffmpeg package: pip install imageio-ffmpeg (or use --gif)") from None
    if size[0] % 2 or size[1] % 2:
        raise UsageError(f"MP4 (H.264, yuv420p) needs even frame sides, got {size[0]}x{size[1]}; use --gif")
    encoder = imageio_ffmpeg.write_frames(
        str(path),
        size,
        fps=fps,
        codec="libx264",
        quality=quality,
        pix_fmt_out="yuv420p",  # what every player decodes
        macro_block_size=2,  # our sides are even; never let ffmpeg rescale the frames
        ffmpeg_log_level="error",
    )
    encoder.send(None)  # start the generator
    return encoder


def read_video(path: str | Path) -> list[np.ndarray]:
    """Decode every frame of an MP4 or GIF as ``[H, W, 3]`` uint8 (used by the tests and for checking output)."""
    path = Path(path)
    if path.suffix.lower() == ".gif":
        frames = []
        with Image.open(path) as im:
            for k in range(getattr(im, "n_frames", 1)):
                im.seek(k)
                frames.append(np.asarray(im.convert("RGB")))
        return frames
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return [np.frombuffer(buf, np.uint8).reshape(h, w, 3) for buf in reader]
