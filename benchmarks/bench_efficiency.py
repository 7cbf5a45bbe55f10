"""How much of the CPU's convolution rate the synthesis pass reaches, and where the high resolutions lose it.

The probe: oneDNN's own 3x3 convolution at 512 channels on a 64x64 map (NHWC, batch 1, fp32 and bf16), the
densest work a StyleGAN2 synthesis network does; its GFLOP/s is the rate the pass is measured against. The pass:
``G.synthesize`` at the published sizes (random weights, batch 1, W from seed 0), FLOPs counted by
``torch.utils.flop_counter.FlopCounterMode`` on the fp32 path (the same arithmetic as bf16's; oneDNN's fused bf16
calls are invisible to the counter), over the median wall time. Forward (no gradient) and forward + backward
w.r.t. W+ (what an optimisation step runs). Then a per-layer breakdown of the forward: each convolution layer and
ToRGB layer timed with module hooks (the block's own remainder, the image's up-sampling and the skip sum, is the
block's time minus its layers'), with its counted FLOPs and its share of the probe's rate.

    python benchmarks/bench_efficiency.py [--res 512 1024] [--precision fp32 bf16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench_generator import build, step_fn
from report import RESULTS, median_time, write_report
from styleclip.utils.memory import keep_freed_memory
from styleclip.utils.precision import computing_in

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
CPU = torch.device("cpu")


def conv_probe(precision: str, repeats: int, channels: int = 512, size: int = 64) -> dict:
    dtype = DTYPES[precision]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, channels, size, size, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
    w = (
        (torch.randn(channels, channels, 3, 3, generator=g) / 48)
        .to(dtype)
        .contiguous(memory_format=torch.channels_last)
    )
    flops = 2 * channels * channels * 9 * size * size
    with torch.no_grad():
        s = median_time(lambda: torch.nn.functional.conv2d(x, w, padding=1), CPU, repeats, warmup=3)
    return {"probe": f"conv3x3 {channels}ch {size}x{size}", "precision": precision, "seconds": s,
            "gflop": flops / 1e9, "gflops": flops / s / 1e9}  # fmt: skip


def pass_fns(G, precision: str):
    """bench_generator's forward and forward + backward w.r.t. W+ (batch 1), computed in ``precision``."""

    def within(fn):
        def run():
            with computing_in(precision):
                fn()

        return run

    return {"forward": within(step_fn(G, "forward", 1)), "forward+backward": within(step_fn(G, "backward_wplus", 1))}


