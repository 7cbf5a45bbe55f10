"""The inversion methods side by side on the tests' photos: time and reconstruction quality of e4e, ReStyle-e4e,
HyperStyle, projection and projection + PTI, each through ``styleclip.invert``.

The networks are the tests' tiny random ones, written in the official checkpoint layouts and loaded through the
same loaders as the published files (the world ``tests/docs_world.py`` puts behind the catalogue names): a 32-px
StyleGAN2 with 64-wide W, e4e and ReStyle-e4e checkpoints, a HyperStyle checkpoint with its W encoder, a random
IR-SE50 ArcFace for the identity metric, and LPIPS with random calibration. Random weights: the figures show the
machinery (every method runs end to end, its cost, and that the metrics are measured the same way for all), not
the methods' real quality; with trained networks HyperStyle and PTI come close to the photo and e4e does not.

The photos: scikit-image's astronaut (the docs' ``me.jpg``; a face, so identity is measured), chelsea and coffee,
centre-cropped to the generator's 32 px. Seconds per photo are ``Inversion.seconds`` (crop and inversion) less the
time of its metrics (LPIPS, PSNR, MS-SSIM; measured again apart), after one untimed call of each method.

    python benchmarks/invert_methods.py [--project-steps 100] [--pti-steps 100] [--photos astronaut chelsea]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from PIL import Image

TESTS = Path(__file__).parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from report import RESULTS, write_report  # noqa: E402

LABEL = "random-weight tiny networks: these figures show the machinery, not the methods' real quality"
PHOTOS = {"astronaut": True, "chelsea": False, "coffee": False}  # name: a face (identity measured)


def build_world(folder: Path):
    """The tiny generator and every inversion model, written in the official layouts under ``folder`` and loaded
    back through styleclip's loaders, as a user's downloaded files would be."""
    from styleclip.guidance.identity import load_identity_loss
    from styleclip.inversion.encoders import load_encoder
    from styleclip.inversion.hyperstyle import load_hyperstyle

    from conftest import tiny_lpips_model
    from docs_world import _face_generator, _writers

    G = _face_generator()  # no domain: the photos are centre-cropped, and identity is measured apart
    writers = _writers(G)
    files = {}
    for name, fmt in [("e4e", "e4e"), ("restyle", "restyle-e4e"), ("hyperstyle", "hyperstyle"),
                      ("w_encoder", "w-encoder"), ("arcface", "arcface-ir-se50")]:  # fmt: skip
        files[name] = folder / f"{name}.pt"
        writers[fmt](files[name])
    return {
        "G": G,
        "e4e": load_encoder(files["e4e"]),
        "restyle": load_encoder(files["restyle"]),
        "hyperstyle": load_hyperstyle(files["hyperstyle"]),
        "w_encoder": load_encoder(files["w_encoder"]),
        "identity": load_identity_loss(files["arcface"]),
        "lpips": tiny_lpips_model(),
    }


def photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)())


def methods(world: dict, project_steps: int, pti_steps: int) -> dict[str, dict]:
    """``{label: styleclip.invert keyword arguments}``."""
    proj = f"projection, {project_steps} steps"
    return {
        "e4e": {"method": "e4e", "encoder": world["e4e"]},
        "ReStyle-e4e, 5 steps": {"method": "restyle", "encoder": world["restyle"], "steps": 5},
        "HyperStyle, W encoder + 5 passes": {
            "method": "hyperstyle", "hyperstyle": world["hyperstyle"], "encoder": world["w_encoder"], "steps": 5,
        },
        proj: {"method": "project", "steps": project_steps},
        # a fixed number of PTI steps: its early stop (LPIPS < 0.06) means nothing on a random LPIPS's scale
        f"{proj} + PTI, {pti_steps} steps": {
            "method": "project", "steps": project_steps, "pti": True, "pti_steps": pti_steps, "pti_stop": 0.0,
        },
    }  # fmt: skip


def invert_one(world: dict, img: Image.Image, face: bool, kwargs: dict) -> tuple[object, dict]:
    """One photo through ``styleclip.invert``; the row: seconds of the call, seconds of its metrics (measured again
    on the same pictures, so that the inversion's own time can be told apart), the metrics, identity for faces."""
    import time

    import styleclip
    from styleclip.inversion.invert import reconstruction_metrics

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inv = styleclip.invert(img, world["G"], align="center", lpips=world["lpips"], progress=False, **kwargs)
    t0 = time.perf_counter()
    reconstruction_metrics(inv.reconstruction, inv.target, world["lpips"])
    metrics_s = time.perf_counter() - t0
    identity = None
    if face:  # ArcFace's measure is a face's; taken outside the timed call, as ``invert`` does for face generators
        identity = reconstruction_metrics(inv.reconstruction, inv.target, None, world["identity"])["identity"]
    m = inv.metrics
    row = {"invert_seconds": inv.seconds, "metrics_seconds": metrics_s,
           "seconds": max(inv.seconds - metrics_s, 0.0), "lpips": m["lpips"], "psnr": m["psnr"],
           "ms_ssim": m["ms_ssim"], "identity": identity, "inverted_as": inv.method, "distance": inv.distance}  # fmt: skip
    return inv, row


def _fmt(value, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(rows: list[dict], photos: list[str], threads: int) -> str:
    labels = list(dict.fromkeys(r["method"] for r in rows))
    lines = [
        f"*{LABEL}.* Means over {len(photos)} photos ({', '.join(photos)}; scikit-image, centre-cropped to the tiny",
        "generator's 32 px; identity (ArcFace cosine) on the face, astronaut, only). Seconds: the `styleclip.invert`",
        f"call less its metrics. CPU, {threads} threads on a 2-core machine shared with other work: times are inflated",
        "and noisy. MS-SSIM at 32 px uses 2 of its 5 scales.",
        "",
        "| method | seconds per photo | LPIPS ↓ | PSNR (dB) ↑ | MS-SSIM ↑ | identity ↑ |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def mean(values):
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else None

    for label in labels:
        mine = [r for r in rows if r["method"] == label]
        lines.append(
            f"| {label} | {_fmt(mean(r['seconds'] for r in mine), 2)} | {_fmt(mean(r['lpips'] for r in mine), 3)} "
            f"| {_fmt(mean(r['psnr'] for r in mine), 2)} | {_fmt(mean(r['ms_ssim'] for r in mine), 3)} "
            f"| {_fmt(mean(r['identity'] for r in mine), 3)} |"
        )
    lines += ["", "Per photo (seconds: inversion + metrics):", ""]
    lines += [
        "| method | photo | seconds | LPIPS | PSNR (dB) | MS-SSIM | identity |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['photo']} | {r['seconds']:.2f} + {r['metrics_seconds']:.2f} "
            f"| {_fmt(r['lpips'], 3)} | {r['psnr']:.2f} "
            f"| {r['ms_ssim']:.3f} | {_fmt(r['identity'], 3)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", nargs="+", choices=list(PHOTOS), default=list(PHOTOS))
    p.add_argument("--project-steps", type=int, default=100)
    p.add_argument("--pti-steps", type=int, default=100)
    p.add_argument("--json", type=Path, default=RESULTS / "invert_methods-cpu.json")
    p.add_argument("--markdown", type=Path, default=RESULTS / "invert_methods-cpu.md")
    args = p.parse_args(argv)
    if args.project_steps < 1 or args.pti_steps < 1:
        p.error("--project-steps and --pti-steps must be at least 1")
    os.environ.setdefault("STYLECLIP_OFFLINE", "1")  # every model is written here; nothing is fetched
    import styleclip

    styleclip.keep_freed_memory(True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        world = build_world(Path(folder))
        pictures = {name: photo(name) for name in args.photos}
        for label, kwargs in methods(world, args.project_steps, args.pti_steps).items():
            if kwargs["method"] != "project":  # first calls pay one-off costs that a user's session pays once
                invert_one(world, pictures[args.photos[0]], PHOTOS[args.photos[0]], kwargs)
            for name, img in pictures.items():
                _, row = invert_one(world, img, PHOTOS[name], kwargs)
                rows.append({"method": label, "photo": name, **row})
                print(
                    f"{label:45s} {name:10s} {row['seconds']:7.2f} s (+{row['metrics_seconds']:.2f} s metrics)  "
                    f"LPIPS {_fmt(row['lpips'], 3)}  PSNR {row['psnr']:6.2f}  MS-SSIM {row['ms_ssim']:.3f}  "
                    f"identity {_fmt(row['identity'], 3)}",
                    flush=True,
                )
    table = markdown(rows, args.photos, torch.get_num_threads())
    print("\n" + table)
    write_report(
        "invert_methods", torch.device("cpu"), rows, args.json, label=LABEL, photos=args.photos,
        project_steps=args.project_steps, pti_steps=args.pti_steps, resolution=32, load=list(os.getloadavg()),
    )  # fmt: skip
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(table)
    print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
