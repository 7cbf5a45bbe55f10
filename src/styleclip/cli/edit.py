"""``styleclip edit``: optimise a latent until the picture matches the prompt; write images, latent, video, report."""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import sys
from pathlib import Path

import numpy as np

from ..edits.optimize import EditResult, OptimizeConfig, optimize
from ..errors import UsageError
from ..guidance.clip import DEFAULT_CLIP
from ..io.images import compare_image, save_png, to_pil, to_uint8
from ..io.video import VideoWriter
from ..reports import REPORT_KEY
from ..sample import parse_seeds
from ..utils.files import atomic_save_arrays, atomic_write, check_outdir, make_folder, refuse_earlier_results
from .options import add_adapted_argument, add_compile_argument, add_precision_argument, say_adapted

NAME = "edit"


HELP = "edit a generated image (or a saved latent) towards a text prompt by latent optimisation"

MAX_EDITS = 100  # one command optimises all its edits as one batch: more is a typo (a seed range) or a huge file

# What an edit writes, at the top of --outdir (one edit) or in its numbered folders (several); an earlier edit's
# results anywhere there are not replaced without --overwrite, however many edits this run makes.
OUTPUTS = ("before.png", "after.png", "compare.png", "latent.npy", "styles.npz", "report.json", "trajectory.mp4",
           "trajectory.gif")  # fmt: skip
EARLIER_RESULTS = (*OUTPUTS, *(f"[0-9]*-*/{name}" for name in OUTPUTS), "inversion")


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("what to edit")
    src.add_argument("--generator", help="model name (styleclip models list), path or URL (with --adapted: its base)")
    add_adapted_argument(src)
    src.add_argument("--prompt", action="append", help="the target description; repeat for several prompts")
    src.add_argument("--seed", default=None, help="seed(s) of the source image, e.g. 9 or 1-4 (default 0)")
    src.add_argument("--latent", type=Path, help="edit latents saved by generate/edit/invert (.npy/.npz/.pt)")
    src.add_argument("--offsets", type=Path, metavar="FILE",
                     help="with --latent: the HyperStyle offsets saved beside it (offsets.safetensors)")  # fmt: skip
    src.add_argument("--image", type=Path, help="edit a photo: inverted first (see the photo options below)")
    src.add_argument("--mode", choices=["edit", "free"], default="edit", help="free: start from the mean latent")
    src.add_argument("--from-report", type=Path, help="repeat an edit from its report.json or output PNG")
    src.add_argument("--trust-report", action="store_true",
                     help="with --from-report: also open the paths and URLs it names (else catalogue names only)")  # fmt: skip
    src.add_argument("--max-edits", type=int, default=MAX_EDITS,
                     help=f"refuse to start more edits (prompts x sources) than this ({MAX_EDITS})")  # fmt: skip

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--space", choices=["w+", "w", "s"], default="w+", help="what is optimised (default w+)")
    opt.add_argument("--layers", help="which layers may change: coarse, medium, fine, rows 0-3,8, b16.conv0, ...")
    opt.add_argument("--steps", type=int, default=150, help="optimisation steps (default 150; 150-300 useful)")
    opt.add_argument("--lr", type=float, default=0.1, help="peak learning rate (default 0.1)")
    opt.add_argument("--rampup", type=float, default=0.05, help="fraction of steps ramping the lr up (0.05)")
    opt.add_argument("--rampdown", type=float, default=0.25, help="fraction of steps ramping it down (0.25)")
    opt.add_argument("--l2", type=float, default=0.008, help="λ_L2: 0.002 big changes .. 0.06 subtle (0.008)")
    opt.add_argument("--id-weight", type=float, default=None, help="λ_ID (default 0.005 for faces, else 0)")
    opt.add_argument("--identity", help="ArcFace IR-SE50 weights, path or name (default arcface:ir-se50)")
    opt.add_argument("--loss", choices=["global", "directional"], default="global")
    opt.add_argument("--neutral", help="neutral description for --loss directional, e.g. 'a dog'")
    opt.add_argument("--templates", action=argparse.BooleanOptionalAction, default=None,
                     help="average the prompt over CLIP's 80 ImageNet templates (default: directional only)")  # fmt: skip
    opt.add_argument("--augment", type=int, default=0, help="score N random crops per step instead of one image")
    opt.add_argument("--preprocess", choices=["clip", "styleclip"], default="clip")
    opt.add_argument("--trunc", type=float, default=0.7, help="truncation psi of seed sources (default 0.7)")
    opt.add_argument("--trunc-cutoff", type=int, default=None)
    opt.add_argument("--class", dest="class_idx", type=int, default=None, help="class of conditional generators")
    opt.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    opt.add_argument("--clip", default=None, help=f"CLIP model name or checkpoint path ({DEFAULT_CLIP})")
    opt.add_argument("--domain", help="override the generator's domain (face turns the identity loss on)")
    add_precision_argument(opt)
    add_compile_argument(opt)
    opt.add_argument("--max-steps", type=int, default=None, help="stop after this many steps, keep the best")
    opt.add_argument("--time-limit", type=float, default=None, help="stop after this many seconds, keep the best")

    from .invert import add_photo_arguments

    add_photo_arguments(p.add_argument_group("photo options (with --image)"))

    out = p.add_argument_group("output")
    out.add_argument("--outdir", type=Path, required=True, help="folder for the images, latent, video and report")
    out.add_argument("--overwrite", action="store_true", help="replace the results of an earlier edit in --outdir")
    out.add_argument("--frame-every", type=int, default=1, help="one video frame every k steps (default 1)")
    out.add_argument("--fps", type=float, default=15.0, help="video frame rate (default 15)")
    out.add_argument("--hold", type=float, default=1.0, help="seconds the final image stays on screen (default 1)")
    out.add_argument("--gif", action="store_true", help="write trajectory.gif instead of trajectory.mp4")
    out.add_argument("--no-video", action="store_true", help="write no trajectory video")
    out.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    out.add_argument("--cache", type=Path, default=None, help="model cache folder (default $STYLECLIP_HOME)")
    out.add_argument("--offline", action="store_true", default=None, help="never download; use the cache only")


