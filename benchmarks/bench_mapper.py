"""Latent-mapper speed: training steps per second and per-image edit latency.

Training is ``styleclip.train_mapper``'s own step (mapper forward, synthesis, CLIP image encoder with StyleCLIP's
preprocessing, CLIP and L2 losses, backward, Ranger) at StyleCLIP's batch of 2, with official channel settings
and random weights (generator as in ``bench_generator.py``, open_clip's ViT-B-32). The edit latency is one image:
the mapper alone, and mapper + synthesis. The projected time for StyleCLIP's 50,000 steps is printed beside the
step time (StyleCLIP's own code: about 10 hours on one GPU, by its authors).

    python benchmarks/bench_mapper.py                                 # 256 512 1024 on the best device
    python benchmarks/bench_mapper.py --res 1024 --device cuda --steps 50
    torchrun --nproc_per_node 8 benchmarks/bench_mapper.py --res 1024 --device cuda   # scaling over GPUs

Under torchrun the batch is ``--batch`` per process (each GPU does StyleCLIP's 2 images), so steps/s at a
constant per-GPU load shows how the step time grows with the number of processes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

import styleclip
from bench_generator import build, sync
from report import RESULTS, peak_memory_mb, write_report
from styleclip.guidance.clip import ClipGuide
from styleclip.utils.devices import resolve_device

PROMPT = "mohawk hairstyle"
STYLECLIP_STEPS = 50_000


def train_case(res: int, batch: int, arch: str, device: torch.device, steps: int, warmup: int) -> dict:
    import open_clip

    G = build(res, device)
    model = open_clip.create_model(arch, pretrained=None).to(device)
    guide = ClipGuide(model, open_clip.get_tokenizer(arch), arch)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    stamps: list[float] = []

    def tick(step: int, info: dict) -> None:
        sync(device)
        stamps.append(time.perf_counter())

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    styleclip.train_mapper(
        G, clip=guide, prompt=PROMPT, steps=warmup + steps, batch_size=batch * world, train_size=64, test_size=1,
        val_count=1, val_every=10**9, checkpoint_every=10**9, log_every=10**9, device=device, progress=False,
        callback=tick,
    )  # fmt: skip
    per_step = [b - a for a, b in zip([t0, *stamps[:-1]], stamps, strict=True)][warmup:]
    median = statistics.median(per_step)
    peak_mb, peak_kind = peak_memory_mb(device)
    return {
        "resolution": res,
        "batch_per_process": batch,
        "processes": world,
        "clip": arch,
        "median_s_per_step": median,
        "steps_per_s": 1 / median,
        "hours_for_50000_steps": median * STYLECLIP_STEPS / 3600,
        "peak_mem_mb": peak_mb,
        "peak_mem_kind": peak_kind,
    }


@torch.no_grad()
def edit_case(res: int, device: torch.device, repeats: int) -> dict:
    G = build(res, device)
    torch.manual_seed(0)
    mapper = styleclip.LatentMapper(styleclip.MapperConfig(w_dim=G.w_dim, num_ws=G.num_ws)).to(device).eval()
    ws = G.mapping_forward(G.z_from_seed(0), truncation_psi=0.7)

    def timed(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    return {
        "resolution": res,
        "mapper_ms": 1000 * timed(lambda: mapper.edit(ws)),
        "mapper_and_synthesis_ms": 1000 * timed(lambda: G.synthesize(mapper.edit(ws))),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--batch", type=int, default=2, help="training images per step and process (StyleCLIP: 2)")
    p.add_argument("--clip", default="ViT-B-32", help="open_clip architecture (random weights)")
    p.add_argument("--steps", type=int, default=5, help="measured training steps")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10, help="measured edits")
    p.add_argument("--device", default=None)
    p.add_argument("--json", type=Path, default=None, help="output file (default benchmarks/results/...)")
    args = p.parse_args(argv)

    styleclip.keep_freed_memory(True)  # as load_generator does: without it every pass re-faults its memory
    device = resolve_device(args.device)
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:  # one GPU per torchrun process
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    main_process = int(os.environ.get("RANK", "0")) == 0
    rows = []
    for res in args.res:
        row = train_case(res, args.batch, args.clip, device, args.steps, args.warmup)
        if main_process:
            row |= edit_case(res, device, args.repeats)
            print(
                f"{res:5d}px  {row['processes']} x batch {args.batch}: {row['median_s_per_step']:7.3f} s/step "
                f"({row['steps_per_s']:.2f} steps/s, 50k steps in {row['hours_for_50000_steps']:.2f} h); edit "
                f"{row['mapper_ms']:.2f} ms mapper, {row['mapper_and_synthesis_ms']:.1f} ms with synthesis; "
                f"peak {row['peak_mem_mb']:.0f} MB",
                flush=True,
            )
            rows.append(row)
    if main_process:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        path = args.json or RESULTS / f"bench_mapper-{device.type}-x{world}.json"
        write_report("mapper", device, rows, path, clip=args.clip, batch_per_process=args.batch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
