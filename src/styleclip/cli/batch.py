"""``styleclip batch``: many edits at once (sources x prompts x methods), resumable, sharded under torchrun."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError
from ..guidance.clip import DEFAULT_CLIP
from ..inversion.invert import METHODS as INVERSIONS
from .options import add_compile_argument, add_judge_arguments, add_precision_argument

NAME = "batch"
MAX_EDITS = 10_000  # jobs one batch may start: a seed range or latent file beyond it is a typo or a hostile file
HELP = (
    "edit many sources with many prompts (optimize, directions or mapper), also drawn by adapted generators; "
    "resumable; torchrun shards it"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_argument_group("what to edit (or --job FILE)")
    what.add_argument("--job", type=Path, help="a YAML/JSON job file naming all of the below (and several methods)")
    what.add_argument("--generator", help="model name (styleclip models list), path or URL")
    what.add_argument("--seeds", help="source seeds, e.g. 0-999")
    what.add_argument("--images", type=Path, help="a folder of photos (each inverted once, kept under sources/)")
    what.add_argument("--latents", type=Path, help="a latent file (.npy/.npz/.pt); one source per row")
    what.add_argument("--prompt", action="append", default=[], help="a prompt; repeat for several")
    what.add_argument("--prompts", type=Path, help="a text file with one prompt per line")
    what.add_argument("--method", choices=["optimize", "directions", "mapper"], help="the edit method")
    what.add_argument("--trunc", type=float, default=None, help="truncation psi of seed sources (0.7)")
    what.add_argument("--adapted", action="append", default=None, metavar="NAME|PATH",
                      help="also draw every edit with this adapted generator (nada:pixar, runs/sketch/generator."
                           "safetensors) into styles/<style>/; repeat for several")  # fmt: skip
    what.add_argument("--trust-paths", action="store_true",
                      help="let the job file name any path or URL (else catalogue names and files in its folder)")  # fmt: skip
    what.add_argument("--max-edits", type=int, default=MAX_EDITS,
                      help=f"refuse to start a batch of more jobs than this ({MAX_EDITS})")  # fmt: skip

    opt = p.add_argument_group("method settings")
    opt.add_argument("--steps", type=int, help="optimize: steps (150)")
    opt.add_argument("--l2", dest="l2_weight", type=float, help="optimize: λ_L2 (0.008)")
    opt.add_argument("--id-weight", type=float, help="optimize: λ_ID (0.005 for faces, else 0)")
    opt.add_argument("--space", choices=["w+", "w", "s"], help="optimize: space (w+)")
    opt.add_argument("--layers", help="optimize: coarse, medium, fine, rows or layer names (all)")
    opt.add_argument("--loss", choices=["global", "directional"], help="optimize: loss (global)")
    opt.add_argument("--lr", type=float, help="optimize: peak learning rate (0.1)")
    opt.add_argument("--neutral", help="directions (and the directional loss): the neutral text, e.g. 'a dog'")
    opt.add_argument("--alpha", type=float, help="directions: strength (4)")
    opt.add_argument("--beta", type=float, help="directions: disentanglement threshold (0.15)")
    opt.add_argument("--relevance", help="directions: relevance matrix (default: official or precomputed)")
    opt.add_argument("--mapper", help="mapper: name (styleclip-mapper:mohawk), path or URL")
    opt.add_argument("--strength", type=float, help="mapper: strength (the mapper's own, 0.1)")

    run = p.add_argument_group("running")
    run.add_argument("--outdir", type=Path, required=True, help="the batch folder (the same batch again resumes)")
    run.add_argument("--resume", action="store_true",
                     help="continue the batch in --outdir even with other settings: done jobs are kept, new ones added")  # fmt: skip
    run.add_argument("--overwrite", action="store_true", help="redo every job of this batch, replacing earlier results")
    run.add_argument("--batch-size", type=int, default=8, help="sources per forward pass (8)")
    run.add_argument("--clip", default=None, help=f"CLIP model name or path ({DEFAULT_CLIP})")
    run.add_argument("--invert-method", choices=INVERSIONS, default="auto",
                     help="how --images are inverted (auto: the most faithful the catalogue knows for the generator; "
                          "a HyperStyle photo's edits are drawn with its weight offsets)")  # fmt: skip
    run.add_argument("--encoder", default=None, help="the encoder for --images (default: the catalogue's for the "
                                                     "generator; with --invert-method hyperstyle its W encoder)")  # fmt: skip
    run.add_argument("--hyperstyle", default=None, metavar="NAME|FILE",
                     help="the HyperStyle model for --images (default: the catalogue's for the generator)")  # fmt: skip
    run.add_argument("--invert-steps", type=int, default=None,
                     help="ReStyle steps (5) or projection steps (1000) for --images")  # fmt: skip
    run.add_argument("--samples", type=int, default=100_000, help="directions: latents for style statistics")
    add_judge_arguments(run)
    add_precision_argument(run)
    add_compile_argument(run)
    run.add_argument("--device", default=None, help="cpu, cuda, mps (default: best; cuda:LOCAL_RANK under torchrun)")
    run.add_argument("--cache", type=Path, default=None, help="model cache folder (default $STYLECLIP_HOME)")
    run.add_argument("--offline", action="store_true", default=None, help="never download; use the cache only")


SETTINGS = ("steps", "l2_weight", "id_weight", "space", "layers", "loss", "lr", "neutral", "alpha", "beta",
            "relevance", "mapper", "strength")  # fmt: skip


def spec_from_args(args: argparse.Namespace):
    """The :class:`~styleclip.jobs.BatchSpec` the command line (or its job file) describes."""
    from ..jobs.spec import OPTIONS, BatchSpec, make_run, read_job_file, read_prompts
    from ..sample import parse_seeds

    given = {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}
    if args.job is not None:
        from ..jobs.spec import describe_references

        if args.method:
            raise UsageError("name the methods in the job file's runs, not with --method")
        on_command_line = tuple(k for k in ("generator", "clip", "adapted") if getattr(args, k))
        spec = read_job_file(args.job, trust_paths=args.trust_paths, given=on_command_line)
        if args.generator:
            spec.generator = args.generator
        if args.adapted:
            spec.adapted = list(args.adapted)
        if args.clip:
            spec.clip = args.clip
        print(describe_references(args.job, spec), flush=True)
        return spec
    if args.trust_paths:
        raise UsageError("--trust-paths goes with --job")
    if not args.method:
        raise UsageError("give --method optimize|directions|mapper (or a --job file)")
    settings = {k: v for k, v in given.items() if k in OPTIONS[args.method]}
    ignored = sorted(set(given) - set(settings))
    if ignored:
        raise UsageError(f"--method {args.method} takes no {', '.join(ignored)}")
    prompts = list(args.prompt) + (read_prompts(args.prompts) if args.prompts else [])
    return BatchSpec(
        generator=args.generator or "",
        prompts=prompts,
        runs=[make_run(args.method, settings)],
        seeds=parse_seeds(args.seeds) if args.seeds else [],
        images=str(args.images) if args.images else None,
        latents=str(args.latents) if args.latents else None,
        truncation_psi=0.7 if args.trunc is None else args.trunc,
        clip=args.clip,
        adapted=list(args.adapted or []),
    )


# What a batch writes (see styleclip.jobs.runner and styleclip.evaluation): a folder holding any of it holds a batch.
OUTPUTS = ("batch.json", "manifest.json", "jobs/*/report.json", "jobs/*/failed.json", "jobs/*/after.png",
           "sources/*/latent.npy", "summary.csv", "summary.html", "aggregate.csv", "comparison.csv",
           "styles/*/jobs/*/report.json", "styles/*/jobs/*/failed.json", "styles/*/jobs/*/after.png",
           "adaptation.csv")  # fmt: skip
# The settings that decide the jobs and their results; the others (batch size, precision, ...) may change on resuming.
_SAME_BATCH = ("generator", "clip", "prompts", "runs", "seeds", "images", "latents", "truncation_psi", "adapted")


def check_earlier_batch(outdir: Path, spec, resume: bool, overwrite: bool) -> None:
    """Refuse to add to or redo a folder of another batch's results unless told to (before any model loads).

    The same batch again resumes it, as it always did: nothing done is replaced, only what is left is done.
    """
    import json

    from ..jobs.runner import describe_batch
    from ..utils.files import earlier_results, refuse_links_to_resume

    if resume and overwrite:
        raise UsageError("--resume keeps the done jobs and --overwrite redoes them; give one")
    if not (resume or overwrite) and earlier_results(outdir, OUTPUTS):
        try:
            before = json.loads((outdir / "batch.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            before = None
        now = json.loads(json.dumps(describe_batch(spec), default=str))
        differ = [k for k in _SAME_BATCH if before.get(k) != now.get(k)] if isinstance(before, dict) else None
        if differ != []:
            what = (f"the earlier results of another batch (its {', '.join(differ)} differ)" if differ
                    else "earlier results without a readable batch.json")  # fmt: skip
            raise UsageError(f"--outdir {outdir} holds {what}; pass --resume to add this batch's jobs to it, "
                             f"--overwrite to redo them, or choose another folder")  # fmt: skip
    refuse_links_to_resume(outdir, OUTPUTS, overwrite=overwrite, redo="redo the batch")


def describe_style(row: dict) -> str:
    """One line of an adapted generator's scores (a row of :func:`styleclip.evaluation.evaluate_styles`)."""

    def num(key: str) -> str:
        value = row.get(key)
        return "-" if value is None else f"{value:+.4f}"

    text = f"directional CLIP {num('directional_mean')} ({row.get('source')!r} -> {row.get('target')!r})"
    text += f", CLIP to the target {num('clip_target_mean')} (base {num('clip_target_base_mean')})"
    if row.get("identity_mean") is not None:
        text += f", identity {num('identity_mean')}"
    return f"{text} over {row.get('pairs', row.get('samples'))} pictures"


