"""``styleclip eval``: score styleclip's edits in folders; tables, plots and a contact sheet."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from ..guidance.clip import DEFAULT_CLIP
from .options import add_judge_arguments

NAME = "eval"
HELP = (
    "evaluate edits (a batch folder or any styleclip outputs): CLIP gain, directional score, identity, LPIPS, "
    "PSNR; or an adapted generator against its base (--adapted)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folders", nargs="*", type=Path, help="batch folders or folders of edit/directions/mapper outputs")
    p.add_argument("--clip", default=DEFAULT_CLIP, help=f"the CLIP model that judges ({DEFAULT_CLIP})")
    add_judge_arguments(p)
    p.add_argument("--neutral", help="the neutral text for the directional score of edits that record none")
    p.add_argument("--out", type=Path, default=None, help="where to write (default FOLDER/eval)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--cache", type=Path, default=None, help="model cache folder (default $STYLECLIP_HOME)")
    p.add_argument("--offline", action="store_true", default=None, help="never download; use the cache only")
    ad = p.add_argument_group("an adapted generator (instead of folders)")
    ad.add_argument("--adapted", metavar="NAME|PATH",
                    help="score this adapted generator (runs/sketch/generator.safetensors, nada:sketch) against "
                         "--generator on the same seeds: NADA's directional CLIP score, CLIP to the target, identity")  # fmt: skip
    ad.add_argument("--generator",
                    help="the generator it was adapted from (name, path or URL; default: the catalogue base it records)")  # fmt: skip
    ad.add_argument("--source", help="the source text (default: what the adapted generator records)")
    ad.add_argument("--target", help="the target text (default: what the adapted generator records)")
    ad.add_argument("--seeds", default="0-15", help="the seeds drawn by both (0-15)")
    ad.add_argument("--trunc", type=float, default=0.7, help="truncation psi of the seeds (0.7)")
    ad.add_argument("--batch-size", type=int, default=8, help="pictures per forward pass (8)")


def run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate, find_edits
    from ..evaluation.judges import load_judges
    from ..guidance.clip import load_clip
    from ..utils.devices import resolve_device
    from ..utils.files import check_outdir

    adapted_only = ("generator", "source", "target")
    if args.adapted:
        if args.folders:
            raise UsageError("--adapted scores a generator, not folders: give one or the other")
        return run_adapted(args)
    given = [f"--{k}" for k in adapted_only if getattr(args, k)]
    if given:
        raise UsageError(f"{', '.join(given)} go with --adapted (score an adapted generator against its base)")
    if not args.folders:
        raise UsageError("give folders of styleclip outputs to score, or --adapted GEN --generator BASE")
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        raise UsageError(f"not a folder: {', '.join(missing)}")
    out = args.out or args.folders[0] / "eval"
    check_outdir(out, flag="--out")  # before CLIP and the judges load
    edits = [e for f in args.folders for e in find_edits(f)]
    if not edits:
        raise UsageError(f"no styleclip edits (before.png + after.png with styleclip metadata) under {args.folders[0]}")
    device = resolve_device(args.device)
    guide = load_clip(args.clip, device=device)
    faces = any(e.domain == "face" for e in edits)
    lpips, identity, notes = load_judges(args.lpips, args.identity, faces, device, args.cache, args.offline)
    result = evaluate(args.folders, guide, out=out, identity=identity, lpips=lpips, neutral=args.neutral, notes=notes)
    for note in notes:
        print(f"styleclip eval: {note}")
    for a in result.aggregate:
        gain = a["clip_gain_mean"]
        print(f"{a['method']:10s} {a['prompt'][:40]!r:44s} {a['done']:4d} done  CLIP gain "
              f"{'-' if gain is None else f'{gain:+.4f}'}")  # fmt: skip
    print(f"wrote {len(result.files)} files to {out} ({out / 'metrics.html'})")
    return 0


def run_adapted(args: argparse.Namespace) -> int:
    """``styleclip eval --adapted GEN --generator BASE``: the adapted generator's scores against its base."""
    import json

    from ..adapted import check_compatible, load_pair
    from ..evaluation.adaptation import evaluate_adaptation
    from ..evaluation.judges import load_judges
    from ..guidance.clip import load_clip
    from ..sample import TRUNCATION_RANGE, parse_seeds
    from ..utils.devices import resolve_device
    from ..utils.files import atomic_write, check_outdir, make_folder
    from ..utils.values import check_float
    from .batch import describe_style

    seeds = parse_seeds(args.seeds)
    check_float("--trunc", args.trunc, *TRUNCATION_RANGE)
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if args.out is not None:
        check_outdir(args.out, flag="--out")
    device = resolve_device(args.device)
    # without --generator: the catalogue base the adapted generator records
    base, base_name, adapted = load_pair(args.generator, args.adapted, device, args.cache, args.offline)
    check_compatible(adapted, base, f"--adapted {args.adapted}")
    if adapted.meta.get("adapted_note"):
        print(f"styleclip eval: {adapted.meta['adapted_note']}")
    guide = load_clip(args.clip, device=device)
    faces = base.meta.get("domain") == "face"
    _, identity, notes = load_judges("off", args.identity, faces, device, args.cache, args.offline)
    result = evaluate_adaptation(base, adapted, args.source, args.target, seeds=seeds, clip=guide, identity=identity,
                                 truncation_psi=args.trunc, batch_size=args.batch_size)  # fmt: skip
    result = {"adapted": args.adapted, "generator": base_name, **result}
    for note in notes:
        if not note.startswith("LPIPS"):  # LPIPS is no score of an adaptation
            print(f"styleclip eval: {note}")
    print(f"{args.adapted}: {describe_style(result)}")
    if args.out is not None:
        from ..evaluation.report import write_csv

        make_folder(args.out)
        text = json.dumps(result, indent=1)
        atomic_write(args.out / "adaptation.json", lambda tmp: tmp.write_text(text))
        columns = ["seed", "directional", "clip_target", "clip_target_base", "identity"]
        write_csv(args.out / "adaptation-samples.csv", result["per_sample"], columns)
        print(f"wrote {args.out / 'adaptation.json'} and {args.out / 'adaptation-samples.csv'}")
    return 0
