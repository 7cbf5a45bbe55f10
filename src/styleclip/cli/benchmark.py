"""``styleclip benchmark``: compare edit methods over a preset of the field's prompts, judged as papers do."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError
from ..guidance.clip import DEFAULT_CLIP
from ..inversion.invert import METHODS as INVERSIONS
from .options import add_compile_argument, add_judge_arguments, add_precision_argument

NAME = "benchmark"
HELP = (
    "compare optimize, directions and mapper over a preset's prompts: strength sweeps, an independent CLIP judge, "
    "trade-off curves, attribute dependency, FID/KID, cost; writes report.html"
)
# What a benchmark writes: a folder holding any of it holds a benchmark (or another command's results).
OUTPUTS = ("benchmark.json", "report.html", "methods.csv", "curves.csv", "points.csv", "edits.csv", "curves.png",
           "grid-*.png", "settings.json", "edits", "mappers")  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_argument_group("what to compare")
    what.add_argument("--preset", default=None,
                      help="a shipped preset (--list-presets) or a YAML file of prompts in the same shape")  # fmt: skip
    what.add_argument("--list-presets", action="store_true", help="list the shipped presets and exit")
    what.add_argument("--generator", help="model name, path or URL (default: the preset's)")
    what.add_argument("--methods", default="optimize,directions,mapper",
                      help="comma-separated, from optimize, directions, mapper (all three)")  # fmt: skip
    what.add_argument("--seeds", default=None, help="source seeds (default: the preset's)")
    what.add_argument("--images", type=Path, help="a folder of photos instead of seeds (each inverted once)")
    what.add_argument("--invert-method", choices=INVERSIONS, default="auto",
                      help="how --images are inverted (auto: the most faithful the catalogue knows for the generator)")  # fmt: skip
    what.add_argument("--invert-steps", type=int, default=None,
                      help="ReStyle, HyperStyle or projection steps for --images")  # fmt: skip
    what.add_argument("--prompts", type=int, default=None, metavar="N", help="only the preset's first N prompts")
    what.add_argument("--trunc", type=float, default=0.7, help="truncation psi of seed sources (0.7)")
    what.add_argument("--sweep", action="append", default=[], metavar="METHOD=V1,V2,...",
                      help="the strengths a method is run at: directions=α values, optimize=λ_L2 values, "
                           "mapper=strengths (defaults: styleclip.evaluation.tradeoff.DEFAULT_SWEEPS); repeat")  # fmt: skip
    what.add_argument("--steps", type=int, default=150, help="optimize: steps per edit (150)")
    what.add_argument("--id-weight", type=float, default=None, help="optimize: λ_ID (0.005 for faces, else 0)")
    what.add_argument("--beta", type=float, default=0.15, help="directions: disentanglement threshold β (0.15)")
    what.add_argument("--precompute", action="store_true",
                      help="directions: compute the relevance matrix (gradient) when none is cached, and time it")  # fmt: skip
    what.add_argument("--train-mappers", type=int, default=0, metavar="STEPS",
                      help="mapper: train a mapper per prompt for STEPS steps (default: only the published mappers)")  # fmt: skip

    j = p.add_argument_group("judging")
    j.add_argument("--clip", default=DEFAULT_CLIP, help=f"the CLIP model that guides the edits ({DEFAULT_CLIP})")
    j.add_argument("--judge", action="append", default=[], metavar="CLIP",
                   help="a CLIP model that scores (default: one that did not guide, ViT-B-16:openai for ViT-B/32); "
                        "repeat to average two, as StyleGAN-NADA does")  # fmt: skip
    add_judge_arguments(j)
    j.add_argument("--parser", default=None, metavar="NAME|FILE",
                   help="a face parser (face-parsing:bisenet): preservation also outside the edited region")  # fmt: skip
    j.add_argument("--probes", default=None, metavar="DOMAIN|FILE",
                   help="attribute probes for attribute dependency (default: the preset's domain)")  # fmt: skip
    j.add_argument("--classifier", default=None, metavar="FILE",
                   help="your attribute classifier instead of CLIP probes: TorchScript (.pt with attributes.json) or "
                        "a CLIP checkpoint")  # fmt: skip
    j.add_argument("--spread-seeds", type=int, default=64, help="extra pictures for the attributes' spread σ (64)")
    j.add_argument("--real", type=Path, default=None, help="a folder of real pictures: FID/KID of the edits")
    j.add_argument("--fid-weights", type=Path, default=None, help="torch-fidelity's Inception weights file")
    j.add_argument("--preservation", default="auto", choices=["auto", "identity", "lpips", "pixels"],
                   help="the preservation axis (auto: identity for faces with ArcFace, else LPIPS, else pixels)")  # fmt: skip
    j.add_argument("--floor", type=float, default=None, help="the area's lowest preservation p₀ (per axis)")
    j.add_argument("--at", type=float, default=None, help="the fixed preservation p* (per axis)")
    j.add_argument("--no-memory", action="store_true", help="skip the peak-memory probe (a fresh process per method)")

    run = p.add_argument_group("running")
    run.add_argument("--outdir", type=Path, help="the benchmark folder (the same benchmark again resumes)")
    run.add_argument("--resume", action="store_true", help="continue in --outdir even with other settings")
    run.add_argument("--overwrite", action="store_true", help="redo every edit, replacing earlier results")
    run.add_argument("--batch-size", type=int, default=8, help="sources per forward pass (8)")
    run.add_argument("--samples", type=int, default=100_000, help="directions: latents for style statistics")
    run.add_argument("--max-edits", type=int, default=10_000, help="refuse a benchmark of more edits (10000)")
    add_precision_argument(run)
    add_compile_argument(run)
    run.add_argument("--device", default=None, help="cpu, cuda, mps (default: best; cuda:LOCAL_RANK under torchrun)")
    run.add_argument("--cache", type=Path, default=None, help="model cache folder (default $STYLECLIP_HOME)")
    run.add_argument("--offline", action="store_true", default=None, help="never download; use the cache only")


def settings_from_args(args: argparse.Namespace):
    """The :class:`~styleclip.benchmark.BenchmarkSettings` the command line describes (checked before any load)."""
    from dataclasses import replace

    from ..benchmark import BenchmarkSettings
    from ..benchmark.run import METHODS
    from ..evaluation.presets import load_preset
    from ..evaluation.tradeoff import parse_sweeps
    from ..sample import TRUNCATION_RANGE, parse_seeds
    from ..utils.values import check_float

    if not args.preset:
        raise UsageError("name a preset: --preset styleclip-faces (styleclip benchmark --list-presets shows them)")
    preset = load_preset(args.preset)
    methods = tuple(dict.fromkeys(m.strip() for m in args.methods.split(",") if m.strip()))
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise UsageError(f"--methods {args.methods!r}: use some of {','.join(METHODS)}")
    if args.prompts is not None:
        if args.prompts < 1:
            raise UsageError("--prompts must be at least 1")
        preset = replace(preset, prompts=preset.prompts[: args.prompts])
    for flag, value, low in (("--steps", args.steps, 1), ("--batch-size", args.batch_size, 1),
                             ("--max-edits", args.max_edits, 1), ("--spread-seeds", args.spread_seeds, 0),
                             ("--train-mappers", args.train_mappers, 0), ("--samples", args.samples, 1)):  # fmt: skip
        if value < low:
            raise UsageError(f"{flag} must be at least {low}")
    check_float("--trunc", args.trunc, *TRUNCATION_RANGE)
    check_float("--beta", args.beta, 0, 1)
    for flag in ("floor", "at"):
        if getattr(args, flag) is not None:
            check_float(f"--{flag}", getattr(args, flag), 0, 0.999)
    if args.images is not None and args.seeds:
        raise UsageError("give --seeds or --images, not both")
    if args.invert_steps is not None and args.invert_steps < 1:
        raise UsageError("--invert-steps must be at least 1")
    if args.images is not None and not args.images.is_dir():
        raise UsageError(f"--images {args.images}: not a folder of photos")
    if args.real is not None and not args.real.is_dir():
        raise UsageError(f"--real {args.real}: not a folder of real pictures")
    if args.overwrite and args.resume:
        raise UsageError("--resume keeps the done edits and --overwrite redoes them; give one")
    seeds = [] if args.images is not None else parse_seeds(args.seeds or preset.seeds)
    return BenchmarkSettings(
        generator=args.generator or preset.generator, preset=preset, methods=methods,
        sweeps=parse_sweeps(args.sweep, methods), seeds=seeds, images=str(args.images) if args.images else None,
        truncation_psi=args.trunc, invert_method=args.invert_method, invert_steps=args.invert_steps, clip=args.clip, judges=tuple(args.judge), steps=args.steps,
        id_weight=args.id_weight, beta=args.beta, samples=args.samples, precompute=args.precompute,
        train_mappers=args.train_mappers, lpips=args.lpips, identity=args.identity, parser=args.parser,
        probes=args.probes, classifier=args.classifier, spread_seeds=args.spread_seeds,
        real=str(args.real) if args.real else None, fid_weights=str(args.fid_weights) if args.fid_weights else None,
        preservation=args.preservation, floor=args.floor, at=args.at, measure_memory=not args.no_memory,
        device=args.device, cache=str(args.cache) if args.cache else None, offline=args.offline,
        precision=args.precision, batch_size=args.batch_size, compile=args.compile, max_edits=args.max_edits,
    )  # fmt: skip


def check_earlier(outdir: Path, described: dict, resume: bool, overwrite: bool) -> None:
    """Refuse a folder of other results unless told (the same benchmark again resumes); before any model loads."""
    import json

    from ..utils.files import earlier_results, refuse_links_to_resume

    if not (resume or overwrite) and earlier_results(outdir, OUTPUTS):
        try:
            before = json.loads((outdir / "settings.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            before = None
        # what may change on resuming: how the edits run, not which edits there are nor how they are judged
        free = ("device", "cache", "offline", "batch_size", "compile", "max_edits", "measure_memory")
        same = isinstance(before, dict) and {k: v for k, v in before.items() if k not in free} == {
            k: v for k, v in described.items() if k not in free
        }
        if not same:
            what = "another benchmark's results" if isinstance(before, dict) else "earlier results"
            raise UsageError(f"--outdir {outdir} holds {what}; pass --resume to add to it, --overwrite to redo it, "
                             "or choose another folder")  # fmt: skip
    refuse_links_to_resume(outdir, OUTPUTS, overwrite=overwrite, redo="redo the benchmark")


def run(args: argparse.Namespace) -> int:
    import json
    import os

    from ..benchmark import run_benchmark
    from ..utils.files import atomic_write, check_outdir, make_folder

    if args.list_presets:
        from ..evaluation.presets import describe_presets

        for line in describe_presets():
            print(line)
        return 0
    if args.outdir is None:
        raise UsageError("give --outdir DIR: the benchmark's folder")
    settings = settings_from_args(args)
    check_outdir(args.outdir)
    described = settings.describe()
    # every process checks (so that all refuse alike under torchrun); one records the settings
    check_earlier(args.outdir, described, args.resume, args.overwrite)
    if int(os.environ.get("RANK", "0")) == 0:
        make_folder(args.outdir)
        text = json.dumps(described, indent=1)
        atomic_write(args.outdir / "settings.json", lambda tmp: tmp.write_text(text))
    try:
        result = run_benchmark(settings, args.outdir, redo=args.overwrite)
    except KeyboardInterrupt:
        print(f"styleclip benchmark: interrupted; run the same command again to continue ({args.outdir})",
              file=sys.stderr)  # fmt: skip
        return 130
    if result is None:
        return 0
    for note in result.notes:
        print(f"styleclip benchmark: {note}", file=sys.stderr)
    print(f"{'method':11s} {'area':>8s} {'edit@p*':>8s} {'mean-AD':>8s} {'s/edit':>8s} {'peak MB':>8s}")
    for m in result.methods:
        cells = [m.get(k) for k in ("area", "edit_at", "mean_ad_at", "per_edit_s", "peak_mb")]
        print(f"{m['method']:11s} " + " ".join("       -" if v is None else f"{v:8.4g}" for v in cells))
    print(f"report: {args.outdir / 'report.html'}")
    return 0
