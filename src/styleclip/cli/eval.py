"""``styleclip eval``: score styleclip's edits in folders; tables, plots and a contact sheet."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from ..guidance.clip import DEFAULT_CLIP

NAME = "eval"
HELP = "evaluate edits (a batch folder or any styleclip outputs): CLIP gain, directional score, identity, LPIPS, PSNR"


def add_judge_arguments(p) -> None:
    """The judges' options, shared with ``styleclip batch`` (its summary is an evaluation)."""
    p.add_argument("--lpips", default="auto",
                   help="auto (LPIPS-VGG if cached), off, vgg, alex, or a lin-layer file (default auto)")  # fmt: skip
    p.add_argument("--identity", default="auto",
                   help="auto (ArcFace for face generators, if cached), off, a name or a path (default auto)")  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folders", nargs="+", type=Path, help="batch folders or folders of edit/directions/mapper outputs")
    p.add_argument("--clip", default=DEFAULT_CLIP, help=f"the CLIP model that judges ({DEFAULT_CLIP})")
    add_judge_arguments(p)
    p.add_argument("--neutral", help="the neutral text for the directional score of edits that record none")
    p.add_argument("--out", type=Path, default=None, help="where to write (default FOLDER/eval)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--cache", type=Path, default=None, help="model cache folder (default $STYLECLIP_HOME)")
    p.add_argument("--offline", action="store_true", default=None, help="never download; use the cache only")


def run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate, find_edits
    from ..evaluation.judges import load_judges
    from ..guidance.clip import load_clip
    from ..utils.devices import resolve_device
    from ..utils.files import check_outdir

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
