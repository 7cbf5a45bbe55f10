"""The same generator pass in the main thread and in a worker thread (where the web UI and thread pools run it).

Each setting runs in its own process (the allocator is set up once per process): ``one arena`` is styleclip's
default (threads share the main malloc arena, see ``styleclip.utils.memory``), ``per-thread arenas`` is glibc's
(``STYLECLIP_ONE_ARENA=0``). Main and worker passes alternate in one process; the medians of ``--repeats`` are
compared. Random weights at the published sizes, batch 1, the forward pass, forward + backward w.r.t. W+, and one
step of ``styleclip.optimize`` (open_clip ViT-B-32 with random weights; each call runs ``--steps`` steps, the first
of which is left out, and the median step of the calls in each thread is compared).

    python benchmarks/bench_threads.py [--res 512] [--repeats 5] [--precision fp32] [--steps 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from report import RESULTS, write_report

SETTINGS = {"one arena": "1", "per-thread arenas": "0"}


def measure(res: int, repeats: int, precision: str, steps: int = 3) -> dict:
    import styleclip
    from bench_generator import build, step_fn
    from styleclip.utils.memory import keep_freed_memory, one_arena
    from styleclip.utils.precision import computing_in

    keep_freed_memory()
    G = build(res, torch.device("cpu"))
    passes = {job: step_fn(G, job, 1) for job in ("forward", "backward_wplus")}

    def forward():
        with computing_in(precision):
            passes["forward"]()

    def backward():
        with computing_in(precision):
            passes["backward_wplus"]()

    def in_thread(fn) -> float:
        out = {}

        def run():
            t = time.perf_counter()
            fn()
            out["s"] = time.perf_counter() - t

        th = threading.Thread(target=run)
        th.start()
        th.join()
        return out["s"]

    def in_main(fn) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    rows = {}
    for name, fn in (("forward", forward), ("forward+backward", backward)):
        fn()  # warm-up
        main, worker = [], []
        for _ in range(repeats):
            main.append(in_main(fn))
            worker.append(in_thread(fn))
        rows[name] = {"main_s": statistics.median(main), "worker_s": statistics.median(worker)}
        rows[name]["worker_over_main"] = rows[name]["worker_s"] / rows[name]["main_s"]

    import open_clip

    from styleclip.guidance.clip import ClipGuide

    guide = ClipGuide(
        open_clip.create_model("ViT-B-32", pretrained=None), open_clip.get_tokenizer("ViT-B-32"), "ViT-B-32"
    )
    per_step: list[float] = []

    def optimise():
        stamps = [time.perf_counter()]
        styleclip.optimize(
            G, ["a really happy dog face with mouth open"], guide, seeds=[0], steps=steps, progress=False,
            precision=precision, callback=lambda step, info: stamps.append(time.perf_counter()),
        )  # fmt: skip
        per_step.extend(b - a for a, b in itertools.pairwise(stamps[1:]))  # the first step left out

    optimise()  # warm-up
    main, worker = [], []
    for _ in range(repeats):
        per_step.clear()
        optimise()
        main += per_step
        per_step.clear()
        in_thread(optimise)
        worker += per_step
    step = {"main_s": statistics.median(main), "worker_s": statistics.median(worker), "steps_per_call": steps}
    rows["optimisation step"] = {**step, "worker_over_main": step["worker_s"] / step["main_s"]}
    return {"one_arena": one_arena(), "styleclip": styleclip.__version__, **rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=3, help="optimisation steps per call (the first is left out)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.res, args.repeats, args.precision, args.steps)))
        return 0
    rows = []
    for label, value in SETTINGS.items():
        env = {**os.environ, "STYLECLIP_ONE_ARENA": value}
        cmd = [sys.executable, __file__, "--child", "--res", str(args.res), "--repeats", str(args.repeats),
               "--precision", args.precision, "--steps", str(args.steps)]  # fmt: skip
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        row = {"setting": label, "resolution": args.res, "precision": args.precision, **json.loads(out)}
        rows.append(row)
        for name in ("forward", "forward+backward", "optimisation step"):
            r = row[name]
            print(f"{label:18s} {args.res}px {args.precision} {name:18s} main {r['main_s']:.3f} s  worker "
                  f"{r['worker_s']:.3f} s  ratio {r['worker_over_main']:.2f}", flush=True)  # fmt: skip
    path = args.json or RESULTS / f"bench_threads-{args.res}-{args.precision}.json"
    write_report("bench_threads", torch.device("cpu"), rows, path, repeats=args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