def _config(args: argparse.Namespace) -> tuple[OptimizeConfig, str]:
    """The settings from the command line, or from a previous run's report (checked, before any model loads)."""
    if args.max_edits < 1:
        raise UsageError("--max-edits must be at least 1")
    if (args.max_steps is not None and args.max_steps < 1) or (
        args.time_limit is not None and not 0 < args.time_limit < math.inf
    ):
        raise UsageError("--max-steps must be at least 1 and --time-limit a positive number of seconds")
    if args.from_report is not None:
        from ..reports import config_from_report, describe_loads

        latent = str(args.latent.resolve()) if args.latent is not None else None
        config, generator = config_from_report(args.from_report, generator=args.generator, clip=args.clip,
                                               identity=args.identity, latent=latent, photo_given=args.image is not None,
                                               trust=args.trust_report)  # fmt: skip
        if args.adapted is None:  # the report's adapted generator, under the same rules as its generator
            from ..reports import adapted_from_report

            args.adapted = adapted_from_report(args.from_report, trust=args.trust_report)
        print(describe_loads(args.from_report, config, generator), flush=True)
        if args.adapted is not None:
            print(f"from report {args.from_report}: drawn by the adapted generator {args.adapted}", flush=True)
    else:
        config, generator = _config_from_args(args), args.generator
    config.check()
    if config.mode == "free":
        edits = len(config.prompts)
    elif config.latent is None:
        edits = len(config.prompts) * len(config.seeds)
    else:
        edits = len(config.prompts)  # times the latent file's rows, counted once the generator is known
    _check_edits(edits, args.max_edits)
    return config, generator


def _check_edits(edits: int, limit: int, what: str = "") -> None:
    if edits > limit:
        raise UsageError(f"{edits} edits{what} is more than --max-edits {limit}; raise --max-edits to start them all")


