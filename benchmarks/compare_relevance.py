"""How the gradient relevance estimate compares with StyleCLIP's finite-difference matrix on one generator.

Computes both matrices for the same generator, CLIP model and images, then reports the mean cosine of
corresponding rows and, for a few text directions, the cosine of the two Δs and the overlap (Jaccard index)
of the channels each selects at the same β - with their times. Random weights unless ``--generator``
and ``--clip`` name real ones (then the figures mean what they say for that pair).

    python benchmarks/compare_relevance.py --device cuda [--res 256] [--images 8]
    python benchmarks/compare_relevance.py --generator afhqdog --clip ViT-B-32:openai --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch

from bench_generator import build, sync
from report import RESULTS, write_report
from styleclip.edits.global_direction import style_direction
from styleclip.edits.relevance import relevance_matrix, relevance_matrix_gradient
from styleclip.guidance.clip import ClipGuide, load_clip
from styleclip.hub.generators import load_generator
from styleclip.stylespace import style_statistics
from styleclip.utils.devices import resolve_device

PROMPTS = [
    ("a dog", "a happy dog"),
    ("a face", "a smiling face"),
    ("a cat", "a cat with blue eyes"),
    ("a photo", "a sketch"),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generator", default=None, help="name or path (default: random weights at --res)")
    p.add_argument("--clip", default=None, help="CLIP name or path (default: random ViT-B-32)")
    p.add_argument("--res", type=int, default=256)
    p.add_argument("--images", type=int, default=8, help="images for both methods")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    if args.generator:
        G = load_generator(args.generator, device=device)
    else:
        G = build(args.res, device)  # initialised as NVIDIA initialises: styles vary as in training
    if args.clip:
        guide = load_clip(args.clip, device=device)
    else:
        import open_clip

        model = open_clip.create_model("ViT-B-32", pretrained=None).to(device)
        guide = ClipGuide(model, open_clip.get_tokenizer("ViT-B-32"), "ViT-B-32 (random)")
    stats = style_statistics(G, samples=10_000, cache=False)

    t0 = time.perf_counter()
    fd = relevance_matrix(G, guide, stats, images=args.images, batch_size=args.batch_size)
    sync(device)
    t_fd = time.perf_counter() - t0
    t0 = time.perf_counter()
    grad = relevance_matrix_gradient(G, guide, stats, images=args.images, batch_size=min(args.batch_size, 64))
    sync(device)
    t_grad = time.perf_counter() - t0
    live = (fd.matrix.norm(dim=1) > 0) & (grad.matrix.norm(dim=1) > 0)
    row_cos = (fd.matrix[live] * grad.matrix[live]).sum(1)
    print(f"{fd.layout.size} channels, {args.images} images: finite differences {t_fd:.1f} s, gradient {t_grad:.1f} s")
    print(f"row cosine fd vs gradient: mean {row_cos.mean():.3f}, median {row_cos.median():.3f}, "
          f"10th percentile {row_cos.quantile(0.1):.3f}")  # fmt: skip
    rows = [{"job": "matrices", "channels": fd.layout.size, "images": args.images, "fd_s": t_fd, "gradient_s": t_grad,
             "row_cos_mean": float(row_cos.mean()), "row_cos_median": float(row_cos.median())}]  # fmt: skip
    for neutral, target in PROMPTS:
        dt = guide.direction(target, neutral)
        a = style_direction(fd, dt, stats, beta=args.beta)
        b = style_direction(grad, dt, stats, beta=args.beta)
        cos = float(torch.nn.functional.cosine_similarity(a.delta, b.delta, dim=0))
        inter = int((a.mask & b.mask).sum())
        union = int((a.mask | b.mask).sum())
        print(f"{neutral!r} -> {target!r}: cos(Δs) {cos:.3f}, channels {a.channels_changed} vs "
              f"{b.channels_changed}, Jaccard {inter / max(union, 1):.3f}")  # fmt: skip
        rows.append({"job": f"{neutral} -> {target}", "delta_cos": cos, "fd_channels": a.channels_changed,
                     "gradient_channels": b.channels_changed, "jaccard": inter / max(union, 1)})  # fmt: skip
    write_report("compare_relevance", device, rows, RESULTS / f"compare_relevance-{device.type}.json",
                 generator=args.generator or f"random {args.res}px", clip=guide.name, beta=args.beta)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
