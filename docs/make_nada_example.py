"""Draw docs/nada-samples.png: the sample grid of a short StyleGAN-NADA adaptation made by the TESTS' TINY MODELS.

The generator and CLIP are the random-weight tiny networks of tests/conftest.py, so the picture shows what an
adaptation writes (rows of base | adapted pictures of the same latents), not what a real adaptation looks like.
A caption saying so is drawn into the picture. Nothing is downloaded.

    .venv/bin/python docs/make_nada_example.py            # writes docs/nada-samples.png (under a minute on a CPU)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import styleclip  # noqa: E402
from styleclip.guidance.clip import load_clip  # noqa: E402

from conftest import tiny_clip, varied_generator  # noqa: E402

CAPTION = "made by the tests' random-weight tiny networks (32-px generator, tiny CLIP): not a real adaptation"


def main() -> int:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        clip_file = Path(tmp) / "tiny-clip.pt"
        torch.save(tiny_clip().state_dict(), clip_file)
        guide = load_clip(clip_file, device="cpu", precision="fp32")
        result = styleclip.adapt(
            varied_generator(), source="photo", target="sketch", steps=40, clips=[guide, guide], samples=3,
            sample_every=40, precision="fp32", outdir=Path(tmp) / "run", device="cpu", progress=False,
        )  # fmt: skip
        grid = Image.open(Path(tmp) / "run" / "samples" / f"step-{result.steps_done:06d}.png").convert("RGB")
    grid = grid.resize((grid.width * 4, grid.height * 4), Image.NEAREST)
    canvas = Image.new("RGB", (max(grid.width, 560), grid.height + 22), "white")
    canvas.paste(grid, ((canvas.width - grid.width) // 2, 0))
    ImageDraw.Draw(canvas).text((6, grid.height + 5), CAPTION, fill="black")
    out = ROOT / "docs" / "nada-samples.png"
    canvas.save(out, optimize=True)
    print(f"wrote {out} ({canvas.width}x{canvas.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
