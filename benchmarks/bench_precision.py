"""What bf16 (and compiling) changes in the results, with the full-size networks of the speed benchmarks.

Official channel settings with random weights (the generator as in ``bench_generator.py``, open_clip's ViT-B-32),
compared with fp32 on the same inputs:

- synthesis: 8-bit PNG levels of difference (mean, 99.99th percentile, max), for ``--images`` pictures drawn as one
  batch and one at a time, on the raw random-weight pictures
  (std about 2, mostly clipped) and on the same generator with its ToRGB layers scaled to pictures of std 0.5,
  the range of a trained generator's (what the acceptance of 'within 4 levels' is about);
- gradient: cosine of the W+ gradients of a CLIP loss;
- an edit: after ``--steps`` StyleCLIP steps (150 by default) from each of ``--seeds``, the relative L2 distance of
  the bf16 latent from the fp32 one and the relative difference of the CLIP-similarity gains (each, and of the mean),
  on the generator with pictures in a trained generator's range and (``--edit-on raw``) on the raw one, whose
  mostly clipped pictures pass gradients through few pixels and make an edit's path far more sensitive to rounding;
  with ``--floor`` also fp32 computed another way (the batch drawn whole instead of sample by sample: rounding
  differences of 1e-6), which shows how far the edit itself amplifies rounding (the floor any precision meets).

    python benchmarks/bench_precision.py --res 512              # the acceptance figures (minutes on a CPU)
    python benchmarks/bench_precision.py --res 256 --steps 20   # a quick look
    python benchmarks/bench_precision.py --res 512 --compile    # the compiled networks too
    python benchmarks/bench_precision.py --res 512 --seeds 0 1 2 3 --steps 150   # the mean of several edits
    python benchmarks/bench_precision.py --res 512 --seeds 0 1 2 3 --floor       # and fp32's own spread
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

import styleclip
from bench_generator import build
from report import RESULTS, write_report
from styleclip.guidance.clip import ClipGuide
from styleclip.io.images import to_uint8
from styleclip.utils.compiling import compiling
from styleclip.utils.devices import resolve_device
from styleclip.utils.precision import computing_in

PROMPT = "a really happy dog face with mouth open"


def levels(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """PNG-level differences of two ``[N, 3, H, W]`` pictures in [-1, 1]."""
    d = np.abs(to_uint8(a).astype(np.int16) - to_uint8(b).astype(np.int16))
    return {"mean": float(d.mean()), "p99_99": float(np.percentile(d, 99.99)), "max": int(d.max())}


def scale_to_pictures(G, ws: torch.Tensor, std: float = 0.5) -> None:
    """Scale the ToRGB layers until the pictures have the standard deviation of a trained generator's."""
    with torch.no_grad():
        for _ in range(3):
            k = std / float(G.synthesize(ws, precision="fp32").std())
            for name, p in G.named_parameters():
                if "torgb" in name:
                    p.data.mul_(k)


def synthesis_rows(G, ws: torch.Tensor, variants: list[tuple[str, str, bool]]) -> list[dict]:
    rows = []
    for picture in ("raw", "picture range"):
        if picture == "picture range":
            scale_to_pictures(G, ws)
        with torch.no_grad():
            ref = G.synthesize(ws, precision="fp32")
            for (name, precision, compiled), batch in itertools.product(variants, (len(ws), 1)):
                # a batch, and one picture at a time (edits, generate and the UI): each takes its own kernels
                with computing_in(precision), compiling(compiled):
                    img = torch.cat([G.synthesize(ws[i : i + batch]) for i in range(0, len(ws), batch)])
                rows.append({"check": "synthesis", "pictures": picture, "variant": name, "batch": batch,
                             "std": float(ref.std()), "levels": levels(img, ref)})  # fmt: skip
    return rows


def gradient_rows(G, guide: ClipGuide, ws: torch.Tensor, variants: list[tuple[str, str, bool]]) -> list[dict]:
    text = guide.encode_text(PROMPT)
    grads = {}
    for name, precision, compiled in [("fp32", "fp32", False), *variants]:
        w = ws.clone().requires_grad_(True)
        with computing_in(precision), compiling(compiled):
            emb = guide.encode_image(G.synthesize(w))
        (1 - torch.nn.functional.cosine_similarity(emb.float(), text.float())).sum().backward()
        grads[name] = w.grad.flatten()
    ref = grads.pop("fp32")
    return [
        {"check": "W+ gradient", "variant": name, "cosine": float(torch.nn.functional.cosine_similarity(g, ref, dim=0))}
        for name, g in grads.items()
    ]


