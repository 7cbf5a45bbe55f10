"""Inversion speed: seconds per image for e4e, ReStyle-e4e (5 steps), HyperStyle (W encoder + 5 passes),
projection and pivotal tuning, and the peak memory of each.

Random weights in the published architectures: IR-SE50 e4e and ReStyle encoders, HyperStyle's W encoder (IR-SE50)
and hyper-network (ResNet-34 trunk, the default ``layers_to_tune``: every non-ToRGB convolution), the generator as
in ``bench_generator.py``, LPIPS-VGG16. Encoders are timed per image (the fastest of ``--repeats`` after one
warm-up); projection and PTI per step, over ``--steps`` steps, and extrapolated to a full run (projection 1000
steps, PTI at most 350). Random weights make the time right and the reconstruction meaningless.

    python benchmarks/bench_invert.py [--res 256 1024] [--device cuda] [--methods hyperstyle e4e]
    python benchmarks/bench_invert.py --res 1024 --repeats 1 --steps 2   # a short CPU run

On CPU each (resolution, method) runs in its own process, so that the peak RSS belongs to that case alone; on CUDA
the peak allocation is reset before each case.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

import styleclip
from bench_generator import build, sync
from report import RESULTS, best_time, peak_memory_mb, write_report
from styleclip.utils.devices import resolve_device

METHODS = ("e4e", "restyle", "hyperstyle", "projection", "pti")
FULL_STEPS = {"projection": 1000, "pti": 350}  # a full projection; PTI's most (it stops early once LPIPS < 0.06)
LABELS = {
    "e4e": "e4e",
    "restyle": "restyle-e4e, 5 steps",
    "hyperstyle": "hyperstyle, W enc + 5 passes",
    "projection": "projection",
    "pti": "pivotal tuning",
}


def _lpips(device: torch.device):
    from styleclip.guidance.perceptual import LPIPS

    lpips = LPIPS("vgg").to(device)
    with torch.no_grad():  # random but valid calibration (non-negative weights), so that PTI never stops early
        for lin in lpips.lins:
            lin.weight.abs_()
    return lpips


def _stamp_steps(lpips, device: torch.device) -> list[float]:
    """Times at which projection and PTI ask LPIPS for a picture's features (after the device is done): the
    photo's once, then once a step."""
    stamps: list[float] = []
    taps = lpips.taps

    def timed(x: torch.Tensor) -> list[torch.Tensor]:
        sync(device)
        stamps.append(time.perf_counter())
        return taps(x)

    lpips.taps = timed
    return stamps


def _mb(module: torch.nn.Module) -> float:
    return sum(p.numel() * p.element_size() for p in module.parameters()) / 2**20