def _config_from_args(args: argparse.Namespace) -> OptimizeConfig:
    if args.trust_report:
        raise UsageError("--trust-report goes with --from-report")
    if not args.generator and not args.adapted:
        raise UsageError("name a generator: --generator NAME|PATH|URL (see styleclip models list)")
    if not args.prompt:
        raise UsageError("give a prompt: --prompt 'a really happy dog face with mouth open'")
    if args.latent is not None and args.seed is not None:
        raise UsageError("give --seed or --latent, not both")
    return OptimizeConfig(
        prompts=args.prompt or [],
        seeds=parse_seeds(args.seed or "0"),
        latent=str(args.latent.resolve()) if args.latent is not None else None,
        mode=args.mode,
        space=args.space,
        layers=args.layers,
        steps=args.steps,
        lr=args.lr,
        rampup=args.rampup,
        rampdown=args.rampdown,
        l2_weight=args.l2,
        id_weight=args.id_weight,
        loss=args.loss,
        neutral=args.neutral,
        templates=args.templates,
        augment=args.augment,
        preprocess=args.preprocess,
        truncation_psi=args.trunc,
        truncation_cutoff=args.trunc_cutoff,
        class_idx=args.class_idx,
        noise_mode=args.noise_mode,
        clip=args.clip or DEFAULT_CLIP,
        identity=args.identity,
        precision=args.precision,
        compile=args.compile,
    )


