"""Global-direction speed: direction from a prompt, applying it to 1 and 16 images, relevance throughput.

Random weights in the official architectures (generator as in ``bench_generator.py``, open_clip ViT-B-32).
Relevance throughput is in channel-images per second (one channel tried on one image): the official finite
differences need two syntheses per channel-image, the gradient estimate D/batch backward passes per image
for all channels at once.

    python benchmarks/bench_directions.py [--res 256 512 1024] [--device cuda] [--precision fp32 bf16]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

import styleclip
from bench_generator import build, sync
from report import RESULTS, best_time, write_report
from styleclip.edits.global_direction import global_direction
from styleclip.edits.relevance import RelevanceMatrix, relevance_matrix, relevance_matrix_gradient
from styleclip.guidance.clip import ClipGuide
from styleclip.stylespace import StyleLayout, style_statistics
from styleclip.utils.devices import resolve_device
from styleclip.utils.precision import computing_in


class _Stop(Exception):
    pass


def run(res: int, device: torch.device, batch_size: int, chunks: int, methods: list[str]) -> list[dict]:
    import open_clip

    G = build(res, device)
    guide = ClipGuide(
        open_clip.create_model("ViT-B-32", pretrained=None).to(device), open_clip.get_tokenizer("ViT-B-32"), "ViT-B-32"
    )
    stats = style_statistics(G, samples=2000, cache=False, progress=False)
    rows = []

    def row(job: str, seconds: float, **extra) -> None:
        rows.append({"resolution": res, "job": job, "seconds": seconds, **extra})
        more = "  ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in extra.items())
        print(f"{res:5d}px  {job:38s} {seconds * 1000:10.1f} ms  {more}", flush=True)

    # Relevance throughput (a few chunks of the official method; one image of the gradient method).
    stamps: list[float] = []

    def stop_after(done, total):
        sync(device)
        stamps.append(time.perf_counter())
        if len(stamps) > chunks:
            raise _Stop

    images = 2
    layout = StyleLayout.of(G, 128)
    if "finite-difference" in methods:
        with contextlib.suppress(_Stop):
            relevance_matrix(G, guide, stats, images=images, batch_size=batch_size, callback=stop_after, progress=False)
        per_chunk = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
        ch_img = (batch_size // 2) * images / per_chunk
        row("relevance, finite differences", per_chunk, channel_images_per_s=ch_img)
        print(f"         full matrix ({layout.size} channels x 100 images): ~{layout.size * 100 / ch_img / 3600:.1f} h")
    if "gradient" in methods:
        t0 = time.perf_counter()
        matrix = relevance_matrix_gradient(G, guide, stats, images=1, batch_size=batch_size, progress=False)
        sync(device)
        t = time.perf_counter() - t0
        row("relevance, gradient (1 image)", t, channel_images_per_s=layout.size / t)
        print(f"         full matrix ({layout.size} channels x 20 images): ~{20 * t / 60:.1f} min")
    else:  # a matrix of the right shape for timing the direction
        matrix = RelevanceMatrix(torch.nn.functional.normalize(torch.randn(layout.size, 512), dim=1), layout)

    guide.clear_text_cache()
    t0 = time.perf_counter()
    direction = global_direction(guide, "a happy dog", "a dog", matrix, stats, beta=0.1)
    row("direction from a prompt (text uncached)", time.perf_counter() - t0)
    row(
        "direction from a prompt (text cached)",
        best_time(lambda: global_direction(guide, "a happy dog", "a dog", matrix, stats, beta=0.1), device),
    )
    for n in (1, 16):
        with torch.no_grad():
            styles = G.styles(G.mapping_forward(G.z_from_seed(list(range(n))), truncation_psi=0.7))

            def apply(styles=styles):
                with torch.no_grad():
                    G.synthesis_from_styles(direction.apply(styles, 4.0))

            row(f"apply to {n} image(s)", best_time(apply, device), per_image_ms=best_time(apply, device, 1) * 1000 / n)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--chunks", type=int, default=2, help="finite-difference chunks to time")
    p.add_argument("--methods", nargs="+", choices=["finite-difference", "gradient"],
                   default=["finite-difference", "gradient"], help="relevance methods to time")  # fmt: skip
    p.add_argument("--device", default=None)
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16", "fp16"], default=["fp32"])
    args = p.parse_args(argv)
    styleclip.keep_freed_memory(True)
    device = resolve_device(args.device)
    rows = []
    for precision in args.precision:
        print(f"-- {precision}")
        with computing_in(precision):  # generator and CLIP
            for res in args.res:
                rows += [
                    {**r, "precision": precision} for r in run(res, device, args.batch_size, args.chunks, args.methods)
                ]
    write_report(
        "directions", device, rows, RESULTS / f"bench_directions-{device.type}.json", batch_size=args.batch_size
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
