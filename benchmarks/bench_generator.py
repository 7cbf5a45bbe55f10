"""Generator speed: synthesis forward, and forward + backward w.r.t. W+ and w.r.t. S.

Official channel settings (channel_base 32768, channel_max 512: FFHQ 1024 / AFHQ 512), random weights;
``--arch stylegan3-t`` / ``stylegan3-r`` time NVIDIA's StyleGAN3 configs T and R instead.
For each resolution, job and modulation path it reports the median wall time, peak memory, the FLOPs
counted by ``torch.utils.flop_counter`` and the achieved GFLOP/s; prints a table and writes JSON.

    python benchmarks/bench_generator.py                       # 256 512 1024, batch 1, best device
    python benchmarks/bench_generator.py --res 1024 --batch 4 --device cuda
    python benchmarks/bench_generator.py --keep-memory off     # glibc's default allocator behaviour
    python benchmarks/bench_generator.py --precision fp32 bf16 # both, in the same run
    python benchmarks/bench_generator.py --compile off on      # eager and torch.compile (first call apart)
    python benchmarks/bench_generator.py --arch stylegan3-t stylegan3-r --res 256 1024

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
from torch.utils.flop_counter import FlopCounterMode

import styleclip
from report import RESULTS, peak_memory_mb, sync, write_report
from styleclip import (
    Generator,
    Generator3,
    GeneratorConfig,
    GeneratorConfig3,
    MappingConfig,
    SynthesisConfig,
    SynthesisConfig3,
)
from styleclip.utils.compiling import compiling
from styleclip.utils.devices import resolve_device
from styleclip.utils.precision import computing_in

JOBS = ("forward", "backward_wplus", "backward_styles")
ARCHS = ("stylegan2", "stylegan3-t", "stylegan3-r")


def build(res: int, device: torch.device, arch: str = "stylegan2") -> Generator:
    torch.manual_seed(0)
    if arch == "stylegan2":
        cfg = GeneratorConfig(
            img_resolution=res,
            mapping=MappingConfig(num_layers=8),
            synthesis=SynthesisConfig(channel_base=32768, channel_max=512),
        )
        return Generator(cfg).eval().requires_grad_(False).to(device)
    # NVIDIA's train.py settings: R doubles the channels and uses 1x1 convolutions and radial filters.
    r = arch == "stylegan3-r"
    syn = SynthesisConfig3(
        channel_base=65536 if r else 32768,
        channel_max=1024 if r else 512,
        conv_kernel=1 if r else 3,
        use_radial_filters=r,
    )
    cfg3 = GeneratorConfig3(img_resolution=res, mapping=MappingConfig(num_layers=2, w_avg_beta=0.998), synthesis=syn)
    return Generator3(cfg3).eval().requires_grad_(False).to(device)


def step_fn(G: Generator, job: str, batch: int, modulation: str | None = None):
    """The pass ``job`` of ``G`` on ``batch`` latents of seeds 0.. at ψ 0.7: 'forward', 'backward_wplus' (forward and
    backward w.r.t. W+) or 'backward_styles'; ``modulation`` None = the generator's own choice."""
    ws0 = G.mapping_forward(G.z_from_seed(list(range(batch))), truncation_psi=0.7)
    styles0 = {k: v.detach() for k, v in G.styles(ws0).items()}

    def forward():
        with torch.no_grad():
            return G.synthesize(ws0, modulation=modulation)

    def backward_wplus():
        ws = ws0.detach().clone().requires_grad_(True)
        G.synthesize(ws, modulation=modulation).square().mean().backward()
        return ws.grad

    def backward_styles():
        styles = {k: v.clone().requires_grad_(True) for k, v in styles0.items()}
        G.synthesis_from_styles(styles, modulation=modulation).square().mean().backward()
        return styles

    return {"forward": forward, "backward_wplus": backward_wplus, "backward_styles": backward_styles}[job]


