"""Draw docs/benchmark-report.png: the top of a ``styleclip benchmark`` report made by the TESTS' TINY MODELS.

The generator, the guiding CLIP, the judge, the face parser and the Inception network are random-weight networks
in the official formats (tests/), so the page shows what a report holds, not how the methods compare. A banner
saying so is put on the page before the screenshot. Nothing is downloaded; Chromium is Debian's (apt install
chromium), driven by Playwright.

    .venv/bin/python docs/make_benchmark_example.py        # writes docs/benchmark-report.png (a few minutes on a CPU)
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from styleclip.cli.main import main as styleclip  # noqa: E402
from styleclip.hub.generators import save_generator  # noqa: E402

from conftest import another_tiny_clip, tiny_clip, varied_generator  # noqa: E402
from test_realism import write_random_inception  # noqa: E402
from test_video_masks import random_state  # noqa: E402

BANNER = ("Made by the tests' random-weight tiny networks (32-px generator, 2-layer CLIP, random Inception): the "
          "numbers and pictures say nothing about the methods.")  # fmt: skip
PRESET = """\
name: example-dogs
title: Three dog prompts (docs example)
source: docs/make_benchmark_example.py
domain: dog
generator: stylegan2-ada-tf:afhqdog
seeds: 0-3
prompts:
  - {target: a happy dog, neutral: a dog, attributes: [happy]}
  - {target: a dog with its mouth open, neutral: a dog, region: mouth, attributes: [mouth_open]}
  - {target: a dog with long fur, neutral: a dog, attributes: [fur_length]}
"""


def main() -> int:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gen = save_generator(varied_generator(), tmp / "tiny.safetensors")
        clip = tmp / "clip.pt"
        torch.save(tiny_clip().state_dict(), clip)
        judge = another_tiny_clip()
        torch.save(judge.state_dict(), tmp / "judge.pt")
        torch.save(random_state(), tmp / "79999_iter.pth")
        write_random_inception(tmp / "inception.pth")
        (tmp / "preset.yaml").write_text(PRESET)
        real = tmp / "real"
        real.mkdir()
        rng = np.random.default_rng(0)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(real / f"r{i}.png")
        out = tmp / "bench"
        status = styleclip([
            "benchmark", "--preset", str(tmp / "preset.yaml"), "--generator", str(gen), "--clip", str(clip),
            "--judge", str(tmp / "judge.pt"), "--device", "cpu", "--cache", str(tmp / "cache"), "--samples", "300",
            "--precompute", "--train-mappers", "20", "--steps", "20", "--spread-seeds", "16", "--lpips", "off",
            "--parser", str(tmp / "79999_iter.pth"), "--real", str(real), "--fid-weights", str(tmp / "inception.pth"),
            "--sweep", "directions=1,2,4,6", "--sweep", "optimize=0.06,0.015,0.004", "--sweep", "mapper=0.05,0.1,0.2",
            "--outdir", str(out),
        ])  # fmt: skip
        if status:
            return status
        page = out / "report.html"
        html = page.read_text(encoding="utf-8")
        banner = f'<p style="background:#fff3c4;padding:6px 10px;border:1px solid #e0c060">{BANNER}</p>'
        page.write_text(html.replace("</h1>", "</h1>" + banner, 1), encoding="utf-8")
        shot = tmp / "shot.png"
        _screenshot(page, shot)
        target = ROOT / "docs" / "benchmark-report.png"
        with Image.open(shot) as im:
            im = im.convert("RGB")
            im = im.crop((0, 0, im.width, min(im.height, 1500)))  # the facts, the table and the curves
            im.save(target, optimize=True)
        print(f"wrote {target} ({im.width}x{im.height})")
    return 0


def _screenshot(page: Path, shot: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("STYLECLIP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.goto(page.as_uri())
        tab.screenshot(path=str(shot), full_page=True)
        browser.close()


if __name__ == "__main__":
    raise SystemExit(main())