def run(args: argparse.Namespace) -> int:
    from ..jobs.runner import run_batch
    from ..utils.files import check_outdir

    if args.max_edits < 1:
        raise UsageError("--max-edits must be at least 1")
    spec = spec_from_args(args)
    if args.clip:
        spec.clip = args.clip
    if not spec.latents:  # a latent file's rows are counted once the generator is loaded
        spec.jobs(limit=args.max_edits)
    check_outdir(args.outdir)
    check_earlier_batch(args.outdir, spec, args.resume, args.overwrite)

    def summary(outdir: Path, G, guide) -> None:
        from ..evaluation import evaluate, find_edits
        from ..evaluation.judges import load_judges

        faces = G.meta.get("domain") == "face"
        lpips, identity, notes = load_judges(args.lpips, args.identity, faces, guide.device, args.cache, args.offline)
        result = evaluate(outdir, guide, out=outdir, identity=identity, lpips=lpips, name="summary",
                          title=f"styleclip batch {outdir}", notes=notes)  # fmt: skip
        for note in notes:
            print(f"styleclip batch: {note}", file=sys.stderr)
        print(f"summary of {len(find_edits(outdir))} edits: {outdir / 'summary.csv'}, {outdir / 'summary.html'}")
        for row in result.styles:
            print(f"style {row['style']}: {describe_style(row)} ({outdir / 'adaptation.csv'})")

    try:
        result = run_batch(
            spec, args.outdir, batch_size=args.batch_size, device=args.device, cache=args.cache, offline=args.offline,
            precision=args.precision, compile=args.compile, invert_method=args.invert_method, stats_samples=args.samples, summary=summary,
            invert_lpips=None if args.lpips == "auto" else args.lpips, invert_steps=args.invert_steps,
            invert_encoder=args.encoder, invert_hyperstyle=args.hyperstyle,
            redo=args.overwrite, max_jobs=args.max_edits,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(f"styleclip batch: interrupted; run the same command again to continue ({args.outdir})", file=sys.stderr)
        return 130
    who = f"process {result.rank} of {result.world}: " if result.world > 1 else ""
    print(f"{who}{len(result.done)} done, {len(result.failed)} failed, {len(result.skipped)} done before")
    for job, reason in result.failed.items():
        print(f"  failed {job}: {reason}", file=sys.stderr)
    return 1 if result.failed else 0