def run_case(res: int, method: str, device: torch.device, steps: int, repeats: int) -> dict:
    """One method at one resolution: ``{seconds, unit, seconds_per_image, peak_mem_mb, ...}``."""
    from styleclip.inversion.encoders import Encoder, encode
    from styleclip.nets.encoders import IRSEEncoder

    G = build(res, device)
    avg = G.w_avg[None].expand(G.num_ws, -1).clone()
    with torch.no_grad():
        target = G.synthesize(G.mapping_forward(G.z_from_seed(1), truncation_psi=0.7))
    extra: dict = {}
    if method in ("e4e", "restyle"):
        net = IRSEEncoder(G.num_ws) if method == "e4e" else IRSEEncoder(G.num_ws, 6, False)
        encoder = Encoder(method, net.eval().requires_grad_(False).to(device), avg, None)
        extra["weights_mb"] = _mb(net)
        fn = (lambda: encode(encoder, G, target)) if method == "e4e" else (lambda: encode(encoder, G, target, steps=5))
    elif method == "hyperstyle":
        from styleclip.inversion.hyperstyle import N_ITERS, HyperStyle, hyperstyle_invert
        from styleclip.nets.encoders import WEncoder
        from styleclip.nets.hyperstyle import HyperNetwork, layer_table

        net = HyperNetwork(layer_table(G)).eval().requires_grad_(False).to(device)
        w_net = WEncoder(G.num_ws).eval().requires_grad_(False).to(device)
        model = HyperStyle(net, avg, G)
        w_encoder = Encoder("w", w_net, avg, None)
        extra |= {"weights_mb": _mb(net) + _mb(w_net), "passes": N_ITERS, "tuned_layers": len(net.tune)}
        result = {}

        def fn():
            result["inv"] = hyperstyle_invert(model, w_encoder, G, target, n_iters=N_ITERS)

    if method in ("e4e", "restyle", "hyperstyle"):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds = best_time(fn, device, repeats)
        unit, per_image = "per image", seconds
        if method == "hyperstyle":  # random offsets may blow up; say so rather than time a NaN path unawares
            extra["finite"] = bool(torch.isfinite(result["inv"].reconstructions[-1]).all())
    else:
        from styleclip.inversion.invert import pivotal_tuning
        from styleclip.inversion.projection import ProjectionConfig, project

        lpips = _lpips(device)
        stamps = _stamp_steps(lpips, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        if method == "projection":
            project(G, target, lpips, ProjectionConfig(steps=steps, w_avg_samples=1000), progress=False)
        else:
            pivot = G.w_avg[None, None].expand(1, G.num_ws, -1)
            pivotal_tuning(G, pivot, target, lpips, steps=steps, stop_lpips=0, progress=False)
        sync(device)
        total = time.perf_counter() - t0
        # stamps: the photo's features once, then one per step; between the first step's and the last's lie
        # steps - 1 whole steps, without the set-up (w statistics, copies) that a full run spreads thinner
        seconds = (stamps[-1] - stamps[1]) / (steps - 1) if steps > 1 else total
        full = FULL_STEPS[method]
        unit = f"per step (x{full} for a {'full run' if method == 'projection' else 'run at most'})"
        per_image = (stamps[1] - t0) + seconds * full if steps > 1 else seconds * full
        extra["setup_s"] = stamps[1] - t0 if steps > 1 else None
        extra |= {"timed_steps": steps, "full_steps": full}
    peak, kind = peak_memory_mb(device)
    return {
        "resolution": res,
        "method": LABELS[method],
        "key": method,
        "seconds": seconds,
        "unit": unit,
        "seconds_per_image": per_image,
        "peak_mem_mb": peak,
        "peak_mem_kind": kind,
        "load": _load(),  # other work on the machine inflates the times; this says how much there was
        **extra,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--steps", type=int, default=5, help="projection / PTI steps to time")
    p.add_argument("--repeats", type=int, default=3, help="timed calls of each encoder (the fastest counts)")
    p.add_argument("--device", default=None)
    p.add_argument("--json", type=Path, default=None, help="output file (default benchmarks/results/...)")
    p.add_argument("--in-process", action="store_true", help="do not isolate cases in subprocesses")
    p.add_argument("--_case", nargs=2, metavar=("RES", "METHOD"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        p.error("--steps and --repeats must be at least 1")
    styleclip.keep_freed_memory(True)
    device = resolve_device(args.device)
    if args._case:
        print(json.dumps(run_case(int(args._case[0]), args._case[1], device, args.steps, args.repeats)))
        return 0

    rows = []
    default = RESULTS / f"bench_invert-{device.type}.json"
    for res in args.res:
        for method in args.methods:
            if device.type == "cpu" and not args.in_process:
                cmd = [sys.executable, __file__, "--_case", str(res), method, "--device", str(device)]
                cmd += ["--steps", str(args.steps), "--repeats", str(args.repeats)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                row = json.loads(out.strip().splitlines()[-1])
            else:
                row = run_case(res, method, device, args.steps, args.repeats)
            rows.append(row)
            full = f"  = {row['seconds_per_image']:8.1f} s per image" if row["unit"] != "per image" else ""
            print(
                f"{res:5d}px  {row['method']:30s} {row['seconds']:8.3f} s {row['unit']}{full}   "
                f"peak {row['peak_mem_mb']:7.0f} MB",
                flush=True,
            )
            # after every case, so that a long run stopped part-way keeps what it measured
            write_report(
                "invert", device, rows, args.json or default, steps=args.steps, repeats=args.repeats,
                full_steps=FULL_STEPS, load=_load(), complete=len(rows) == len(args.res) * len(args.methods),
            )  # fmt: skip
    return 0


def _load() -> list[float] | None:
    """The machine's 1/5/15-minute load averages while the benchmark ran (other work shares the cores)."""
    try:
        import os

        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
