"""``styleclip generate``: images and their latents from seeds, matching NVIDIA's generate.py."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from ..errors import UsageError
from ..io.images import save_png, to_pil
from ..nets.stylegan3 import Generator3
from ..sample import parse_seeds, sample
from ..utils.files import atomic_save_arrays, check_outdir, make_folder, refuse_earlier_results
from ..utils.precision import computing_in, resolve_precision
from .options import add_adapted_argument, say_adapted

NAME = "generate"
HELP = "draw images from seeds with a StyleGAN2/3 generator (same seeds, same images as NVIDIA's generate.py)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator", help="model name (styleclip models list), path or URL (with --adapted: its base)")
    add_adapted_argument(p)
    p.add_argument("--seeds", default="0-7", help="seed list, e.g. 0-7 or 1,5,9 (default 0-7)")
    p.add_argument("--trunc", type=float, default=1.0, help="truncation psi (default 1 = none; 0.7 is common)")
    p.add_argument("--trunc-cutoff", type=int, default=None, help="truncate only the first N W+ layers")
    p.add_argument("--class", dest="class_idx", type=int, default=None, help="class index for conditional models")
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    p.add_argument(
        "--translate",
        metavar="X,Y",
        default=None,
        help="StyleGAN3: shift the picture by X,Y (fractions of its side; --translate=-0.2,0 for a negative X)",
    )
    p.add_argument("--rotate", metavar="DEG", type=float, default=None, help="StyleGAN3: rotate the picture (degrees)")
    p.add_argument("--outdir", required=True, type=Path, help="where to write seedNNNN.png and seedNNNN.npy")
    p.add_argument("--overwrite", action="store_true", help="replace the images and latents of these seeds")
    p.add_argument("--batch-size", type=int, default=1, help="seeds per forward pass")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default=None,
                   help="the generator's arithmetic (default: as NVIDIA's generate.py, fp32 on CPUs and the "
                   "checkpoint's fp16 layers on CUDA, for the same pixels)")  # fmt: skip
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--cache", type=Path, default=None, help="model cache folder (default $STYLECLIP_HOME)")
    p.add_argument("--offline", action="store_true", default=None, help="never download; use the cache only")


def _vec2(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--translate takes two numbers like 0.3,-0.1, got {text!r}") from None
    return x, y


def run(args: argparse.Namespace) -> int:
    seeds = parse_seeds(args.seeds)
    translate = _vec2(args.translate)
    check_outdir(args.outdir)
    names = [f"seed{s:04d}.{ext}" for s in seeds for ext in ("png", "npy")]
    refuse_earlier_results(args.outdir, names, overwrite=args.overwrite)  # before minutes of loading
    from ..adapted import load_pair, summary

    base, generator, drawn = load_pair(args.generator, args.adapted, args.device, args.cache, args.offline)
    say_adapted(drawn)
    G = drawn or base  # the base's mapping, the adapted synthesis network
    adapted = summary(G)
    make_folder(args.outdir)
    rotate = args.rotate
    if isinstance(G, Generator3):
        # NVIDIA's gen_images.py sets the input transform from --translate/--rotate on every run, the identity when
        # both are 0, whatever matrix the pickle stored (a training snapshot may hold any); the API keeps the stored.
        translate, rotate = translate or (0.0, 0.0), rotate or 0.0
    precision = resolve_precision(args.precision, G.device) if args.precision else None
    done = 0
    try:
        with computing_in(precision):
            for s in tqdm(
                sample(
                    G,
                    seeds,
                    args.trunc,
                    args.trunc_cutoff,
                    args.class_idx,
                    args.noise_mode,
                    args.batch_size,
                    translate=translate,
                    rotate=rotate,
                ),
                total=len(seeds),
                desc="generate",
                unit="img",
                disable=None,
            ):
                text = {
                    "styleclip:generator": base.meta.get("source", generator),
                    "styleclip:seed": s.seed,
                    "styleclip:trunc": args.trunc,
                    "styleclip:trunc_cutoff": args.trunc_cutoff,
                    "styleclip:class": args.class_idx,
                    "styleclip:noise_mode": args.noise_mode,
                    "styleclip:precision": precision or "as generate.py",
                }
                if adapted is not None:
                    text["styleclip:adapted"] = json.dumps(adapted, default=str)
                if translate is not None or rotate is not None:
                    text["styleclip:translate"] = [float(v) for v in translate or (0, 0)]
                    text["styleclip:rotate"] = float(rotate or 0)
                save_png(to_pil(s.image)[0], args.outdir / f"seed{s.seed:04d}.png", text=text)
                atomic_save_arrays(args.outdir / f"seed{s.seed:04d}.npy", s.ws.cpu().numpy())
                done += 1
    except KeyboardInterrupt:
        print(f"interrupted: {done} of {len(seeds)} images written to {args.outdir}", file=sys.stderr)
        return 130
    print(f"wrote {done} images to {args.outdir}")
    return 0