def counted(fn) -> tuple[float, dict[str, float]]:
    """Total FLOPs of ``fn`` (an fp32 pass), and per synthesis module (``b64.conv0``, ...)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    per_module = {
        name.removeprefix("SynthesisNetwork."): float(sum(ops.values()))
        for name, ops in counter.get_flop_counts().items()
    }
    return float(counter.get_total_flops()), per_module


def layer_breakdown(G, fn, repeats: int) -> dict[str, float]:
    """Median seconds per synthesis layer and block (module hooks; a CPU pass is synchronous)."""
    times: dict[str, list[float]] = defaultdict(list)
    started: dict[str, float] = {}
    handles = []
    for name, m in G.synthesis.named_modules():
        if name and name.count(".") <= 1:

            def pre(_m, _args, name=name):
                started[name] = time.perf_counter()

            def post(_m, _args, _out, name=name):
                times[name].append(time.perf_counter() - started[name])

            handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        fn()
        times.clear()
        for _ in range(repeats):
            fn()
    finally:
        for h in handles:
            h.remove()
    # a block's layers run once per pass; a block called once per sample would add up per pass
    return {name: sum(ts) / repeats for name, ts in times.items()}


def run(res: int, precision: str, repeats: int, rate: float) -> tuple[list[dict], list[dict]]:
    G = build(res, torch.device("cpu"))
    fns = pass_fns(G, precision)
    fp32 = pass_fns(G, "fp32")  # counted there: the same arithmetic, and oneDNN's fused bf16 calls are not seen
    rows = []
    for job, fn in fns.items():
        flops, per_module = counted(fp32[job])
        if job == "forward":
            fwd_modules = per_module
        s = median_time(fn, CPU, repeats)
        rows.append({"resolution": res, "precision": precision, "job": job, "seconds": s, "gflop": flops / 1e9,
                     "gflops": flops / s / 1e9, "fraction_of_probe": flops / s / 1e9 / rate})  # fmt: skip
        print(f"{res:5d}px {precision} {job:17s} {s:7.3f} s  {flops / 1e9:7.1f} GFLOP  {flops / s / 1e9:6.1f} GFLOP/s"
              f"  {100 * flops / s / 1e9 / rate:5.1f} % of the 3x3 probe", flush=True)  # fmt: skip
    layers = []
    seconds = layer_breakdown(G, fns["forward"], repeats)
    blocks = [n for n in seconds if "." not in n]
    for block in blocks:
        children = [n for n in seconds if n.startswith(block + ".")]
        mod = ""
        own = fwd_modules.get(mod + block, 0.0) - sum(fwd_modules.get(mod + n, 0.0) for n in children)
        parts = [(n, seconds[n], fwd_modules.get(mod + n, 0.0)) for n in children]
        parts.append((block + " (up-sampling, skip sum)", seconds[block] - sum(seconds[n] for n in children), own))
        for name, s, flops in parts:
            layers.append({"resolution": res, "precision": precision, "layer": name, "seconds": s,
                           "gflop": flops / 1e9, "gflops": flops / max(s, 1e-9) / 1e9,
                           "fraction_of_probe": flops / max(s, 1e-9) / 1e9 / rate})  # fmt: skip
    total = sum(r["seconds"] for r in layers)
    print(f"  forward by layer ({precision}, hooks: {total:.3f} s in all)")
    for r in layers:
        print(
            f"  {r['layer']:34s} {r['seconds'] * 1000:8.1f} ms {100 * r['seconds'] / total:5.1f} %"
            f"  {r['gflop']:6.2f} GFLOP  {r['gflops']:6.1f} GFLOP/s  {100 * r['fraction_of_probe']:5.1f} %"
        )
    return rows, layers


def backward_ops(res: int, precision: str, rows: int = 8) -> list[dict]:
    """Where forward + backward w.r.t. W+ spends its time, per PyTorch operator (``torch.profiler``, self CPU time
    over two passes after two warm-up passes): the breakdown the per-layer hooks cannot give for the backward."""
    from torch.profiler import ProfilerActivity, profile

    G = build(res, torch.device("cpu"))
    step = pass_fns(G, precision)["forward+backward"]
    step()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
        step()
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    out = [{"resolution": res, "precision": precision, "op": e.key, "calls": e.count // 2,
            "seconds_per_pass": e.self_cpu_time_total / 2e6, "share": e.self_cpu_time_total / total}
           for e in events[:rows]]  # fmt: skip
    print(f"  forward + backward by operator ({res} px, {precision}, profiler: {total / 2e6:.3f} s per pass)")
    for r in out:
        print(f"  {r['op']:34s} {r['calls']:5d} calls {r['seconds_per_pass'] * 1000:8.1f} ms {100 * r['share']:5.1f} %")
    return out


def thin_fused(res: int, repeats: int = 3) -> dict:
    """fp32 forward + backward with the activation-scaled path everywhere (the default for a lone sample with
    gradients) against the thin blocks (64 channels or fewer) fused, as the bf16 hybrid does: timed before, between
    and after, with the largest differences of the image and of the W+ gradient."""
    import styleclip.nets.stylegan2.synthesis as synthesis

    G = build(res, torch.device("cpu"))
    ws0 = G.mapping_forward(G.z_from_seed(0), truncation_psi=0.7).detach()

    def step():
        ws = ws0.clone().requires_grad_(True)
        img = G.synthesize(ws)
        img.float().square().mean().backward()
        return img.detach(), ws.grad

    run = synthesis.SynthesisNetwork._run

    def hybrid(self, *args, **kwargs):
        return run(self, *args, **{**kwargs, "hybrid": True})

    def timed():
        step()
        out = step()
        return median_time(step, CPU, repeats, warmup=0), out

    before, (img_a, grad_a) = timed()
    synthesis.SynthesisNetwork._run = hybrid
    try:
        fused, (img_b, grad_b) = timed()
    finally:
        synthesis.SynthesisNetwork._run = run
    after, _ = timed()
    row = {"resolution": res, "activation_path_s": [before, after], "thin_fused_s": fused,
           "image_max_diff": float((img_a - img_b).abs().max()),
           "grad_rel_diff": float((grad_a - grad_b).norm() / grad_a.norm())}  # fmt: skip
    print(
        f"  {res}px fp32 forward + backward: activation path {before:.3f} / {after:.3f} s, thin blocks fused "
        f"{fused:.3f} s (image within {row['image_max_diff']:.1e}, gradient {row['grad_rel_diff']:.1e})"
    )
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--backward-ops", action="store_true",
                    help="also break forward + backward down per operator (torch.profiler) at each size")  # fmt: skip
    ap.add_argument("--thin-fused", action="store_true",
                    help="also time fp32 forward + backward with the thin blocks fused (the bf16 hybrid's choice)")  # fmt: skip
    args = ap.parse_args(argv)
    keep_freed_memory()
    probes = {p: conv_probe(p, args.repeats) for p in args.precision}
    for p in probes.values():
        print(f"probe {p['probe']} {p['precision']}: {p['seconds'] * 1000:.1f} ms, {p['gflops']:.1f} GFLOP/s")
    rows, layers = [], []
    for res in args.res:
        for precision in args.precision:
            r, lay = run(res, precision, args.repeats, probes[precision]["gflops"])
            rows += r
            layers += lay
    ops = [o for res in args.res for p in args.precision for o in backward_ops(res, p)] if args.backward_ops else []
    thin = [thin_fused(res) for res in args.res] if args.thin_fused else []
    write_report("bench_efficiency", torch.device("cpu"), rows, args.json or RESULTS / "bench_efficiency.json",
                 repeats=args.repeats, probes=list(probes.values()), layers=layers, backward_ops=ops,
                 thin_fused=thin)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
