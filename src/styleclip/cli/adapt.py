"""``styleclip adapt``: move a generator to a new domain with two prompts (StyleGAN-NADA), resumable.

The run folder holds ``generator.safetensors`` (loadable anywhere a generator is), ``samples/step-NNNNNN.png``
(base | adapted), ``checkpoints/``, ``log.jsonl`` and ``report.json`` (what was adapted from what, the settings,
the time and the final loss).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from ..errors import UsageError
from ..guidance.clip import OPENAI_NAMES
from ..training.adapt import LAYER_CHOICES, AdaptConfig
from .options import add_precision_argument

NAME = "adapt"
HELP = "adapt a generator to a new domain from two prompts, no images (StyleGAN-NADA): 'photo' -> 'sketch'"

# NADA's README trains with OpenAI's ViT-B/32 and ViT-B/16; these are their open_clip names.
DEFAULT_CLIPS = ("ViT-B-32:openai", "ViT-B-16:openai")
# NADA's options spell CLIP models as OpenAI's clip.load does; the same weights under open_clip's names.
OUTPUTS = ("generator.safetensors", "checkpoints/step-*.safetensors", "samples/step-*.png", "log.jsonl",
           "report.json", "tensorboard")  # fmt: skip
WRITTEN_FOLDERS = ("checkpoints", "samples", "tensorboard")


def _default(field: str):
    return AdaptConfig.__dataclass_fields__[field].default


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator", required=True, help="the base: model name (styleclip models list), path or URL")
    p.add_argument("--source", default=_default("source"), help="what the generator draws now (photo)")
    p.add_argument("--target", required=True, help="the domain to move to, e.g. 'sketch', 'painting by Van Gogh'")
    p.add_argument("--outdir", type=Path, required=True, help="the run folder")
    p.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --outdir")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --outdir")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=int, default=_default("steps"), help="optimiser steps (301, as NADA's README)")
    t.add_argument("--batch-size", type=int, default=_default("batch_size"), help="latents per step (2)")
    t.add_argument("--lr", type=float, default=_default("lr"), help="learning rate (0.002; Adam runs at 0.8·lr)")
    t.add_argument("--seed", type=int, default=_default("seed"), help="training latents and noise (2)")
    t.add_argument("--mixing", type=float, default=_default("mixing"), help="style-mixing probability (0)")
    t.add_argument("--noise", choices=["random", "const"], default=_default("noise"),
                   help="the generators' noise while training (random: fresh each step, as NADA)")  # fmt: skip
    add_precision_argument(t)
    c = p.add_argument_group("CLIP and the loss")
    c.add_argument("--clip", nargs="+", default=list(DEFAULT_CLIPS), metavar="MODEL",
                   help="CLIP models: open_clip ARCH:TAG names, OpenAI names (ViT-B/32) or files "
                   f"({' '.join(DEFAULT_CLIPS)})")  # fmt: skip
    c.add_argument("--clip-weights", nargs="+", type=float, default=None, metavar="W",
                   help="one weight per --clip model (1 each)")  # fmt: skip
    c.add_argument("--direction-weight", type=float, default=_default("direction_weight"),
                   help="λ of the directional CLIP loss (1)")  # fmt: skip
    c.add_argument("--global-weight", type=float, default=_default("global_weight"),
                   help="λ of the global CLIP loss against 'a TARGET' (0)")  # fmt: skip
    c.add_argument("--patch-weight", type=float, default=_default("patch_weight"),
                   help="λ of the patch loss on 510-px crops: pictures larger than 510 px only (0)")  # fmt: skip
    c.add_argument("--manifold-weight", type=float, default=_default("manifold_weight"),
                   help="λ of NADA's manifold-angle loss (0)")  # fmt: skip
    lay = p.add_argument_group("layers")
    lay.add_argument("--layers", choices=LAYER_CHOICES, default=_default("layers"),
                     help="auto: NADA's adaptive choice each step; nada: its fixed set (const input and convs); "
                     "all: every synthesis layer (auto)")  # fmt: skip
    lay.add_argument("--auto-layer-k", type=int, default=_default("auto_layer_k"),
                     help="W+ rows whose layers train per step (default: all of them, NADA's README's 18 at 1024 px)")  # fmt: skip
    lay.add_argument("--auto-layer-iters", type=int, default=_default("auto_layer_iters"),
                     help="W+ steps that score the layers (1)")  # fmt: skip
    lay.add_argument("--auto-layer-batch", type=int, default=_default("auto_layer_batch"),
                     help="latents that score the layers (8)")  # fmt: skip
    o = p.add_argument_group("samples, checkpoints, log")
    o.add_argument("--samples", type=int, default=_default("samples"), help="latents in each sample grid (4)")
    o.add_argument("--sample-truncation", type=float, default=_default("sample_truncation"),
                   help="truncation psi of the sample latents (0.7)")  # fmt: skip
    o.add_argument("--sample-every", type=int, default=_default("sample_every"), help="steps between grids (50)")
    o.add_argument("--checkpoint-every", type=int, default=_default("checkpoint_every"),
                   help="steps between checkpoints (150)")  # fmt: skip
    o.add_argument("--log-every", type=int, default=_default("log_every"), help="steps between log lines (10)")
    o.add_argument("--keep", type=int, default=_default("keep_checkpoints"), help="checkpoints kept (2)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--cache", type=Path, default=None, help="model cache folder (default $STYLECLIP_HOME)")
    p.add_argument("--offline", action="store_true", default=None, help="never download; use the cache only")


def clip_name(name: str) -> str:
    """``name`` as reports show it: OpenAI's spelling (NADA's) as open_clip names it (load_clip takes both)."""
    if name in OPENAI_NAMES and not Path(name).exists():
        return OPENAI_NAMES[name]
    return name


def config_from_args(args: argparse.Namespace) -> AdaptConfig:
    """The checked :class:`AdaptConfig` of the command line (one line naming the fix for a bad value)."""
    clips = tuple(clip_name(n) for n in args.clip)
    weights = tuple(args.clip_weights) if args.clip_weights is not None else (1.0,) * len(clips)
    if len(weights) != len(clips):
        raise UsageError(
            f"{len(clips)} CLIP model(s) but {len(weights)} --clip-weights value(s): give one weight per --clip model"
        )
    config = AdaptConfig(
        target=args.target, source=args.source, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        clip_models=clips, clip_weights=weights, direction_weight=args.direction_weight,
        global_weight=args.global_weight, patch_weight=args.patch_weight, manifold_weight=args.manifold_weight,
        layers=args.layers, auto_layer_k=args.auto_layer_k, auto_layer_iters=args.auto_layer_iters,
        auto_layer_batch=args.auto_layer_batch, mixing=args.mixing, samples=args.samples,
        sample_truncation=args.sample_truncation, sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, seed=args.seed, noise=args.noise,
        precision=args.precision, keep_checkpoints=args.keep,
    )  # fmt: skip
    config.check()
    return config


def _check_patch(config: AdaptConfig, resolution: int | None, what: str) -> None:
    from ..guidance.directional import PATCH_SIZE

    if config.patch_weight and resolution is not None and resolution <= PATCH_SIZE:
        raise UsageError(
            f"--patch-weight crops {PATCH_SIZE}-px patches, and {what} draws {resolution}-px pictures: "
            "drop --patch-weight or adapt a larger generator"
        )


def _check_folder(outdir: Path, resume: bool, overwrite: bool) -> None:
    """Everything about ``outdir`` that can be refused before minutes of loading."""
    from ..training.checkpoints import step_files
    from ..utils.files import check_outdir, refuse_earlier_results

    check_outdir(outdir)
    if resume and overwrite:
        raise UsageError("--resume continues the run in --outdir and --overwrite starts it again; give one")
    if not resume:
        fix = "pass --resume to continue it, --overwrite to start it again, or choose another folder"
        refuse_earlier_results(outdir, OUTPUTS, overwrite=overwrite, fix=fix)
        return
    for name in WRITTEN_FOLDERS:
        folder = outdir / name
        if folder.is_symlink():
            raise UsageError(f"{folder} is a link, and styleclip writes no output through a link: make it a folder")
    if not step_files(outdir / "checkpoints"):
        raise UsageError(f"nothing to resume in {outdir / 'checkpoints'}: run without --resume to start")


def _check_resume_settings(outdir: Path, config: AdaptConfig) -> None:
    """A resumed run must train as the interrupted one did: said from the checkpoint's header, before any model
    loads (a damaged checkpoint is left to the training loop, which names it)."""
    from safetensors import safe_open

    from ..training.adapt import RESUME_KEYS
    from ..training.checkpoints import step_files

    path = step_files(outdir / "checkpoints")[-1]
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            was = json.loads((f.metadata() or {})["meta"])["adapted"]["training"]
        if not isinstance(was, dict):
            return
    except Exception:  # safetensors, JSON and key errors: the loop's own check says which file is damaged
        return
    now = config.to_dict()
    changed = [k for k in RESUME_KEYS if was.get(k) != now.get(k)]
    if changed:
        diffs = ", ".join(f"{_flag(k)} {was.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise UsageError(
            f"{path} was trained with other settings ({diffs}); resume with the same ones or use a new --outdir"
        )


def _flag(field: str) -> str:
    return {"clip_models": "--clip", "keep_checkpoints": "--keep"}.get(field, "--" + field.replace("_", "-"))


def _clear_extras(outdir: Path) -> None:
    """What the training loop does not clear itself: an earlier run's report and curves would describe this one."""
    import shutil

    (outdir / "report.json").unlink(missing_ok=True)
    board = outdir / "tensorboard"
    if board.is_symlink():
        board.unlink()
    elif board.is_dir():
        shutil.rmtree(board)


