"""Inversion speed: seconds per image for e4e, ReStyle-e4e (5 steps), projection and pivotal tuning.

Random weights in the published architectures: IR-SE50 e4e and ReStyle encoders, the generator as in
``bench_generator.py``, LPIPS-VGG16. Projection and PTI are timed per step (a full projection is 1000 steps,
PTI at most 350); encoders per image.

    python benchmarks/bench_invert.py [--res 256 1024] [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import torch

import styleclip
from bench_generator import build, sync
from report import RESULTS, best_time, peak_memory_mb, write_report
from styleclip.guidance.perceptual import LPIPS
from styleclip.inversion.encoders import Encoder, encode
from styleclip.inversion.invert import pivotal_tuning
from styleclip.inversion.projection import ProjectionConfig, project
from styleclip.nets.encoders import IRSEEncoder
from styleclip.utils.devices import resolve_device


def run(res: int, device: torch.device, steps: int) -> list[dict]:
    G = build(res, device)
    avg = G.w_avg[None].expand(G.num_ws, -1).clone()
    e4e = Encoder("e4e", IRSEEncoder(G.num_ws).eval().requires_grad_(False).to(device), avg, None)
    restyle = Encoder("restyle", IRSEEncoder(G.num_ws, 6, False).eval().requires_grad_(False).to(device), avg, None)
    lpips = LPIPS("vgg").to(device)
    with torch.no_grad():  # random but valid calibration (non-negative weights), so that PTI never stops early
        for lin in lpips.lins:
            lin.weight.abs_()
    with torch.no_grad():
        target = G.synthesize(G.mapping_forward(G.z_from_seed(1), truncation_psi=0.7))
    rows = []

    def row(method: str, seconds: float, unit: str) -> None:
        peak, kind = peak_memory_mb(device)
        rows.append(
            {
                "resolution": res,
                "method": method,
                "seconds": seconds,
                "unit": unit,
                "peak_mem_mb": peak,
                "peak_mem_kind": kind,
            }
        )
        print(f"{res:5d}px  {method:28s} {seconds:8.3f} s {unit}   peak {peak:7.0f} MB", flush=True)

    row("e4e", best_time(lambda: encode(e4e, G, target), device), "per image")
    row("restyle-e4e, 5 steps", best_time(lambda: encode(restyle, G, target, steps=5), device), "per image")
    cfg = ProjectionConfig(steps=steps, w_avg_samples=1000)
    t0 = time.perf_counter()
    project(G, target, lpips, cfg, progress=False)
    sync(device)
    row("projection", (time.perf_counter() - t0) / steps, "per step (x1000 for a full run)")
    t0 = time.perf_counter()
    pivotal_tuning(
        G, G.w_avg[None, None].expand(1, G.num_ws, -1), target, lpips, steps=steps, stop_lpips=0, progress=False
    )
    sync(device)
    row("pivotal tuning", (time.perf_counter() - t0) / steps, "per step (x350 at most)")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--steps", type=int, default=5, help="projection / PTI steps to time")
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    styleclip.keep_freed_memory(True)
    device = resolve_device(args.device)
    rows = []
    for res in args.res:
        rows += run(res, device, args.steps)
    write_report("invert", device, rows, RESULTS / f"bench_invert-{device.type}.json", steps=args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