def run(args: argparse.Namespace) -> int:
    from ..utils.devices import resolve_device

    if args.image is not None and (args.seed is not None or args.latent is not None):
        raise UsageError("give one source: --image, --seed or --latent")
    if args.offsets is not None and args.latent is None:
        raise UsageError("--offsets go with the --latent they were inverted with (HyperStyle's latent.npy)")
    config, generator = _config(args)  # checked there
    if args.image is not None and config.space == "w":  # said before minutes of inversion, not after
        raise UsageError("an inverted photo is a W+ latent; edit it with --space w+ or s")
    if args.adapted is not None and args.image is not None and args.pti:
        from ..adapted import PTI_REFUSAL

        raise UsageError(PTI_REFUSAL)
    if args.frame_every < 1 or args.fps <= 0 or args.hold < 0:
        raise UsageError("--frame-every must be >= 1, --fps > 0 and --hold >= 0")
    check_outdir(args.outdir)
    refuse_earlier_results(args.outdir, EARLIER_RESULTS, overwrite=args.overwrite)  # before minutes of loading
    device = resolve_device(args.device)
    from ..adapted import load_pair, summary

    G, generator, drawn = load_pair(generator, args.adapted, device, args.cache, args.offline)
    say_adapted(drawn)
    if args.domain:
        G.meta["domain"] = args.domain
        if drawn is not None:
            drawn.meta["domain"] = args.domain
    base_meta = G.meta
    if args.image is not None:  # invert first; the edit then starts from the photo's latent (and tuned generator)
        from .invert import sources_from_args

        photo = sources_from_args(args, G, generator, config.truncation_psi, adapted=drawn)
        config.latent = str((args.outdir / "inversion" / "latent.npy").resolve())
        if drawn is None and photo.generator is not G and photo.inversion.offsets is not None:
            G = photo.generator  # HyperStyle's offsets applied; a repeat of this edit inverts the photo again
        elif drawn is None and photo.generator is not G:
            G, generator = photo.generator, str((args.outdir / "inversion" / "generator_pti.safetensors").resolve())
            base_meta = G.meta
        elif drawn is not None:
            drawn = photo.generator  # with HyperStyle's offsets from 128 px up, when it inverted the photo
    elif args.offsets is not None:
        from ..inversion.hyperstyle import load_offsets
        from ..sources import apply_offsets

        offsets = load_offsets(args.offsets, G)
        if drawn is not None:
            drawn = apply_offsets(drawn, offsets, adapted=True)
        else:
            G = apply_offsets(G, offsets)
    if drawn is not None:
        # the codes are the base's (its mapping is shared); the CLIP and identity losses judge the adapted pictures
        G = drawn

    from ..guidance.clip import load_clip
    from ..latents import latent_rows, load_latent

    guide = load_clip(config.clip, device=device)
    if config.mode == "free":
        sources: list[str] = [""]
    elif config.latent is not None:
        rows = latent_rows(config.latent, G)  # from the file's header, before reading it
        what = f" ({rows} latents in {config.latent} x {len(config.prompts)} prompts)"
        _check_edits(rows * len(config.prompts), args.max_edits, what)
        load_latent(config.latent, G)  # its values (NaN, Inf) too, before the edits are announced
        sources = [f"-row{k}" for k in range(rows)]
    else:
        sources = [f"-seed{s}" for s in config.seeds]
    names = [f"{_slug(p)}{src}" for p in config.prompts for src in sources]
    folders = [args.outdir] if len(names) == 1 else [args.outdir / f"{i:02d}-{n}" for i, n in enumerate(names)]
    video = None if args.no_video else ("trajectory.gif" if args.gif else "trajectory.mp4")
    writers: dict[int, VideoWriter] = {}

    def on_frame(i: int, step: int, frame: np.ndarray) -> None:
        if i not in writers:
            writers[i] = VideoWriter(folders[i] / video, fps=args.fps)
        writers[i].append(frame)

    what = G.meta.get("adapted_name") or G.meta.get("asset") or G.meta.get("source")
    print(f"styleclip edit: {len(names)} edit(s) with {what} and {guide.name} on {device}", file=sys.stderr)
    try:
        results = optimize(
            G,
            clip=guide,
            config=config,
            frame_every=args.frame_every if video else None,
            on_frame=on_frame if video else None,
            max_steps=args.max_steps,
            time_limit=args.time_limit,
        )
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    hold = max(1, round(args.hold * args.fps))
    base = {
        "styleclip": _versions(),
        "generator": {
            "name": generator,
            "source": base_meta.get("source"),
            "format": base_meta.get("format"),
            "asset": base_meta.get("asset"),
            "domain": base_meta.get("domain"),
            "resolution": G.img_resolution,
        },
        "adapted": summary(G),
        "clip": guide.name,
        "device": str(device),
        "config": config.to_dict(),
    }
    try:
        for i, result in enumerate(results):
            has_video = i in writers
            if has_video:
                last = writers.pop(i)
                frame = to_uint8(result.image)[0]
                for _ in range(hold - 1):  # the final image is already the last frame; hold it
                    last.append(frame)
                last.close()
            _write(folders[i], result, base, video if has_video else None)
            ident = f", identity {result.identity_similarity:.3f}" if result.identity_similarity is not None else ""
            print(
                f"{result.prompt!r} seed {result.seed}: CLIP {result.clip_before:.3f} -> {result.clip_after:.3f}"
                f"{ident}, {result.steps_done} steps in {result.wall_time:.1f} s -> {folders[i]}"
            )
    finally:  # a failure part-way leaves no encoder running and no partial video behind
        for w in writers.values():
            w.abort()
    stopped = {r.stopped for r in results}
    if "nan" in stopped:
        print(f"styleclip edit: error: {results[0].message}", file=sys.stderr)
        return 1
    if stopped & {"interrupted", "budget"}:
        print(f"styleclip edit: {results[0].message}; written to {args.outdir}", file=sys.stderr)
    return 130 if "interrupted" in stopped else 0


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "edit"


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("styleclip", "torch", "numpy", "open_clip_torch", "pillow", "imageio-ffmpeg"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _write(where: Path, r: EditResult, base: dict, video: str | None) -> None:
    make_folder(where)
    report = {
        **base,
        "config": {**base["config"], "prompts": [r.prompt]} | ({"seeds": [r.seed]} if r.seed is not None else {}),
        "result": {
            "prompt": r.prompt,
            "seed": r.seed,
            "stopped": r.stopped,
            "message": r.message,
            "steps_done": r.steps_done,
            "clip_similarity_before": r.clip_before,
            "clip_similarity_after": r.clip_after,
            "identity_similarity": r.identity_similarity,
            "wall_time_s": round(r.wall_time, 3),
        },
        "precision": r.precision,
        "compile": r.compile,
        "outputs": ["before.png", "after.png", "compare.png", "latent.npy", "report.json"]
        + (["styles.npz"] if r.styles is not None else [])
        + ([video] if video else []),
        "history": r.history,
    }
    png_text = {REPORT_KEY: json.dumps({k: v for k, v in report.items() if k != "history"}, default=str)}
    png_text["styleclip:prompt"] = r.prompt
    before, after = to_pil(r.source_image)[0], to_pil(r.image)[0]
    save_png(before, where / "before.png", text={**png_text, "styleclip:role": "source"})
    save_png(after, where / "after.png", text=png_text)
    label = f"after: {r.prompt}  (CLIP {r.clip_before:.3f} -> {r.clip_after:.3f})"
    save_png(compare_image([before, after], ["before", label]), where / "compare.png", text=png_text)
    atomic_save_arrays(where / "latent.npy", r.latent.numpy())
    if r.styles is not None:
        atomic_save_arrays(where / "styles.npz", {k: v.numpy() for k, v in r.styles.items()})
    text = json.dumps(report, indent=1, default=str)
    atomic_write(where / "report.json", lambda tmp: tmp.write_text(text))