def run(args: argparse.Namespace) -> int:
    from ..hub.registry import find_asset

    config = config_from_args(args)  # all of this before minutes of loading, not after
    _check_folder(args.outdir, args.resume, args.overwrite)
    if args.resume:
        _check_resume_settings(args.outdir, config)
    asset = find_asset(args.generator) if not Path(args.generator).exists() else None
    if asset is not None and asset.kind == "generator":
        _check_patch(config, asset.resolution, args.generator)
    return _adapt(args, config)


def _adapt(args: argparse.Namespace, config: AdaptConfig) -> int:
    from .. import __version__
    from ..guidance.clip import load_clip
    from ..hub.generators import load_generator
    from ..training.adapt import adapt
    from ..utils.devices import resolve_device
    from ..utils.precision import describe, resolve_precision

    device = resolve_device(args.device)
    G = load_generator(args.generator, device=device, cache=args.cache, offline=args.offline)
    _check_patch(config, G.img_resolution, args.generator)
    precision = resolve_precision(config.precision, device)
    loaded: dict[str, object] = {}
    for name in config.clip_models:  # one model named twice is loaded once
        if name not in loaded:  # CLIP in --precision too: the loss is computed outside the generator's scope
            loaded[name] = load_clip(name, device=device, precision=precision)
    clips = [loaded[name] for name in config.clip_models]
    if not args.resume:
        _clear_extras(args.outdir)
    what = G.meta.get("asset") or args.generator
    print(
        f"styleclip adapt: {what} from {config.source!r} to {config.target!r} with {', '.join(config.clip_models)} "
        f"on {device}",
        file=sys.stderr,
    )
    last: dict = {}

    def keep_last(step: int, entry: dict) -> None:
        last.update(entry)

    t0 = time.perf_counter()
    result = adapt(G, config, clips=clips, outdir=args.outdir, resume=args.resume, device=device, callback=keep_last)
    seconds = time.perf_counter() - t0
    meta = result.generator.meta["adapted"]
    samples = sorted(p.name for p in (args.outdir / "samples").glob("step-*.png"))
    checkpoints = sorted(p.name for p in (args.outdir / "checkpoints").glob("step-*.safetensors"))
    report = {
        "styleclip": __version__,
        "method": "stylegan-nada",
        "source": config.source,
        "target": config.target,
        "generator": {
            "name": args.generator,
            "asset": G.meta.get("asset"),
            "source": G.meta.get("source"),
            "format": G.meta.get("format"),
            "resolution": G.img_resolution,
            "fingerprint": meta["base"]["fingerprint"],
        },
        "clip": list(config.clip_models),
        "clip_weights": list(config.clip_weights),
        "device": str(device),
        "precision": describe(config.precision, precision, device),
        "settings": config.to_dict(),
        "result": {
            "stopped": result.stopped,
            "steps_done": result.steps_done,
            "final_loss": last.get("loss", _logged_loss(args.outdir)),
            "seconds": round(seconds, 2),
            "resumed": bool(args.resume),
        },
        "outputs": {
            "generator": "generator.safetensors" if result.path and result.path.exists() else None,
            "samples": [f"samples/{n}" for n in samples],
            "checkpoints": [f"checkpoints/{n}" for n in checkpoints],
            "log": "log.jsonl",
            "report": "report.json",
        },
    }
    from ..utils.files import atomic_write

    text = json.dumps(report, indent=1, default=str)
    atomic_write(args.outdir / "report.json", lambda tmp: tmp.write_text(text))
    if result.stopped == "interrupted":
        saved = checkpoints and result.steps_done
        where = (
            f"step {result.steps_done} is saved in {args.outdir}: run the same command with --resume to continue"
            if saved
            else "nothing was saved: run the command again to start"
        )
        print(f"styleclip adapt: interrupted at step {result.steps_done} of {config.steps}; {where}", file=sys.stderr)
        return 130
    final = last.get("loss", _logged_loss(args.outdir))
    loss = f", final loss {final:.4f}" if final is not None else ""
    print(f"done: {result.steps_done} steps in {seconds:.0f} s{loss}")
    print(f"adapted generator: {result.path}")
    if samples:
        print(f"samples (base | adapted): {args.outdir / 'samples' / samples[-1]} and {len(samples) - 1} earlier")
    base, adapted = shlex.quote(args.generator), shlex.quote(str(result.path))
    print(
        f"use it: styleclip edit --generator {base} --adapted {adapted} --prompt '...' "
        f"(or --generator {adapted} wherever a generator goes)"
    )
    return 0


def _logged_loss(outdir: Path) -> float | None:
    """The last training loss in ``log.jsonl`` (a resumed run that had nothing left to do logs none itself)."""
    try:
        lines = (outdir / "log.jsonl").read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("split") == "train" and isinstance(entry.get("loss"), float):
            return entry["loss"]
    return None
