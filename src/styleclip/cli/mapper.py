"""``styleclip mapper``: train a latent mapper for a prompt (one process or ``torchrun``), apply one to images."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..guidance.clip import DEFAULT_CLIP
from .options import add_adapted_argument, add_compile_argument, add_precision_argument, say_adapted

NAME = "mapper"
HELP = "latent mappers: train one for a prompt (torchrun for several GPUs), apply one in a single forward pass"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    tr = sub.add_parser("train", help="train a mapper for a prompt (resumable; torchrun -m styleclip for many GPUs)")
    ap = sub.add_parser("apply", help="edit seeds, saved latents or a photo with a trained or published mapper")
    for q in (tr, ap):
        q.add_argument("--clip", default=DEFAULT_CLIP, help=f"CLIP model name or checkpoint path ({DEFAULT_CLIP})")
        q.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
        q.add_argument("--cache", type=Path, default=None, help="model cache folder (default $STYLECLIP_HOME)")
        q.add_argument("--offline", action="store_true", default=None, help="never download; use the cache only")
        q.add_argument("--outdir", type=Path, required=True)
        q.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --outdir")

    tr.add_argument("--generator", required=True, help="model name (styleclip models list), path or URL")
    tr.add_argument("--prompt", required=True, help="the edit, e.g. 'mohawk hairstyle'")
    tr.add_argument("--steps", type=int, default=50_000, help="optimiser steps (50000)")
    tr.add_argument("--batch-size", type=int, default=2, help="images per step over all processes (2)")
    tr.add_argument("--lr", type=float, default=0.5, help="learning rate (0.5)")
    tr.add_argument("--optimizer", choices=["ranger", "adam"], default="ranger")
    tr.add_argument("--clip-weight", type=float, default=1.0, help="λ_CLIP (1.0)")
    tr.add_argument("--l2", type=float, default=0.8, help="λ_L2 on the mean squared latent change (0.8)")
    tr.add_argument("--id-weight", type=float, default=None, help="λ_ID (0.1 for face generators, else 0)")
    tr.add_argument("--identity", help="ArcFace IR-SE50 weights, path or name (default arcface:ir-se50)")
    tr.add_argument("--domain", help="override the generator's domain (face turns the identity loss on)")
    tr.add_argument("--groups", default="coarse,medium,fine", help="row groups with a network (all three)")
    tr.add_argument("--strength", type=float, default=0.1, help="s in w' = w + s·M(w) while training (0.1)")
    tr.add_argument("--latents", type=Path, help="training latents (styleclip invert output, train_faces.pt)")
    tr.add_argument("--test-latents", type=Path, help="held-out latents (default: sampled, or 1/10 of --latents)")
    tr.add_argument("--train-size", type=int, default=5000, help="sampled training latents; 0 = fresh each step")
    tr.add_argument("--test-size", type=int, default=1000, help="sampled held-out latents (1000)")
    tr.add_argument("--trunc", type=float, default=0.7, help="truncation psi of sampled latents (0.7)")
    tr.add_argument("--val-every", type=int, default=2000, help="steps between validations (2000)")
    tr.add_argument("--val-count", type=int, default=200, help="held-out latents per validation (200)")
    tr.add_argument("--checkpoint-every", type=int, default=2000, help="steps between checkpoints (2000)")
    tr.add_argument("--log-every", type=int, default=50, help="steps between log lines (50)")
    tr.add_argument("--keep", type=int, default=2, help="training checkpoints kept (2)")
    tr.add_argument("--seed", type=int, default=0, help="initial weights, sampled latents and data order (0)")
    tr.add_argument("--preprocess", choices=["auto", "clip", "styleclip"], default="auto")
    add_precision_argument(tr)
    add_compile_argument(tr)
    tr.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --outdir")

    add_precision_argument(ap)
    ap.add_argument("--mapper", required=True, help="mapper name (styleclip-mapper:mohawk or mohawk), path or URL")
    ap.add_argument("--generator", help="generator to edit with (default: the mapper's own; with --adapted: its base)")
    add_adapted_argument(ap)
    ap.add_argument("--allow-other-generator", action="store_true",
                    help="use --generator even if the mapper was trained with another one (then try --strength)")  # fmt: skip
    ap.add_argument("--strength", type=float, default=None, help="s in w' = w + s·M(w) (default: the mapper's, 0.1)")
    ap.add_argument("--seeds", default=None, help="source seeds, e.g. 0-7 (default 0)")
    ap.add_argument("--latent", type=Path, help="edit latents saved by generate/edit/invert instead of seeds")
    ap.add_argument("--offsets", type=Path, metavar="FILE",
                     help="with --latent: the HyperStyle offsets saved beside it (offsets.safetensors)")  # fmt: skip
    ap.add_argument("--image", type=Path, help="edit a photo: inverted first (photo options below)")
    ap.add_argument("--trunc", type=float, default=0.7, help="truncation psi of seed sources (0.7)")
    ap.add_argument("--prompt", help="text the report scores against (default: the mapper's own prompt)")
    ap.add_argument("--sweep-count", type=int, default=9, help="strengths from 0 to 2·s in the sweep video (9)")
    ap.add_argument("--fps", type=float, default=5.0, help="sweep video frame rate (5)")
    ap.add_argument("--no-video", action="store_true", help="write no sweep video")
    ap.add_argument("--no-identity", action="store_true", help="skip the ArcFace score for face generators")
    from .invert import add_photo_arguments

    add_photo_arguments(ap.add_argument_group("photo options (with --image)"))


# A training run's folder (see styleclip.training.checkpoints) and what ``apply`` writes.
TRAIN_OUTPUTS = ("mapper.safetensors", "checkpoints/step-*.safetensors", "log.jsonl", "val/*.png", "tensorboard")
_EDIT = ("before.png", "after.png", "compare.png", "latent.npy")
APPLY_OUTPUTS = (*_EDIT, *(f"*/{n}" for n in _EDIT), "sweep.png", "sweep.mp4", "report.json", "inversion")


def run(args: argparse.Namespace) -> int:
    from ..utils.files import check_outdir, refuse_earlier_results

    check_outdir(args.outdir)  # all of this before minutes of loading, not after
    if args.action == "train":
        if args.resume and args.overwrite:
            raise UsageError("--resume continues the run in --outdir and --overwrite starts it again; give one")
        if not args.resume:
            fix = "pass --resume to continue it, --overwrite to start it again, or choose another folder"
            refuse_earlier_results(args.outdir, TRAIN_OUTPUTS, overwrite=args.overwrite, fix=fix)
        else:
            from ..training.checkpoints import refuse_linked_folders

            refuse_linked_folders(args.outdir)
        return _train(args)
    refuse_earlier_results(args.outdir, APPLY_OUTPUTS, overwrite=args.overwrite)
    return _apply(args)


def _train(args: argparse.Namespace) -> int:
    from ..hub.generators import load_generator
    from ..training.mapper import MapperTrainConfig, train_mapper
    from ..utils.devices import resolve_device
    from ..utils.distributed import setup

    config = MapperTrainConfig(
        prompt=args.prompt, steps=args.steps, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        clip_weight=args.clip_weight, l2_weight=args.l2, id_weight=args.id_weight,
        groups=tuple(g.strip() for g in args.groups.split(",") if g.strip()), strength=args.strength,
        latents=str(args.latents.resolve()) if args.latents else None,
        test_latents=str(args.test_latents.resolve()) if args.test_latents else None,
        train_size=args.train_size, test_size=args.test_size, truncation_psi=args.trunc, val_every=args.val_every,
        val_count=args.val_count, checkpoint_every=args.checkpoint_every, log_every=args.log_every, seed=args.seed,
        clip=args.clip, preprocess=args.preprocess, identity=args.identity, precision=args.precision,
        keep_checkpoints=args.keep, compile=args.compile,
    )  # fmt: skip
    config.check()
    ctx = setup(resolve_device(args.device))  # joins torchrun's group first, so each process loads onto its GPU
    try:
        G = load_generator(args.generator, device=ctx.device, cache=args.cache, offline=args.offline)
        if args.domain:
            G.meta["domain"] = args.domain
        if ctx.is_main and args.overwrite:  # an earlier run's later steps must not pass for this run's newest
            from ..training.checkpoints import clear_run

            clear_run(args.outdir)
        if ctx.is_main:
            what = G.meta.get("asset") or G.meta.get("source")
            print(
                f"styleclip mapper: training {args.prompt!r} for {what} on {ctx.world} x {ctx.device}", file=sys.stderr
            )
        result = train_mapper(G, config, outdir=args.outdir, resume=args.resume, device=ctx.device)
    finally:
        ctx.close()
    if ctx.is_main:
        last = next((h for h in reversed(result.history) if h["split"] == "val"), None)
        score = f", held-out CLIP loss {last['clip']:.4f}" if last else ""
        print(f"{result.stopped} at step {result.steps_done}{score}; mapper in {result.path}")
    return 130 if result.stopped == "interrupted" else 0


def _apply(args: argparse.Namespace) -> int:
    from ..utils.devices import resolve_device
    from ..utils.precision import computing_in, resolve_precision

    with computing_in(resolve_precision(args.precision, resolve_device(args.device))):  # generator and CLIP
        return _apply_in_scope(args)


def _apply_in_scope(args: argparse.Namespace) -> int:
    import torch

    from ..hub.mappers import load_mapper
    from ..utils.devices import resolve_device
    from ..utils.precision import current_precision, describe

    if sum(x is not None for x in (args.latent, args.seeds, args.image)) > 1:
        raise UsageError("give one source: --seeds, --latent or --image")
    if args.pti:  # said before minutes of inversion, not after
        if args.adapted is not None:
            from ..adapted import PTI_REFUSAL

            raise UsageError(PTI_REFUSAL)
        raise UsageError("--pti tunes a copy of the generator, which the mapper was not trained for; drop --pti")
    if args.sweep_count < 2 or args.fps <= 0:
        raise UsageError("--sweep-count must be >= 2 and --fps > 0")
    device = resolve_device(args.device)
    mapper = load_mapper(
        args.mapper, generator=args.generator, device=device, check_generator=not args.allow_other_generator,
        cache=args.cache, offline=args.offline,
    )  # fmt: skip
    from ..adapted import summary

    G = mapper.generator  # the base: the mapper edits its codes
    drawn = None
    if args.adapted is not None:
        from ..adapted import load_adapted

        drawn = load_adapted(args.adapted, G, cache=args.cache, offline=args.offline)
        say_adapted(drawn)
    strength = mapper.config.strength if args.strength is None else args.strength
    prompt = args.prompt or mapper.meta.get("prompt")
    if not prompt:
        raise UsageError("this mapper records no prompt; pass --prompt for the report's CLIP score")
    from .invert import sources_from_args

    src = sources_from_args(args, G, args.generator or args.mapper, args.trunc, adapted=drawn)
    ws, names, source_note, D = src.ws, src.names, src.note, src.generator  # D draws: G, or the adapted one
    with torch.no_grad():
        t0 = time.perf_counter()
        edited = mapper.edit(ws, strength)
        _sync(device)
        t_mapper = time.perf_counter() - t0
        before, after = D.synthesize(ws), D.synthesize(edited)
        _sync(device)
        t_total = time.perf_counter() - t0
    scores = _scores(args, G, device, prompt, before, after)
    outputs = _write(args, mapper, ws, edited, before, after, names, strength, prompt, scores, source_note, D)
    report = {
        "mapper": {"name": args.mapper, **{k: v for k, v in mapper.meta.items() if k != "training"}},
        "generator": {"name": args.generator, "asset": G.meta.get("asset"), "source": G.meta.get("source")},
        "adapted": summary(D),
        "groups": {g: [lo, hi - 1] for g, (lo, hi) in mapper.rows.items()},
        "strength": strength,
        "prompt": prompt,
        "clip": args.clip,
        "sources": names,
        "results": scores,
        "seconds": {"mapper": round(t_mapper, 5), "mapper_and_synthesis": round(t_total, 4)},
        "outputs": outputs,
        "precision": describe(args.precision, current_precision(), device),
    }
    from ..utils.files import atomic_write

    text = json.dumps(report, indent=1, default=str)
    atomic_write(args.outdir / "report.json", lambda tmp: tmp.write_text(text))
    for name, s in zip(names, scores, strict=True):
        ident = f", identity {s['identity_similarity']:.3f}" if s.get("identity_similarity") is not None else ""
        print(f"{name}: CLIP {s['clip_similarity_before']:.3f} -> {s['clip_similarity_after']:.3f}{ident}")
    print(f"wrote {len(names)} edit(s), {', '.join(o for o in outputs if '/' not in o)} to {args.outdir}")
    return 0


def _scores(args, G, device, prompt: str, before, after) -> list[dict]:
    import torch

    from ..guidance.clip import load_clip

    guide = load_clip(args.clip, device=device)
    with torch.no_grad():
        text = guide.encode_text(prompt)
        cos_before = (guide.encode_image(before) @ text.T)[:, 0].tolist()
        cos_after = (guide.encode_image(after) @ text.T)[:, 0].tolist()
        ident = None
        if G.meta.get("domain") == "face" and not args.no_identity:
            from ..guidance.identity import load_identity_loss

            arcface = load_identity_loss(cache=args.cache, offline=args.offline).to(device)
            ident = (arcface.embed(after) * arcface.embed(before)).sum(-1).tolist()
    return [
        {"clip_similarity_before": b, "clip_similarity_after": a, "identity_similarity": ident[i] if ident else None}
        for i, (b, a) in enumerate(zip(cos_before, cos_after, strict=True))
    ]


def _write(args, mapper, ws, edited, before, after, names, strength, prompt, scores, source_note, D) -> list[str]:
    import torch

    from ..adapted import summary
    from ..io.images import compare_image, image_grid, save_png, to_pil
    from ..io.video import VideoWriter
    from ..reports import REPORT_KEY
    from ..utils.files import atomic_save_arrays, make_folder

    make_folder(args.outdir)
    params = {"mapper": args.mapper, "generator": args.generator, "strength": strength, "prompt": prompt,
              "source": source_note}  # fmt: skip
    if summary(D) is not None:
        params["adapted"] = summary(D)
    outputs = []
    for i, name in enumerate(names):
        where = args.outdir if len(names) == 1 else args.outdir / name
        prefix = "" if len(names) == 1 else f"{name}/"
        text = {REPORT_KEY: json.dumps({**params, "name": name, **scores[i]}, default=str)}
        b, a = to_pil(before[i : i + 1])[0], to_pil(after[i : i + 1])[0]
        save_png(b, where / "before.png", text={**text, "styleclip:role": "source"})
        save_png(a, where / "after.png", text=text)
        s = scores[i]
        label = f"after: {prompt} (s {strength:g}; CLIP {s['clip_similarity_before']:.3f} -> {s['clip_similarity_after']:.3f})"
        save_png(compare_image([b, a], ["before", label]), where / "compare.png", text=text)
        atomic_save_arrays(where / "latent.npy", edited[i : i + 1].cpu().numpy())
        outputs += [f"{prefix}{n}" for n in ("before.png", "after.png", "compare.png", "latent.npy")]
    strengths = [round(float(v), 4) for v in np.linspace(0, 2 * strength, args.sweep_count)]
    with torch.no_grad():
        sweep = [to_pil(D.synthesize(mapper.edit(ws, s))) for s in strengths]
    rows = [[frames[i] for frames in sweep] for i in range(len(names))]
    save_png(
        image_grid(rows, [f"s {s:g}" for s in strengths]),
        args.outdir / "sweep.png",
        text={REPORT_KEY: json.dumps(params)},
    )
    outputs.append("sweep.png")
    if not args.no_video:
        with VideoWriter(args.outdir / "sweep.mp4", fps=args.fps) as video:
            for k in [*range(len(strengths)), *range(len(strengths) - 2, 0, -1)]:  # there and back, so it loops
                video.append(np.concatenate([np.asarray(im.convert("RGB")) for im in sweep[k]], axis=1))
        outputs.append("sweep.mp4")
    return [*outputs, "report.json"]


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
