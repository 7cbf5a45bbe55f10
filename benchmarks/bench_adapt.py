"""StyleGAN-NADA speed: seconds per adaptation step, and the time of a whole 300-step adaptation.

The step measured is ``styleclip.adapt``'s own (:class:`styleclip.training.adapt.Adapter`): training latents through
the frozen mapping, NADA's adaptive layer selection (one W+ step on 8 latents scored by the global CLIP loss), the
frozen and the trainable copy's pictures, the directional CLIP loss over one or two CLIP models, backward and Adam,
at NADA's README settings (batch 2, every W+ row may train). Networks have the official sizes and random weights:
the generator as in ``bench_generator.py`` (StyleGAN2 config F), open_clip's ViT-B-32 and ViT-B-16 (the
architectures of OpenAI's ViT-B/32 and ViT-B/16 that NADA's README uses). Nothing is downloaded.

A 300-step adaptation is extrapolated as: the first step (which also encodes the 79 templated prompts of both
texts for each CLIP model) + 299 x the median step + the sample grids NADA's ``--output_interval 50`` draws
(7 of them, each 4 latents by both generators, timed here). Checkpoints are not counted.

    python benchmarks/bench_adapt.py                                    # 256 and 1024 px, 1 and 2 CLIPs, fp32/bf16
    python benchmarks/bench_adapt.py --res 256 --clips 1 --quick        # one small case, fewer steps
    python benchmarks/bench_adapt.py --device cuda --steps 10

bf16 runs where it is native: on GPUs, and on CPUs with AMX or AVX512-BF16 (``cpu_native_bf16``). On CPU each case
runs in its own process, so that peak RSS belongs to that case alone.
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
from styleclip.training.adapt import AdaptConfig, Adapter
from styleclip.utils.devices import resolve_device
from styleclip.utils.precision import cpu_native_bf16

CLIP_SETS = {1: ("ViT-B-32",), 2: ("ViT-B-32", "ViT-B-16")}  # NADA's README: ViT-B/32 + ViT-B/16, weights 1 1
NADA_STEPS = 300


def cpu_model() -> str:
    """The CPU's name as the kernel reports it (``platform.processor()`` is often empty on Linux)."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def grids_in(steps: int, every: int) -> int:
    """How many sample grids a run of ``steps`` draws (after step 1, every ``every`` steps, and after the last)."""
    return len({s for s in range(1, steps + 1) if s == 1 or s % every == 0 or s == steps})


def run_case(
    res: int, clips: int, precision: str, device: torch.device, steps: int, warmup: int, layers: str = "auto"
) -> dict:
    import open_clip

    G = build(res, device)
    guides = []
    for arch in CLIP_SETS[clips]:
        model = open_clip.create_model(arch, pretrained=None).to(device)
        guides.append(ClipGuide(model, open_clip.get_tokenizer(arch), arch, precision=precision))
    config = AdaptConfig(
        target="sketch", source="photo", clip_models=CLIP_SETS[clips], clip_weights=(1.0,) * clips,
        precision=precision, steps=NADA_STEPS, layers=layers,
    )  # fmt: skip
    config.check()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    adapter = Adapter(G, config, device, guides)
    times = []
    for step in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        info = adapter.step(step)
        sync(device)
        times.append(time.perf_counter() - t0)
    grid_times = []
    for _ in range(2):
        sync(device)
        t0 = time.perf_counter()
        adapter.sample_grid(steps)
        sync(device)
        grid_times.append(time.perf_counter() - t0)
    per_step = times[warmup:] or times[-1:]
    median = statistics.median(per_step)
    grid = min(grid_times)  # the first also builds the grid's fonts and buffers
    grids = grids_in(NADA_STEPS, config.sample_every)
    peak_mb, peak_kind = peak_memory_mb(device)
    return {
        "resolution": res,
        "batch": config.batch_size,
        "clips": list(CLIP_SETS[clips]),
        "precision": precision,
        "layers": layers,
        "auto_layer_batch": config.auto_layer_batch,
        "trained_layers_last_step": len(adapter.last_layers),
        "first_step_s": times[0],
        "median_s_per_step": median,
        "min_s_per_step": min(per_step),
        "steps_s": times,
        "sample_grid_s": grid,
        "minutes_for_300_steps": (times[0] + (NADA_STEPS - 1) * median + grids * grid) / 60,
        "last_loss": info["loss"],
        "peak_mem_mb": peak_mb,
        "peak_mem_kind": peak_kind,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--clips", type=int, nargs="+", choices=sorted(CLIP_SETS), default=[1, 2],
                   help="1: ViT-B-32; 2: ViT-B-32 + ViT-B-16 (NADA's README)")  # fmt: skip
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=None,
                   help="default: fp32, and bf16 where the device has it natively")  # fmt: skip
    p.add_argument("--layers", choices=["auto", "nada", "all"], default="auto",
                   help="auto: NADA's adaptive selection each step (its README); nada: its fixed set, no selection")  # fmt: skip
    p.add_argument("--steps", type=int, default=3, help="measured steps")
    p.add_argument("--warmup", type=int, default=1, help="steps before the measured ones (the first encodes text)")
    p.add_argument("--quick", action="store_true", help="2 measured steps after 1 (for a slow machine)")
    p.add_argument("--device", default=None, help="cpu, cuda (default: best available)")
    p.add_argument("--json", type=Path, default=None, help="output file (default benchmarks/results/...)")
    p.add_argument("--in-process", action="store_true", help="do not isolate cases in subprocesses")
    p.add_argument("--_case", nargs=3, metavar=("RES", "CLIPS", "PRECISION"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.warmup = 2, 1

    styleclip.keep_freed_memory(True)  # as load_generator does: without it every pass re-faults its memory
    device = resolve_device(args.device)
    if args._case:
        res, clips, precision = int(args._case[0]), int(args._case[1]), args._case[2]
        print(json.dumps(run_case(res, clips, precision, device, args.steps, args.warmup, args.layers)))
        return 0

    native_bf16 = device.type == "cuda" or (device.type == "cpu" and bool(cpu_native_bf16()))
    precisions = args.precision or (["fp32", "bf16"] if native_bf16 else ["fp32"])
    rows = []
    print(
        f"{'res':>5} {'CLIP':<19} {'prec':<5} {'first s':>8} {'s/step':>8} {'grid s':>7} {'300 steps':>10} {'peak MB':>8}"
    )
    for res in args.res:
        for clips in args.clips:
            for precision in precisions:
                if device.type == "cpu" and not args.in_process:
                    cmd = [sys.executable, __file__, "--_case", str(res), str(clips), precision, "--device", "cpu"]
                    cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--layers", args.layers]
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                    row = json.loads(out.strip().splitlines()[-1])
                else:
                    row = run_case(res, clips, precision, device, args.steps, args.warmup, args.layers)
                rows.append(row)
                print(
                    f"{res:5d} {'+'.join(row['clips']):<19} {precision:<5} {row['first_step_s']:8.2f} "
                    f"{row['median_s_per_step']:8.3f} {row['sample_grid_s']:7.2f} "
                    f"{row['minutes_for_300_steps']:7.1f} min {row['peak_mem_mb']:8.0f}",
                    flush=True,
                )
    path = args.json or RESULTS / f"bench_adapt-{device.type}{'' if args.layers == 'auto' else '-' + args.layers}.json"
    write_report("adapt", device, rows, path, batch=2, layers=args.layers, steps=args.steps, warmup=args.warmup, cpu=cpu_model(),
                 native_bf16=list(cpu_native_bf16()) if device.type == "cpu" else None)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