def run_case(
    res: int,
    job: str,
    modulation: str,
    batch: int,
    device: torch.device,
    repeats: int,
    warmup: int,
    arch: str,
    precision: str = "fp32",
    compile: bool = False,
) -> dict:
    G = build(res, device, arch)
    inner = step_fn(G, job, batch, modulation)

    def fn():
        with computing_in(precision), compiling(compile):
            return inner()

    # counted on the fp32 path, the same arithmetic: oneDNN's fused bf16 ops are invisible to the counter
    with FlopCounterMode(display=False) as counter, computing_in("fp32"):
        inner()
    flops = counter.get_total_flops()
    started = time.perf_counter()
    fn()  # the first call compiles (with --compile)
    first_s = time.perf_counter() - started
    for _ in range(warmup):
        fn()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    peak_mb, peak_kind = peak_memory_mb(device)
    return {
        "arch": arch,
        "resolution": res,
        "job": job,
        "modulation": modulation,
        "precision": precision,
        "compiled": compile,
        "first_call_s": first_s,
        "batch": batch,
        "median_s": median,
        "min_s": min(times),
        "times_s": times,
        "peak_mem_mb": peak_mb,
        "peak_mem_kind": peak_kind,
        "gflop": flops / 1e9,
        "gflops_per_s": flops / 1e9 / median,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="+", choices=ARCHS, default=["stylegan2"])
    p.add_argument("--res", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--jobs", nargs="+", choices=JOBS, default=list(JOBS))
    p.add_argument("--modulation", nargs="+", choices=["fused", "activation", "auto"], default=["fused", "activation"])
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16", "fp16"], default=["fp32"])
    p.add_argument(
        "--compile",
        nargs="+",
        choices=["off", "on"],
        default=["off"],
        help="torch.compile the synthesis network (first call excluded from the timing, reported apart)",
    )
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default=None)
    p.add_argument("--keep-memory", choices=["on", "off"], default="on")
    p.add_argument("--json", type=Path, default=None, help="output file (default benchmarks/results/...)")
    p.add_argument("--in-process", action="store_true", help="do not isolate cases in subprocesses")
    p.add_argument("--_case", nargs=4, metavar=("ARCH", "RES", "JOB", "MODULATION"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    styleclip.keep_freed_memory(args.keep_memory == "on")
    device = resolve_device(args.device)
    if args._case:
        arch, res, job, mod = args._case[0], int(args._case[1]), args._case[2], args._case[3]
        precision, compile = args.precision[0], args.compile[0] == "on"
        row = run_case(res, job, mod, args.batch, device, args.repeats, args.warmup, arch, precision, compile)
        print(json.dumps(row))
        return 0

    rows = []
    cases = [
        (a, r, j, m, p, c)
        for a in args.arch for r in args.res for j in args.jobs for m in args.modulation for p in args.precision
        for c in args.compile
    ]  # fmt: skip
    for arch, res, job, mod, precision, comp in cases:
        if device.type == "cpu" and not args.in_process:
            cmd = [sys.executable, __file__, "--_case", arch, str(res), job, mod, "--batch", str(args.batch)]
            cmd += ["--repeats", str(args.repeats), "--warmup", str(args.warmup), "--device", str(device)]
            cmd += ["--keep-memory", args.keep_memory, "--precision", precision, "--compile", comp]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
        else:
            row = run_case(res, job, mod, args.batch, device, args.repeats, args.warmup, arch, precision, comp == "on")
        rows.append(row)
        print(
            f"{arch:11s} {res:5d}px  {job:16s} {mod:10s} {precision} {'compiled' if comp == 'on' else 'eager   '} "
            f"batch {args.batch}: {row['median_s']:7.3f} s (min {row['min_s']:.3f}, first {row['first_call_s']:.1f})  "
            f"{row['gflop']:7.1f} GFLOP  {row['gflops_per_s']:6.1f} GFLOP/s  peak {row['peak_mem_mb']:8.0f} MB",
            flush=True,
        )
    tag = "" if args.arch == ["stylegan2"] else "-" + "-".join(args.arch)
    default = RESULTS / f"bench_generator{tag}-{device.type}-b{args.batch}-mem{args.keep_memory}.json"
    write_report("generator", device, rows, args.json or default, keep_memory=args.keep_memory)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
