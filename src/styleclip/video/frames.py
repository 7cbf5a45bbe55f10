"""Video in and out: frames stream from the file and to the encoder through the ffmpeg binary the ``imageio-ffmpeg``
wheel carries (no system ffmpeg), so a long clip never sits in memory; the source's audio is copied into the result.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError

MAX_FRAMES = 3000  # two minutes at 25 fps; more only with --max-frames (each frame is inverted and drawn)
MAX_SIDE = 4096  # 4K: larger frames are refused before any is decoded
VFR_TOLERANCE = 0.05  # frames per second of content that differ this much from the stream's rate mean a variable rate


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds: ``frames`` counted by decoding, ``fps`` the stream's (nominal) rate, ``size``
    ``(width, height)`` as displayed, ``audio`` whether it has a sound track, ``variable`` whether its frames come at
    a variable rate (they are then re-timed at ``fps``)."""

    path: Path
    frames: int
    fps: float
    size: tuple[int, int]
    duration: float
    audio: bool
    variable: bool
    rotate: int = 0


def _ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UsageError("video needs the imageio-ffmpeg package: pip install imageio-ffmpeg") from None
    return imageio_ffmpeg


def probe(path: str | Path, max_frames: int | None = MAX_FRAMES) -> VideoInfo:
    """Read a video's header and count its frames; one-line errors for a missing file, a file that is no video, a
    frame size above 4K, or more than ``max_frames`` frames (None: no limit)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"{str(path)[:200]}: no such video file")
    ffmpeg = _ffmpeg()
    try:
        reader = ffmpeg.read_frames(str(path))
        meta = next(reader)
        reader.close()
    except (RuntimeError, OSError, StopIteration) as exc:
        raise UsageError(f"{path}: not a video ffmpeg can read ({_first(exc)})") from None
    size = tuple(int(v) for v in meta.get("size") or (0, 0))
    fps = float(meta.get("fps") or 0)
    if min(size) <= 0 or not fps > 0:
        raise UsageError(f"{path}: no video stream (or no frame rate) in it")
    if max(size) > MAX_SIDE:
        raise UsageError(f"{path}: frames of {size[0]}x{size[1]} px; resize the video to at most {MAX_SIDE} px a side")
    try:
        frames, seconds = ffmpeg.count_frames_and_secs(str(path))
    except (RuntimeError, OSError, ValueError) as exc:
        raise UsageError(f"{path}: its frames could not be counted ({_first(exc)})") from None
    if frames < 1:
        raise UsageError(f"{path}: the video has no frames")
    if max_frames is not None and frames > max_frames:
        raise UsageError(
            f"{path}: {frames} frames; styleclip inverts and draws every frame, so videos above {max_frames} frames "
            "are refused: trim it, or raise the limit with --max-frames"
        )
    duration = float(meta.get("duration") or seconds or frames / fps)
    variable = duration > 0 and abs(frames / duration - fps) > VFR_TOLERANCE * fps
    rotate = int(meta.get("rotate") or 0)
    return VideoInfo(path, int(frames), fps, size, duration, bool(meta.get("audio_codec")), variable, rotate)


def _first(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:160]


def read_frames(info: VideoInfo, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, [H, W, 3] uint8)`` for every frame from ``start`` on, decoded one at a time."""
    ffmpeg = _ffmpeg()
    reader = ffmpeg.read_frames(str(info.path))
    meta = next(reader)
    w, h = meta["size"]
    try:
        for index, buf in enumerate(reader):
            if index >= start:
                yield index, np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    finally:
        reader.close()


def add_audio(video: Path, source: VideoInfo) -> bool:
    """Copy ``source``'s sound track into ``video`` (in place, through a fresh temporary name); False when the source
    has none. The picture stream is copied, never re-encoded, and keeps every frame (a shorter sound track ends early;
    a longer one is cut at the picture's length)."""
    if not source.audio:
        return False
    exe = _ffmpeg().get_ffmpeg_exe()
    fd, tmp = tempfile.mkstemp(prefix=f".{video.stem[:200]}.", suffix=".audio.mp4", dir=video.parent)
    os.close(fd)
    try:
        cmd = [exe, "-y", "-loglevel", "error", "-i", str(video), "-i", str(source.path), "-map", "0:v:0",
               "-map", "1:a:0?", "-c:v", "copy", "-c:a", "aac", "-t", f"{source.frames / source.fps:.6f}", tmp]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            raise UsageError(f"{source.path}: its sound could not be copied ({_first(RuntimeError(done.stderr))})")
        os.chmod(tmp, 0o644)
        os.replace(tmp, video)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return True
