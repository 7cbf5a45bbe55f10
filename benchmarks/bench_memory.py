"""Peak memory (RSS) of one synthesis pass and one optimisation step, one process per case, beside NVIDIA's network.

Every case runs in a fresh Python process and reads the kernel's high-water mark of its resident memory
(``VmHWM`` in ``/proc/self/status``; ``ru_maxrss`` would also count the parent's peak when the process was
exec'd from it). Random weights at the published sizes (``bench_generator.build``), batch 1, seed 0, constant
noise. Besides the peak, each case notes what it holds before the pass (the interpreter and torch, the weights,
the weight copies styleclip derives for its kernels) so that the peak can be split into weights and pass.

Cases: ``styleclip`` synthesis forward (no gradient) and forward + backward w.r.t. W+ in fp32 and bf16; the same
for NVIDIA's stylegan2-ada-pytorch network in fp32 when ``--nvidia`` names a checkout of its repository (its code
is imported from there, never copied); ``styleclip.optimize`` steps (open_clip ViT-B-32, random weights).

``--before DIR`` also runs styleclip's forward cases with the package found in ``DIR`` (e.g. an older commit's
``src``: ``git archive HEAD~1 src | tar -x -C /tmp/before``), to measure a change before and after in one run.

    python benchmarks/bench_memory.py [--res 512 1024] [--nvidia ~/stylegan2-ada-pytorch] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from report import RESULTS, write_report

PASSES = ("forward", "forward+backward")


def status_kb(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (VmRSS now, VmHWM the peak since the process started)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


def tensor_mb(tensors) -> float:
    seen, total = set(), 0
    for t in tensors:
        if t is None or not hasattr(t, "untyped_storage"):
            continue
        s = t.untyped_storage()
        if s.data_ptr() not in seen:
            seen.add(s.data_ptr())
            total += s.nbytes()
    return round(total / 2**20, 1)


def derived_mb(module) -> float:
    """Bytes of the weight copies styleclip keeps (``ops.derived``: casts, reductions, laid-out kernels)."""
    held = []
    for m in module.modules():
        for _key, value in m.__dict__.get("_derived", {}).values():
            held.extend(value if isinstance(value, tuple | list) else [value])
    return tensor_mb(held)


def styleclip_generator(res: int):
    """``bench_generator.build``'s network, built here: importing that module pulls in ``torch.utils.flop_counter``
    (and with it about 75 MB of sympy and dynamo) that neither a user nor the other cases load."""
    import torch

    from styleclip import Generator, GeneratorConfig, MappingConfig, SynthesisConfig

    torch.manual_seed(0)
    cfg = GeneratorConfig(
        img_resolution=res,
        mapping=MappingConfig(num_layers=8),
        synthesis=SynthesisConfig(channel_base=32768, channel_max=512),
    )
    return Generator(cfg).eval().requires_grad_(False)


def nvidia_generator(root: str, res: int):
    import types

    sys.path.insert(0, os.path.expanduser(root))
    sys.modules.setdefault("requests", types.ModuleType("requests"))  # only its download helpers use it
    import torch
    from training.networks import Generator

    torch.manual_seed(0)
    G = Generator(
        z_dim=512, w_dim=512, c_dim=0, img_resolution=res, img_channels=3,
        mapping_kwargs={"num_layers": 8},
        synthesis_kwargs={"channel_base": 32768, "channel_max": 512, "num_fp16_res": 0, "conv_clamp": None},
    )  # fmt: skip
    return G.eval().requires_grad_(False)


def child(case: dict) -> dict:
    import torch

    from styleclip.utils.memory import keep_freed_memory

    keep_freed_memory()  # both networks get the kept-memory allocator: the speed figures are taken that way
    torch.set_num_threads(torch.get_num_threads())
    import styleclip

    out = {"rss_after_import_mb": _mb(status_kb("VmRSS")), "package": str(Path(styleclip.__file__).parent)}
    impl, job, precision, res = case["impl"], case["job"], case["precision"], case["res"]
    t0 = time.perf_counter()
    if job == "step":
        import open_clip

        import styleclip
        from styleclip.guidance.clip import ClipGuide

        G = styleclip_generator(res)
        model = open_clip.create_model("ViT-B-32", pretrained=None)
        guide = ClipGuide(model, open_clip.get_tokenizer("ViT-B-32"), "ViT-B-32")
        out["weights_mb"] = tensor_mb([*G.parameters(), *G.buffers(), *model.parameters(), *model.buffers()])
        out["rss_before_pass_mb"] = _mb(status_kb("VmRSS"))
        styleclip.optimize(
            G, ["a really happy dog face with mouth open"], guide, seeds=[0], steps=case["repeats"] + 1,
            progress=False, precision=precision,
        )  # fmt: skip
        out["derived_mb"] = derived_mb(G)
    else:
        if impl == "nvidia":
            G = nvidia_generator(case["nvidia"], res)
            ws0 = G.mapping(torch.randn(1, 512, generator=torch.Generator().manual_seed(0)), None, truncation_psi=0.7)

            def synth(ws):
                return G.synthesis(ws, noise_mode="const")
        else:
            from styleclip.utils.precision import computing_in

            G = styleclip_generator(res)
            ws0 = G.mapping_forward(G.z_from_seed(0), truncation_psi=0.7)

            def synth(ws):
                with computing_in(precision):
                    return G.synthesize(ws)

        ws0 = ws0.detach()
        out["weights_mb"] = tensor_mb([*G.parameters(), *G.buffers()])
        gc.collect()
        out["rss_before_pass_mb"] = _mb(status_kb("VmRSS"))
        for _ in range(case["repeats"]):
            if job == "forward":
                with torch.no_grad():
                    img = synth(ws0)
            else:
                ws = ws0.clone().requires_grad_(True)
                img = synth(ws)
                img.float().square().mean().backward()
            del img
        if impl == "styleclip":
            out["derived_mb"] = derived_mb(G)
    out["rss_after_mb"] = _mb(status_kb("VmRSS"))
    out["peak_rss_mb"] = _mb(status_kb("VmHWM"))
    out["pass_peak_mb"] = round(out["peak_rss_mb"] - out["rss_before_pass_mb"], 1)
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    return out


def cases(args) -> list[dict]:
    todo = []
    for res in args.res:
        for job in args.jobs:
            if job == "step":
                continue
            for precision in args.precision:
                todo.append({"impl": "styleclip", "res": res, "job": job, "precision": precision})
            if args.nvidia:
                todo.append({"impl": "nvidia", "res": res, "job": job, "precision": "fp32", "nvidia": args.nvidia})
            if args.before and job == "forward":
                for precision in args.precision:
                    todo.append({"impl": "styleclip", "res": res, "job": job, "precision": precision,
                                 "version": "before", "src": args.before})  # fmt: skip
    if "step" in args.jobs:
        for res in args.step_res:
            for precision in args.precision:
                todo.append({"impl": "styleclip", "res": res, "job": "step", "precision": precision})
    return todo


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--step-res", type=int, nargs="+", default=[1024], help="resolutions of the optimisation step")
    ap.add_argument("--jobs", nargs="+", default=["forward", "forward+backward", "step"],
                    choices=["forward", "forward+backward", "step"])  # fmt: skip
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--nvidia", default=None, help="a checkout of NVlabs/stylegan2-ada-pytorch to compare with")
    ap.add_argument("--before", default=None, help="a folder holding an older styleclip package (forward cases)")
    ap.add_argument("--repeats", type=int, default=3, help="passes (or steps after the first) per process")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    rows = []
    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")])}
    for case in cases(args):
        case["repeats"] = args.repeats
        cmd = [sys.executable, __file__, "--child", json.dumps(case)]
        case_env = {**env, "PYTHONPATH": os.pathsep.join([case["src"], env["PYTHONPATH"]])} if "src" in case else env
        done = subprocess.run(cmd, env=case_env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{case}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        row = {k: v for k, v in case.items() if k not in ("nvidia", "src")} | json.loads(
            done.stdout.strip().splitlines()[-1]
        )
        rows.append(row)
        name = row["impl"] + (" (before)" if row.get("version") == "before" else "")
        print(f"{name:18s} {row['res']:5d}px {row['precision']} {row['job']:17s} peak {row['peak_rss_mb']:7.0f} MB"
              f"  (before the pass {row['rss_before_pass_mb']:6.0f} MB: weights {row['weights_mb']:5.0f},"
              f" derived copies {row.get('derived_mb', 0):5.0f}; the pass adds {row['pass_peak_mb']:6.0f} MB)",
              flush=True)  # fmt: skip
    import torch

    write_report("bench_memory", torch.device("cpu"), rows, args.json or RESULTS / "bench_memory.json",
                 repeats=args.repeats, measure="VmHWM, one process per case")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
