"""Latent-optimisation speed: seconds per step and peak memory of ``styleclip.optimize``.

The step measured is the product's own (generator synthesis in the cheaper activation-scaled modulation,
one resize to 224, CLIP image encoder, L2 term, backward, Adam), with official channel settings and random
weights: the generator as in ``bench_generator.py``, open_clip's ViT-B-32 (or any ``--clip`` architecture).
Time per step is the median over the measured steps, after warm-up steps.

    python benchmarks/bench_optimize.py                         # 256 512 1024, batch 1 and 4, best device
    python benchmarks/bench_optimize.py --res 1024 --batch 1 --device cuda
    python benchmarks/bench_optimize.py --res 512 1024 --batch 1 --precision fp32 bf16   # side by side
    python benchmarks/bench_optimize.py --res 1024 --batch 1 --precision bf16 --compile off on

On CPU each case runs in its own process, so that peak RSS belongs to that case alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import styleclip
from bench_generator import build, sync
from report import RESULTS, peak_memory_mb, write_report
from styleclip.guidance.clip import ClipGuide
from styleclip.utils.devices import resolve_device

PROMPT = "a really happy dog face with mouth open"


def run_case(
    res: int,
    batch: int,
    arch: str,
    space: str,
    device: torch.device,
    steps: int,
    warmup: int,
    precision: str,
    compile: bool = False,
) -> dict:
    import open_clip

    G = build(res, device)
    model = open_clip.create_model(arch, pretrained=None).to(device)
    guide = ClipGuide(model, open_clip.get_tokenizer(arch), arch)
    stamps: list[float] = []

    def tick(step: int, info: dict) -> None:
        sync(device)
        stamps.append(time.perf_counter())

    prompts = [PROMPT] * batch
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    styleclip.optimize(
        G, prompts, guide, seeds=[0], steps=warmup + steps, space=space, callback=tick, progress=False,
        precision=precision, compile=compile,
    )  # fmt: skip
    per_step = [b - a for a, b in zip([t0, *stamps[:-1]], stamps, strict=True)][warmup:]
    peak_mb, peak_kind = peak_memory_mb(device)
    return {
        "resolution": res,
        "batch": batch,
        "clip": arch,
        "space": space,
        "precision": precision,
        "compiled": compile,
        "first_step_s": stamps[0] - t0,  # with --compile: mostly compiling
        "median_s_per_step": statistics.median(per_step),
        "min_s_per_step": min(per_step),
        "steps_s": per_step,
        "peak_mem_mb": peak_mb,
        "peak_mem_kind": peak_kind,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    p.add_argument("--clip", default="ViT-B-32", help="open_clip architecture (random weights)")
    p.add_argument("--space", choices=["w+", "w", "s"], default="w+")
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16", "fp16"], default=["fp32"])
    p.add_argument(
        "--compile",
        nargs="+",
        choices=["off", "on"],
        default=["off"],
        help="torch.compile the generator (the warm-up steps absorb the compiling)",
    )
    p.add_argument("--steps", type=int, default=5, help="measured steps")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default=None)
    p.add_argument("--keep-memory", choices=["on", "off"], default="on")
    p.add_argument("--json", type=Path, default=None, help="output file (default benchmarks/results/...)")
    p.add_argument("--in-process", action="store_true", help="do not isolate cases in subprocesses")
    p.add_argument("--_case", nargs=2, metavar=("RES", "BATCH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    styleclip.keep_freed_memory(args.keep_memory == "on")
    device = resolve_device(args.device)
    if args._case:
        res, batch, precision = int(args._case[0]), int(args._case[1]), args.precision[0]
        row = run_case(res, batch, args.clip, args.space, device, args.steps, args.warmup, precision,
                       args.compile[0] == "on")  # fmt: skip
        print(json.dumps(row))
        return 0

    rows = []
    cases = [(r, b, p, c) for r in args.res for b in args.batch for p in args.precision for c in args.compile]
    for res, batch, precision, comp in cases:
        if device.type == "cpu" and not args.in_process:
            cmd = [sys.executable, __file__, "--_case", str(res), str(batch), "--clip", args.clip]
            cmd += ["--space", args.space, "--steps", str(args.steps), "--warmup", str(args.warmup)]
            cmd += ["--device", str(device), "--keep-memory", args.keep_memory, "--precision", precision]
            cmd += ["--compile", comp]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
        else:
            row = run_case(res, batch, args.clip, args.space, device, args.steps, args.warmup, precision, comp == "on")
        rows.append(row)
        print(
            f"{res:5d}px  batch {batch}  {args.clip} {args.space} {precision}{' compiled' if comp == 'on' else ''}: "
            f"{row['median_s_per_step']:7.3f} s/step (first {row['first_step_s']:.1f} s) "
            f"(min {row['min_s_per_step']:.3f}, {row['median_s_per_step'] / batch:.3f} s/image)  "
            f"peak {row['peak_mem_mb']:8.0f} MB",
            flush=True,
        )
    space = args.space.replace("+", "plus")  # file names travel better without '+'
    path = args.json or RESULTS / f"bench_optimize-{device.type}-{space}.json"
    write_report("optimize", device, rows, path, clip=args.clip, space=args.space, keep_memory=args.keep_memory)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