def edit_rows(
    G,
    guide: ClipGuide,
    steps: int,
    seeds: list[int],
    variants: list[tuple[str, str, bool]],
    floor: bool = False,
    pictures: str = "raw",
) -> list[dict]:
    """One batched edit of ``seeds`` per variant; per-seed latent distances and gains, and their means."""
    results = {}
    # 'fp32 whole batch': the same fp32 edit with the batch drawn whole (split_resolution 0), other roundings
    others = [("fp32 whole batch", "fp32", False)] if floor and len(seeds) > 1 else []
    for name, precision, compiled in [("fp32", "fp32", False), *others, *variants]:
        t0 = time.perf_counter()
        split = G.synthesis.split_resolution
        G.synthesis.split_resolution = 0 if name == "fp32 whole batch" else split
        try:
            results[name] = styleclip.optimize(G, PROMPT, guide, seeds=seeds, steps=steps, precision=precision,
                                               compile=compiled, progress=False)  # fmt: skip
        finally:
            G.synthesis.split_resolution = split
        print(f"  edit {name} ({pictures}): {len(seeds)} seeds x {steps} steps in {time.perf_counter() - t0:.0f} s",
              flush=True)  # fmt: skip
    ref = results.pop("fp32")
    rows = []
    for name, runs in results.items():
        rel = [float((r.latent - a.latent).norm() / a.latent.norm()) for r, a in zip(runs, ref, strict=True)]
        gains = [r.clip_after - r.clip_before for r in runs]
        gains32 = [a.clip_after - a.clip_before for a in ref]
        rows.append({
            "check": "edit", "pictures": pictures, "variant": name, "steps": steps, "seeds": seeds,
            "latent_relative_l2": rel, "clip_gain": gains, "clip_gain_fp32": gains32,
            "clip_gain_relative_difference": [abs(g - f) / abs(f) for g, f in zip(gains, gains32, strict=True)],
            "mean_clip_gain_relative_difference": abs(np.mean(gains) - np.mean(gains32)) / abs(np.mean(gains32)),
        })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, default=512)
    p.add_argument("--steps", type=int, default=150, help="steps of the edit (0: skip it)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="sources of the edit, optimised as one batch")
    p.add_argument("--images", type=int, default=2, help="pictures compared in the synthesis check")
    p.add_argument("--clip", default="ViT-B-32", help="open_clip architecture (random weights)")
    p.add_argument("--compile", action="store_true", help="also compare bf16 with torch.compile")
    p.add_argument(
        "--edit-on",
        nargs="+",
        choices=["range", "raw"],
        default=["range", "raw"],
        help="edit the generator scaled to pictures in a trained generator's range, the raw one, or both",
    )
    p.add_argument("--floor", action="store_true", help="also the edit in fp32 with other roundings (several seeds)")
    p.add_argument("--device", default=None)
    p.add_argument("--json", type=Path, default=None, help="output file (default benchmarks/results/...)")
    args = p.parse_args(argv)

    import open_clip

    device = resolve_device(args.device)
    torch.manual_seed(0)
    G = build(args.res, device)
    model = open_clip.create_model(args.clip, pretrained=None).to(device).eval().requires_grad_(False)
    guide = ClipGuide(model, open_clip.get_tokenizer(args.clip), args.clip)
    low = "fp16" if device.type in ("cuda", "mps") and not torch.cuda.is_bf16_supported() else "bf16"
    variants = [(low, low, False)] + ([(f"{low} compiled", low, True)] if args.compile else [])
    ws = G.mapping_forward(G.z_from_seed(list(range(args.images))), truncation_psi=0.7)

    rows = []
    if args.steps > 0 and "raw" in args.edit_on:  # first, while the ToRGB layers are as built
        rows += edit_rows(G, guide, args.steps, args.seeds, variants, args.floor, "raw")
    rows += gradient_rows(G, guide, ws[:1], variants)
    rows += synthesis_rows(G, ws, variants)  # leaves the ToRGB layers scaled to the picture range
    if args.steps > 0 and "range" in args.edit_on:
        rows += edit_rows(G, guide, args.steps, args.seeds, variants, args.floor, "picture range")
    for row in rows:
        print(json.dumps(row))
    path = args.json or RESULTS / f"bench_precision-{device.type}-{args.res}.json"
    write_report("precision", device, rows, path, resolution=args.res, clip=args.clip)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
