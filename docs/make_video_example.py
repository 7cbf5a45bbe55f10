"""Draw docs/video-example.gif: source | edited, a clip edited by ``styleclip video`` with the TESTS' TINY MODELS.

The clip is the tests' synthetic one (scikit-image's astronaut panned and zoomed over 24 frames); the generator, the
e4e encoder and the mapper are random-weight tiny networks (tests/test_video.py), so the GIF shows what the pipeline
does (the face found and followed in every frame, an edit drawn at 32 px and stitched back through the inverse
alignment with a feathered mask), not what a real edit looks like. A caption saying so is drawn into every frame.

    .venv/bin/python docs/make_video_example.py           # writes docs/video-example.gif (about a minute on a CPU)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from styleclip.edits.mapper import MapperEdit  # noqa: E402
from styleclip.io.video import VideoWriter, read_video  # noqa: E402
from styleclip.nets.encoders import IRSEEncoder  # noqa: E402
from styleclip.nets.mapper import LatentMapper, MapperConfig  # noqa: E402
from styleclip.video import edit_video  # noqa: E402

from test_encoders import TINY_IRSE, tiny_generator_w64, write_checkpoint  # noqa: E402
from test_video import FPS, synthetic_frames, write_clip  # noqa: E402

CAPTION = "source | edited: the tests' random-weight tiny networks, not a real edit"


def main() -> int:
    torch.set_num_threads(1)
    G = tiny_generator_w64(seed=3)
    G.meta["domain"] = "face"
    torch.manual_seed(0)
    mapper = LatentMapper(MapperConfig(w_dim=G.w_dim, num_ws=G.num_ws, groups=("coarse", "medium")))
    with torch.no_grad():
        for p in mapper.parameters():
            p.mul_(3)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        encoder = write_checkpoint(folder / "e4e.pt", IRSEEncoder(G.num_ws, 3, True, TINY_IRSE, stem=16), G)
        clip = write_clip(folder / "clip.mp4", synthetic_frames(), audio=False)
        result = edit_video(clip, G, MapperEdit(mapper, 1.0), folder / "out", method="e4e", encoder=encoder)
        frames = read_video(result.comparison)
    out = ROOT / "docs" / "video-example.gif"
    with VideoWriter(out, fps=FPS / 2) as gif:
        for frame in frames[::2]:  # every other frame: half the file, the same motion
            im = Image.fromarray(frame).resize((480, 180), Image.Resampling.LANCZOS)
            canvas = Image.new("RGB", (im.width, im.height + 14), (255, 255, 255))
            canvas.paste(im, (0, 14))
            ImageDraw.Draw(canvas).text((3, 1), CAPTION, fill=(0, 0, 0))
            gif.append(np.asarray(canvas))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
