"""``styleclip directions``: precompute a generator's channel relevance, then apply text directions to images."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..guidance.clip import DEFAULT_CLIP
from ..utils.files import check_outdir, check_output_file, make_folder, refuse_earlier_results
from .options import add_adapted_argument, add_precision_argument, say_adapted

NAME = "directions"

# What ``apply`` writes: the sweep, delta and report at the top of --outdir; before/after there (one source) or in
# one folder per source; ``inversion/`` for a photo.
APPLY_OUTPUTS = ("before.png", "after.png", "*/before.png", "*/after.png", "sweep.png", "sweep.mp4", "delta.npz",
                 "report.json", "inversion")  # fmt: skip
HELP = "global directions: precompute channel relevance for a generator, apply 'neutral -> target' edits"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    pre = sub.add_parser("precompute", help="channel relevance of a generator for a CLIP model (resumable)")
    app = sub.add_parser("apply", help="edit images along the direction from a neutral to a target text")
    pre.add_argument("--generator", required=True, help="model name (styleclip models list), path or URL")
    app.add_argument("--generator", help="model name (styleclip models list), path or URL (with --adapted: its base)")
    add_adapted_argument(app)
    for q in (pre, app):
        q.add_argument("--clip", default=DEFAULT_CLIP, help=f"CLIP model name or checkpoint path ({DEFAULT_CLIP})")
        q.add_argument("--samples", type=int, default=100_000, help="latents for the style statistics (100000)")
        q.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
        add_precision_argument(q)
        q.add_argument("--cache", type=Path, default=None, help="model cache folder (default $STYLECLIP_HOME)")
        q.add_argument("--offline", action="store_true", default=None, help="never download; use the cache only")

    pre.add_argument("--method", choices=["finite-difference", "gradient"], default="finite-difference",
                     help="StyleCLIP's finite differences (hours on a GPU at 1024 px) or Jacobians (minutes)")  # fmt: skip
    pre.add_argument("--images", type=int, default=None, help="images per channel (100; gradient: 20)")
    pre.add_argument("--k", type=float, default=5.0, help="finite differences at mean ± k·std (5)")
    pre.add_argument("--max-resolution", type=int, default=128, help="conv layers up to this resolution (128)")
    pre.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    pre.add_argument("--out", type=Path, default=None, help="where to save (default: beside the generator's cache)")

    app.add_argument("--target", required=True, help="what the edit should show, e.g. 'a happy dog'")
    app.add_argument("--neutral", required=True, help="the same without the change, e.g. 'a dog'")
    app.add_argument("--alpha", type=float, default=4.0, help="strength, -10..10 (default 4; negative reverses)")
    app.add_argument("--beta", default="0.15", help="disentanglement 0.08-0.3 (default 0.15), or 'auto'")
    app.add_argument("--relevance", help="relevance matrix file or catalogue name (default: official or precomputed)")
    app.add_argument("--seeds", default=None, help="source seeds, e.g. 0-3 (default 0)")
    app.add_argument("--latent", type=Path, help="edit latents saved by generate/edit/invert instead of seeds")
    app.add_argument("--offsets", type=Path, metavar="FILE",
                     help="with --latent: the HyperStyle offsets saved beside it (offsets.safetensors)")  # fmt: skip
    app.add_argument("--image", type=Path, help="edit a photo: inverted first (photo options below)")
    from .invert import add_photo_arguments

    add_photo_arguments(app.add_argument_group("photo options (with --image)"))
    app.add_argument("--trunc", type=float, default=0.7, help="truncation psi of seed sources (0.7)")
    app.add_argument("--class", dest="class_idx", type=int, default=None, help="class of conditional generators")
    app.add_argument("--sweep", type=float, default=5.0, help="the grid and video sweep alpha over ±this (5)")
    app.add_argument("--sweep-count", type=int, default=11, help="alpha values in the sweep (11)")
    app.add_argument("--fps", type=float, default=5.0, help="sweep video frame rate (5)")
    app.add_argument("--no-video", action="store_true", help="write no sweep video")
    app.add_argument("--outdir", type=Path, required=True)
    app.add_argument("--overwrite", action="store_true", help="replace the results of an earlier apply in --outdir")


def run(args: argparse.Namespace) -> int:
    from ..guidance.clip import load_clip
    from ..hub.generators import load_generator
    from ..stylespace import style_statistics
    from ..utils.devices import resolve_device

    if args.samples < 2:
        raise UsageError("--samples must be at least 2")
    if args.action == "apply" and args.class_idx is not None and args.image is not None:
        raise UsageError("--class chooses the class of seed sources; a photo has none")
    if args.action == "apply":  # said before minutes of loading and statistics, not after
        check_outdir(args.outdir)
        refuse_earlier_results(args.outdir, APPLY_OUTPUTS, overwrite=args.overwrite)
    elif args.out is not None:
        check_output_file(args.out, flag="--out")
    from ..utils.distributed import Context, setup
    from ..utils.precision import computing_in, describe, resolve_precision

    # under torchrun, precompute shares the channels out between the processes (one device each)
    ctx = setup(resolve_device(args.device)) if args.action == "precompute" else Context()
    try:
        device = ctx.device or resolve_device(args.device)
        if args.action == "apply":  # the relevance and statistics are the base's; the adapted network draws
            if args.adapted is not None and args.pti:
                from ..adapted import PTI_REFUSAL

                raise UsageError(PTI_REFUSAL)
            from ..adapted import load_pair

            G, args.generator, args.drawn = load_pair(args.generator, args.adapted, device, args.cache, args.offline)
            say_adapted(args.drawn)
        else:
            G = load_generator(args.generator, device=device, cache=args.cache, offline=args.offline)
        guide = load_clip(args.clip, device=device)
        precision = resolve_precision(args.precision, device)
        args.precision_used = describe(args.precision, precision, device)

        def stats():  # 100k latents the first time: only once the arguments and the matrix are known to be good
            return style_statistics(G, samples=args.samples, cache=args.cache)

        with computing_in(precision):  # generator and CLIP; statistics and relevance sums stay fp32
            if args.action == "precompute":
                if not ctx.is_main:  # process 0 computes the statistics once; the others read them from the cache
                    ctx.barrier()
                shared = stats()
                if ctx.is_main:
                    ctx.barrier()
                return _precompute(args, G, guide, shared, ctx)
            return _apply(args, G, guide, stats)
    finally:
        ctx.close()


def _precompute(args, G, guide, stats, ctx) -> int:
    from ..edits.relevance import merge_relevance_shards, relevance_matrix, relevance_matrix_gradient
    from ..edits.relevance_files import default_relevance_path

    out = args.out or default_relevance_path(G, guide.name, args.method, args.cache)
    if out.suffix != ".npz":  # .npy is StyleCLIP's format for its own matrices; ours carry metadata
        out = out.with_name(out.name + ".npz")
    t0 = time.perf_counter()
    if args.method == "gradient":  # minutes: process 0 alone
        if not ctx.is_main:
            ctx.barrier()
            return 0
        matrix = relevance_matrix_gradient(
            G, guide, stats, images=args.images or 20, max_resolution=args.max_resolution, batch_size=args.batch_size
        )
    else:

        def shard_file(rank: int):
            return out.with_name(
                out.stem + (".partial.npz" if ctx.world == 1 else f".partial.{rank}-of-{ctx.world}.npz")
            )

        checkpoint = shard_file(ctx.rank)
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        try:
            matrix = relevance_matrix(
                G, guide, stats, images=args.images or 100, k=args.k, max_resolution=args.max_resolution,
                batch_size=args.batch_size, checkpoint=checkpoint, shard=(ctx.rank, ctx.world),
            )  # fmt: skip
        except KeyboardInterrupt:
            print(f"styleclip directions: interrupted; run the same command again to resume ({checkpoint})",
                  file=sys.stderr)  # fmt: skip
            return 130
        ctx.barrier()  # every shard is written
        if not ctx.is_main:
            ctx.barrier()
            return 0
        shards = [shard_file(r) for r in range(ctx.world)]
        if ctx.world > 1:
            matrix = merge_relevance_shards(shards, G, stats)
    matrix.meta["seconds"] = round(time.perf_counter() - t0, 1)
    matrix.save(out)
    if args.method != "gradient":
        for shard in shards:
            shard.unlink(missing_ok=True)
    ctx.barrier()  # the others wait until the matrix is saved
    print(f"relevance of {matrix.layout.size} channels ({args.method}, {matrix.meta['seconds']} s) -> {out}")
    return 0


def _sweep(limit: float, count: int) -> list[float]:
    if count < 2 or not np.isfinite(limit) or limit <= 0:
        raise UsageError("the sweep needs --sweep > 0 and --sweep-count >= 2")
    return [round(float(v), 4) for v in np.linspace(-limit, limit, count)]


def _apply(args, G, guide, get_stats) -> int:
    import torch

    from ..edits.global_direction import global_direction
    from ..edits.relevance_files import find_relevance
    from ..io.images import image_grid, save_png, to_pil, to_uint8
    from ..io.video import VideoWriter
    from ..utils.files import atomic_save_arrays, atomic_write

    if sum(x is not None for x in (args.latent, args.seeds, args.image)) > 1:
        raise UsageError("give one source: --seeds, --latent or --image")
    beta = None if str(args.beta).lower() == "auto" else _float(args.beta, "--beta")
    alphas = _sweep(args.sweep, args.sweep_count)
    matrix = find_relevance(G, guide.name, args.relevance, args.cache, args.offline, generator=args.generator)
    stats = get_stats()
    t0 = time.perf_counter()
    direction = global_direction(
        guide, args.target, args.neutral, matrix, stats, beta=beta, domain=G.meta.get("domain")
    )
    t_direction = time.perf_counter() - t0
    from ..adapted import summary
    from .invert import sources_from_args

    base = G
    src = sources_from_args(args, G, args.generator, args.trunc, args.class_idx, adapted=args.drawn)
    # a photo tuned by PTI is drawn by its tuned generator; with --adapted, the adapted network applies the base's
    # Δs to its own style codes (G.styles(ws) below are the adapted generator's)
    G, ws, names = src.generator, src.ws, src.names
    with torch.no_grad():
        styles = G.styles(ws)
        t1 = time.perf_counter()
        before = G.synthesis_from_styles(styles)
        after = G.synthesis_from_styles(direction.apply(styles, args.alpha))
        t_apply = time.perf_counter() - t1
        sweep = [to_pil(G.synthesis_from_styles(direction.apply(styles, a))) for a in alphas]

    make_folder(args.outdir)
    text = {"styleclip:target": args.target, "styleclip:neutral": args.neutral, "styleclip:alpha": args.alpha,
            "styleclip:beta": direction.beta}  # fmt: skip
    if summary(G) is not None:
        text["styleclip:adapted"] = json.dumps(summary(G), default=str)
    for i, name in enumerate(names):
        where = args.outdir if len(names) == 1 else args.outdir / name
        own = dict(text)
        if name.startswith("seed"):  # lets the web UI restore the source along with the direction
            own.update({"styleclip:seed": str(src.seeds[i]), "styleclip:truncation_psi": str(args.trunc)})
        save_png(to_pil(before[i : i + 1])[0], where / "before.png", text=own)
        save_png(to_pil(after[i : i + 1])[0], where / "after.png", text=own)
    rows = [[frames[i] for frames in sweep] for i in range(len(names))]
    save_png(image_grid(rows, [f"α {a:g}" for a in alphas]), args.outdir / "sweep.png", text=text)
    if not args.no_video:
        with VideoWriter(args.outdir / "sweep.mp4", fps=args.fps) as video:
            order = [*range(len(alphas)), *range(len(alphas) - 2, 0, -1)]  # there and back, so that it loops
            for k in order:
                side_by_side = [np.asarray(im.convert("RGB")) for im in sweep[k]]
                video.append(np.concatenate(side_by_side, axis=1))
    delta = {k: v.numpy() for k, v in direction.layout.unflatten(direction.delta).items()}
    atomic_save_arrays(args.outdir / "delta.npz", delta)
    report = {
        "generator": {"name": args.generator, "asset": base.meta.get("asset"), "source": base.meta.get("source")},
        "adapted": summary(G),
        "clip": guide.name,
        "target": args.target,
        "neutral": args.neutral,
        "alpha": args.alpha,
        "beta": direction.beta,
        "beta_automatic": beta is None,
        "channels_changed": direction.channels_changed,
        "channels_per_layer": direction.per_layer(),
        "relevance": matrix.meta,
        "statistics": stats.meta,
        "sources": names,
        "sweep_alphas": alphas,
        "seconds": {"direction": round(t_direction, 4), "apply": round(t_apply, 4)},
        "precision": args.precision_used,
        "max_pixel_change": int(np.abs(to_uint8(after).astype(int) - to_uint8(before).astype(int)).max()),
    }
    atomic_write(args.outdir / "report.json", lambda tmp: tmp.write_text(json.dumps(report, indent=1, default=str)))
    layers = ", ".join(f"{k} {v}" for k, v in direction.per_layer().items())
    print(
        f"{args.neutral!r} -> {args.target!r}: beta {direction.beta:g}, {direction.channels_changed} channels ({layers})"
    )
    print(
        f"wrote {len(names)} edit(s), sweep.png{'' if args.no_video else ', sweep.mp4'} and report.json to {args.outdir}"
    )
    return 0


def _float(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{name} must be a number or 'auto', got {text!r}") from None
