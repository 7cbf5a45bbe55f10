"""``styleclip benchmark``: the edit methods over a preset's prompts, each at several strengths, judged as papers do.

Stages (each resumable; under ``torchrun`` the edits are shared out between the processes):

1. **Preprocessing**, timed per method: the global directions' style statistics and channel relevance (found in the
   cache, or computed with ``precompute``), the mappers (the catalogue's published ones, or trained here for the
   prompts that have none with ``train_mappers`` steps).
2. **Edits** through :func:`styleclip.jobs.run_batch` into ``<outdir>/edits/``: sources x prompts x (method,
   strength); a mapper run takes only the prompt it was trained for, a directions run the prompts of its neutral.
3. **Judging** (process 0): an independent CLIP judge (not the guiding model unless asked), identity/LPIPS/pixel
   preservation, masked preservation outside the edited region (with a face parser), attribute dependency
   (:mod:`styleclip.evaluation.disentangle`), FID/KID against real images (:mod:`styleclip.evaluation.realism`),
   the trade-off curves (:mod:`styleclip.evaluation.tradeoff`) and the cost of each method; then the report
   (:mod:`.report`).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ..errors import UsageError
from ..evaluation.tradeoff import AXES, KNOBS, choose_axis, curve_area, parse_sweeps, preservation, value_at
from ..guidance.clip import DEFAULT_CLIP

METHODS = ("optimize", "directions", "mapper")
# The CLIP model that judges when the guiding one is the key: never the model that guided (NADA judges with models
# it did not train with; ViT-B/16 is the usual second opinion on ViT-B/32).
INDEPENDENT_JUDGE = {"ViT-B-32:openai": "ViT-B-16:openai", "ViT-B-16:openai": "ViT-B-32:openai"}
FALLBACK_JUDGE = "ViT-B-16:openai"


@dataclass
class BenchmarkSettings:
    """What a benchmark runs and how it judges (the ``styleclip benchmark`` options, same names).

    ``preset``: a :class:`styleclip.evaluation.presets.Preset`; ``sweeps``: ``{method: strengths}`` (default
    :data:`styleclip.evaluation.tradeoff.DEFAULT_SWEEPS`); ``judges``: CLIP models that score (empty: one that did
    not guide, :func:`default_judges`); two or more are averaged, as StyleGAN-NADA reports its two-CLIP score.
    """

    generator: str
    preset: Any
    methods: tuple[str, ...] = METHODS
    sweeps: dict[str, tuple[float, ...]] | None = None
    seeds: list[int] | None = None
    images: str | None = None
    truncation_psi: float = 0.7
    invert_method: str = "auto"
    invert_steps: int | None = None
    clip: str = DEFAULT_CLIP
    judges: tuple[str, ...] = ()
    steps: int = 150
    lr: float = 0.1
    id_weight: float | None = None
    beta: float = 0.15
    samples: int = 100_000
    precompute: bool = False
    train_mappers: int = 0
    lpips: str = "auto"
    identity: str = "auto"
    parser: str | None = None
    probes: str | None = None
    classifier: str | None = None
    spread_seeds: int = 64
    real: str | None = None
    fid_weights: str | None = None
    preservation: str = "auto"
    floor: float | None = None
    at: float | None = None
    measure_memory: bool = True
    device: str | None = None
    cache: str | None = None
    offline: bool | None = None
    precision: str = "auto"
    batch_size: int = 8
    compile: bool = False
    max_edits: int = 10_000

    def describe(self) -> dict[str, Any]:
        """The settings as ``benchmark.json`` records them (the preset by name and prompts)."""
        out = {k: v for k, v in asdict(self).items() if k != "preset"}
        out["preset"] = {"name": self.preset.name, "prompts": [p.target for p in self.preset.prompts]}
        return json.loads(json.dumps(out, default=str))


@dataclass
class BenchmarkResult:
    """What a benchmark found (process 0; other processes get None from :func:`run_benchmark`)."""

    outdir: Path
    methods: list[dict]
    curves: list[dict]
    points: list[dict]
    rows: list[dict]
    costs: dict[str, dict]
    realism: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def default_judges(clip: str, judges: tuple[str, ...] = ()) -> tuple[tuple[str, ...], bool]:
    """``(judges, independent)``: the CLIP models that score, and whether none of them guided."""
    from ..guidance.clip import OPENAI_NAMES

    def key(name: str) -> str:
        return OPENAI_NAMES.get(name, name)

    chosen = tuple(judges) or (INDEPENDENT_JUDGE.get(key(clip), FALLBACK_JUDGE),)
    return chosen, all(key(j) != key(clip) for j in chosen)


def plan_runs(settings: BenchmarkSettings, mappers: dict[str, str]):
    """The batch's runs: every method at every strength of its sweep (see the module docstring)."""
    from ..jobs.spec import Run, make_run

    sweeps = settings.sweeps or parse_sweeps(None, settings.methods)
    runs = []
    for method in settings.methods:
        values = sweeps[method]
        if method == "optimize":
            for v in values:
                runs.append(make_run("optimize", {"steps": settings.steps, "l2_weight": v, "lr": settings.lr,
                                                  "id_weight": settings.id_weight}))  # fmt: skip
        elif method == "directions":
            by_neutral: dict[str, list[str]] = {}
            for p in settings.preset.prompts:
                if p.neutral:
                    by_neutral.setdefault(p.neutral, []).append(p.target)
            for neutral, targets in by_neutral.items():
                for v in values:
                    run = make_run("directions", {"neutral": neutral, "alpha": v, "beta": settings.beta})
                    runs.append(Run(run.method, run.options, None, tuple(targets)))
        else:
            for target, ref in mappers.items():
                for v in values:
                    run = make_run("mapper", {"mapper": ref, "strength": v})
                    runs.append(Run(run.method, run.options, None, (target,)))
    return runs


def run_benchmark(
    settings: BenchmarkSettings, outdir: str | Path, *, progress: bool = True, redo: bool = False
) -> BenchmarkResult | None:
    """Run, judge and report a benchmark into ``outdir`` (see the module docstring); running it again resumes.

    Returns the result on process 0 (None on the others under torchrun).
    """
    from ..guidance.clip import load_clip
    from ..hub.generators import load_generator
    from ..jobs.runner import run_batch
    from ..jobs.spec import BatchSpec
    from ..utils.devices import resolve_device
    from ..utils.distributed import setup
    from ..utils.files import make_folder

    outdir = Path(outdir)
    unknown = [m for m in settings.methods if m not in METHODS]
    if unknown or not settings.methods:
        raise UsageError(f"--methods: use some of {','.join(METHODS)} (not {','.join(unknown) or 'none'})")
    ctx = setup(resolve_device(settings.device))
    try:
        G = load_generator(settings.generator, device=ctx.device, cache=settings.cache, offline=settings.offline)
        guide = load_clip(settings.clip, device=ctx.device)
        notes: list[str] = []
        judging = check_judging(settings, ctx.device)  # before hours of edits, not after; in every process alike
        if ctx.is_main:
            make_folder(outdir)
        costs: dict[str, dict] = {m: {} for m in settings.methods}
        mappers: dict[str, str] = {}
        if "directions" in settings.methods:
            costs["directions"].update(_prepare_directions(settings, G, guide, ctx))
        if "mapper" in settings.methods:
            mappers, info = _prepare_mappers(settings, G, guide, ctx, outdir, notes, progress)
            costs["mapper"].update(info)
        if "optimize" in settings.methods:
            costs["optimize"].update(preprocessing_s=0.0, preprocessing="none: every edit is its own optimisation")
        runs = plan_runs(settings, mappers)
        spec = BatchSpec(
            generator=settings.generator, prompts=[p.target for p in settings.preset.prompts], runs=runs,
            seeds=list(settings.seeds or []), images=settings.images, truncation_psi=settings.truncation_psi,
            clip=settings.clip,
        )  # fmt: skip
        ctx.barrier()
        run_batch(spec, outdir / "edits", batch_size=settings.batch_size, device=ctx.device, cache=settings.cache,
                  offline=settings.offline, precision=settings.precision, compile=settings.compile,
                  stats_samples=settings.samples, progress=progress, redo=redo, max_jobs=settings.max_edits,
                  invert_method=settings.invert_method, invert_steps=settings.invert_steps,
                  invert_lpips=None if settings.lpips == "auto" else settings.lpips)  # fmt: skip
        # run_batch ends with every process at one barrier: process 0 judges alone from here (no barrier after it,
        # whose timeout a long judging would run past)
        if not ctx.is_main:
            return None
        return judge(settings, spec, G, guide, judging, outdir, costs, notes, ctx.device, progress)
    finally:
        ctx.close()


@dataclass
class Judging:
    """The models judging needs besides CLIP, loaded (and so checked) before the edits: the attribute ``probes``,
    the user's ``classifier`` (None: CLIP probes), the face ``parser`` (None: whole-picture preservation)."""

    probes: list
    classifier: Any = None
    parser: Any = None


def check_judging(settings: BenchmarkSettings, device) -> Judging:
    """Load what judging needs, refusing in one line what it would refuse: unknown judges, probe lists, classifiers,
    parsers, FID weights (downloaded now when needed, so an offline machine says so before the edits)."""
    import open_clip

    from ..evaluation import disentangle as dis
    from ..guidance.clip import OPENAI_NAMES

    judges, _ = default_judges(settings.clip, settings.judges)
    for name in judges:
        text = OPENAI_NAMES.get(name, name)
        if Path(text).expanduser().exists():
            continue
        arch, _, tag = text.partition(":")
        if arch not in open_clip.list_models() or (tag and "/" not in tag and (arch, tag) not in
                                                    set(open_clip.list_pretrained())):  # fmt: skip
            raise UsageError(f"--judge {name}: no such file and not an open_clip ARCH:TAG (e.g. ViT-B-16:openai, "
                             "ViT-L-14:openai)")  # fmt: skip
    judging = Judging(dis.load_probes(settings.probes or settings.preset.domain))
    if settings.classifier:
        judging.classifier = dis.load_classifier(settings.classifier, device, probes_for_clip=judging.probes)
    if settings.parser:
        from ..video.masks import load_face_parser

        judging.parser = load_face_parser(
            settings.parser, device=device, cache=settings.cache, offline=settings.offline
        )
    if settings.real:
        from ..evaluation.realism import inception_weights

        inception_weights(settings.fid_weights, settings.cache, settings.offline)
    return judging


def _prepare_directions(settings, G, guide, ctx) -> dict:
    """Style statistics and the relevance matrix, timed (found in the cache, or computed with ``precompute``)."""
    from ..edits.relevance import relevance_matrix_gradient
    from ..edits.relevance_files import default_relevance_path, find_relevance
    from ..stylespace import style_statistics

    def find():
        try:
            return find_relevance(G, guide.name, None, settings.cache, settings.offline, settings.generator)
        except UsageError:
            if not settings.precompute:
                raise
            return None

    t0 = time.perf_counter()
    # every process looks before any writes, so that all see the same (and all refuse alike without --precompute)
    matrix = find()
    ctx.barrier()
    computed = matrix is None
    if ctx.is_main:  # one process computes and caches; the others then read the cache
        stats = style_statistics(G, samples=settings.samples, cache=settings.cache, progress=False)
        if computed:
            matrix = relevance_matrix_gradient(G, guide, stats, progress=False)
            matrix.save(default_relevance_path(G, guide.name, "gradient", settings.cache))
    ctx.barrier()
    if not ctx.is_main:
        style_statistics(G, samples=settings.samples, cache=settings.cache, progress=False)
        matrix = find()
    seconds = time.perf_counter() - t0
    kind = matrix.meta.get("method", "official") if hasattr(matrix, "meta") else "official"
    what = ("style statistics and the relevance matrix (gradient) computed here" if computed else
            f"style statistics and a cached relevance matrix ({kind}): loading only; computing it costs more "
            "(styleclip directions precompute reports its time)")  # fmt: skip
    return {"preprocessing_s": round(seconds, 3), "preprocessing": what}


def _prepare_mappers(settings, G, guide, ctx, outdir: Path, notes: list[str], progress: bool):
    """``({prompt: mapper reference}, cost)``: the catalogue's mapper for each prompt that has one, else a mapper
    trained here (``train_mappers`` steps, resumable under ``<outdir>/mappers/``), else the prompt is left out."""
    from ..jobs.spec import slug
    from ..training.mapper import train_mapper
    from ..utils.files import atomic_write

    mappers: dict[str, str] = {}
    trained_s, trained, published = 0.0, 0, 0
    for p in settings.preset.prompts:
        if p.mapper and not settings.train_mappers:
            mappers[p.target] = p.mapper
            published += 1
            continue
        if not settings.train_mappers:
            notes.append(f"mapper: no published mapper for {p.target!r} (--train-mappers STEPS trains one)")
            continue
        folder = outdir / "mappers" / f"{slug(p.target, 60)}-{settings.train_mappers}-steps"  # other steps: anew
        cost_file = folder / "cost.json"
        done = folder / "mapper.safetensors"
        if not (done.is_file() and cost_file.is_file()):
            t0 = time.perf_counter()
            train_mapper(G, prompt=p.target, steps=settings.train_mappers, clip=guide, outdir=folder,
                         resume=(folder / "checkpoints").is_dir(), device=ctx.device, progress=progress,
                         precision=settings.precision, val_every=max(settings.train_mappers, 1),
                         checkpoint_every=max(settings.train_mappers, 1),
                         train_size=min(5000, 100 * settings.train_mappers), test_size=8, val_count=8)  # fmt: skip
            if ctx.is_main:
                text = json.dumps({"seconds": time.perf_counter() - t0, "steps": settings.train_mappers})
                atomic_write(cost_file, lambda tmp, text=text: tmp.write_text(text))
            ctx.barrier()
        trained_s += json.loads(cost_file.read_text())["seconds"]
        trained += 1
        mappers[p.target] = str(done.resolve())
    if not mappers:
        raise UsageError("the mapper method has no mapper for any prompt of the preset: pass --train-mappers STEPS "
                         "or leave mapper out of --methods")  # fmt: skip
    what = []
    if trained:
        what.append(f"{trained} mapper(s) trained here, {settings.train_mappers} steps each")
    if published:
        what.append(f"{published} published mapper(s) (their training is not counted)")
    return mappers, {"preprocessing_s": round(trained_s, 3), "preprocessing": "; ".join(what)}


def _strength(row: dict) -> float | None:
    settings = json.loads(row["settings"]) if isinstance(row["settings"], str) else row["settings"]
    value = settings.get(KNOBS.get(row["method"], ""))
    return None if value is None else float(value)


def _mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None and float(v) == float(v) and abs(float(v)) != float("inf")]
    return statistics.fmean(vals) if vals else None


def judge(settings: BenchmarkSettings, spec, G, guide, judging: Judging, outdir: Path, costs: dict, notes: list[str],
          device, progress: bool = True) -> BenchmarkResult:  # fmt: skip
    """Score the benchmark's edits and write its report (process 0)."""
    from ..evaluation.edits import find_edits, score
    from ..evaluation.judges import load_judges
    from ..guidance.clip import load_clip
    from ..utils.devices import describe_device
    from .report import write_report

    edits = [e for e in find_edits(outdir / "edits") if e.style is None]
    neutral_of = {p.target: p.neutral for p in settings.preset.prompts}
    for e in edits:
        e.neutral = e.neutral or neutral_of.get(e.prompt)
    judge_names, independent = default_judges(settings.clip, settings.judges)
    if not independent:
        notes.append(f"the judge ({', '.join(judge_names)}) is the CLIP model that guided the edits: scores favour "
                     "the guided methods (you asked for it with --judge)")  # fmt: skip
    faces = settings.preset.domain == "face" or G.meta.get("domain") == "face"
    lpips, identity, judge_notes = load_judges(settings.lpips, settings.identity, faces, device, settings.cache,
                                               settings.offline)  # fmt: skip
    notes += judge_notes
    judges = [guide if name == guide.name else load_clip(name, device=device) for name in judge_names]
    rows = score(edits, judges[0], identity=identity, lpips=lpips, progress=progress)
    if len(judges) > 1:  # NADA's two-CLIP judge: each CLIP score averaged over the models
        others = [score(edits, j) for j in judges[1:]]
        for i, r in enumerate(rows):
            for k in ("clip_before", "clip_after", "clip_gain", "directional"):
                vals = [r[k], *(o[i][k] for o in others)]
                r[k] = None if any(v is None for v in vals) else sum(vals) / len(vals)
    for r in rows:
        r["strength"] = _strength(r)
    _masked(settings, rows, judging.parser, lpips, device, notes)
    _disentanglement(settings, rows, G, judges[0], judging, device, notes, progress)
    axis = choose_axis(rows, settings.preservation)
    for r in rows:
        r["preservation"] = preservation(r, axis) if r["state"] == "done" else None
    points, curves, methods = _tables(settings, rows, axis, costs)
    realism = _realism(settings, rows, outdir, device, notes)
    for m in methods:
        m.update({f"{k}": v for k, v in realism.get(m["method"], {}).items() if k in ("fid", "kid_mean", "kid_std")})
    if settings.measure_memory:
        for m in methods:
            m.update(_memory(settings, spec, m["method"], device))
    info = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": describe_device(device),
        "generator": settings.generator,
        "preset": settings.preset.name,
        "preset_title": settings.preset.title,
        "preset_source": settings.preset.source,
        "guide": guide.name,
        "judges": list(judge_names),
        "independent_judge": independent,
        "axis": axis,
        "axis_label": AXES[axis].label,
        "floor": _floor(settings, axis),
        "at": _at(settings, axis),
        "sources": len(spec.sources()) if not spec.latents else None,
        "precision": settings.precision,
        "settings": settings.describe(),
    }
    result = BenchmarkResult(outdir, methods, curves, points, rows, costs, realism, notes, [], info)
    result.files = write_report(result, G)
    return result


def _floor(settings, axis: str) -> float:
    return AXES[axis].floor if settings.floor is None else settings.floor


def _at(settings, axis: str) -> float:
    return AXES[axis].fixed if settings.at is None else settings.at


def _tables(settings, rows: list[dict], axis: str, costs: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """Points (method, prompt, strength), curves (method, prompt) and the method comparison."""
    floor, at = _floor(settings, axis), _at(settings, axis)
    done = [r for r in rows if r["state"] == "done"]
    groups: dict[tuple, list[dict]] = {}
    for r in done:
        groups.setdefault((r["method"], r["prompt"], r["strength"]), []).append(r)
    points = []
    for (method, prompt, strength), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        points.append({
            "method": method, "prompt": prompt, "strength": strength, "knob": KNOBS[method], "edits": len(rs),
            "edit_score": _mean(r["clip_gain"] for r in rs), "clip_after": _mean(r["clip_after"] for r in rs),
            "directional": _mean(r["directional"] for r in rs), "preservation": _mean(r["preservation"] for r in rs),
            "identity": _mean(r["identity"] for r in rs), "lpips": _mean(r["lpips"] for r in rs),
            "psnr": _mean(r["psnr"] for r in rs), "psnr_masked": _mean(r.get("psnr_masked") for r in rs),
            "lpips_masked": _mean(r.get("lpips_masked") for r in rs), "mean_ad": _mean(r.get("mean_ad") for r in rs),
            "max_ad": _mean(r.get("max_ad") for r in rs), "seconds": _mean(r["seconds"] for r in rs),
        })  # fmt: skip
    curves = []
    for method in settings.methods:
        for prompt in dict.fromkeys(p["prompt"] for p in points if p["method"] == method):
            pts = [p for p in points if p["method"] == method and p["prompt"] == prompt]
            pe = [(p["preservation"], p["edit_score"]) for p in pts if p["preservation"] is not None]
            pad = [(p["preservation"], p["mean_ad"]) for p in pts if p["preservation"] is not None and p["mean_ad"] is not None]  # fmt: skip
            curves.append({
                "method": method, "prompt": prompt, "points": len(pts),
                "area": curve_area(pe, floor) if pe else None, "edit_at": value_at(pe, at) if pe else None,
                "mean_ad_at": value_at(pad, at) if pad else None,
                "min_preservation": min((p for p, _ in pe), default=None),
                "best_edit": max((e for _, e in pe if e is not None), default=None),
            })  # fmt: skip
    methods = []
    for method in settings.methods:
        cs = [c for c in curves if c["method"] == method]
        rs = [r for r in rows if r["method"] == method]
        reached = [c["edit_at"] for c in cs if c["edit_at"] is not None]
        methods.append({
            "method": method, "prompts": len(cs), "edits": sum(r["state"] == "done" for r in rs),
            "failed": sum(r["state"] != "done" for r in rs),
            "area": _mean(c["area"] for c in cs), "edit_at": _mean(reached),
            "reached": f"{len(reached)}/{len(cs)}", "mean_ad_at": _mean(c["mean_ad_at"] for c in cs),
            "mean_ad": _mean(r.get("mean_ad") for r in rs if r["state"] == "done"),
            "directional": _mean(r["directional"] for r in rs if r["state"] == "done"),
            "preprocessing_s": costs.get(method, {}).get("preprocessing_s"),
            "preprocessing": costs.get(method, {}).get("preprocessing"),
            "per_edit_s": _mean(r["seconds"] for r in rs if r["state"] == "done"),
        })  # fmt: skip
    return points, curves, methods


def _masked(settings, rows: list[dict], parser, lpips, device, notes: list[str]) -> None:
    """PSNR/LPIPS outside the region each prompt edits (HairCLIP's practice), with the face ``parser``."""
    if parser is None:
        notes.append("preservation is measured over the whole picture (--parser face-parsing:bisenet measures it "
                     "outside the edited region)")  # fmt: skip
        return
    from ..evaluation.edits import _tensor
    from ..evaluation.masked import masked_scores, region_of

    region_given = {p.target: p.region for p in settings.preset.prompts}
    whole = set()
    for r in rows:
        if r["state"] != "done":
            continue
        region = region_of(r["prompt"], region_given.get(r["prompt"]))
        r["region"] = region
        if region is None:
            whole.add(r["prompt"])
            continue
        folder = Path(r["folder"])
        before, after = _tensor(folder / "before.png", device), _tensor(folder / "after.png", device)
        r.update(masked_scores(before, after, parser, region, lpips=lpips))
    if whole:
        notes.append(f"no edited region known for {len(whole)} prompt(s) (e.g. {sorted(whole)[0]!r}): their masked "
                     "scores are left empty")  # fmt: skip


def _disentanglement(
    settings, rows: list[dict], G, judge_clip, judging: Judging, device, notes: list[str], progress: bool = True
) -> None:
    """Attribute dependency of each edit (StyleSpace's, with CLIP probes or the user's classifier)."""
    from ..evaluation import disentangle as dis
    from ..evaluation.edits import _tensor
    from ..sources import from_seeds

    done = [r for r in rows if r["state"] == "done"]
    if not done:
        return
    if judging.classifier is not None:
        scorer = judging.classifier
        notes.append(f"attribute dependency from the classifier {Path(settings.classifier).name}")
    else:
        scorer = dis.clip_probes(judge_clip, judging.probes)
    sources: dict[str, torch.Tensor] = {}  # each source's unedited picture, once
    logits_before, logits_after = [], []
    from tqdm import tqdm

    with torch.no_grad():
        for r in tqdm(done, desc="attributes", unit="edit", disable=not progress or None):
            folder = Path(r["folder"])
            b, a = _tensor(folder / "before.png", device), _tensor(folder / "after.png", device)
            logits_before.append(scorer.logits(b)[0])
            logits_after.append(scorer.logits(a)[0])
            sources.setdefault(r["source"], b)
        # the attributes' natural spread: over the sources and as many other pictures of the generator
        pictures = list(sources.values())
        seeds = list(range(10_000, 10_000 + settings.spread_seeds))  # apart from the usual source seeds
        for i in range(0, len(seeds), 8):
            ws = from_seeds(G, seeds[i : i + 8], settings.truncation_psi).ws
            pictures.append(G.synthesize(ws).clamp(-1, 1).float())
        count = sum(p.shape[0] for p in pictures)
        if count < 2:
            notes.append("attribute dependency left out: the spread of an attribute needs 2 pictures or more")
            return
        sigma = dis.spread(scorer, pictures)
    if count < 20:
        notes.append(f"attribute spreads σ from {count} pictures only: attribute dependency is rough "
                     "(--spread-seeds 64 or more)")  # fmt: skip
    given = {p.target: tuple(p.attributes) for p in settings.preset.prompts}
    for r, lb, la in zip(done, logits_before, logits_after, strict=True):
        exclude = scorer.mentioned(r["prompt"], given.get(r["prompt"], ()))  # a classifier's own names too
        ad = dis.attribute_dependency(lb[None], la[None], sigma, list(scorer.names), exclude)
        r["mean_ad"], r["max_ad"] = ad["mean_ad"], ad["max_ad"]
        r["attributes_changed"] = json.dumps({k: round(v, 4) for k, v in ad["per_attribute"].items()})


def _realism(settings, rows: list[dict], outdir: Path, device, notes: list[str]) -> dict[str, dict]:
    """FID/KID of each method's edits (and of the unedited sources) against ``settings.real``."""
    if not settings.real:
        notes.append("realism (FID/KID) left out: give --real FOLDER of real pictures of the domain")
        return {}
    from ..evaluation.realism import realism

    out = {}
    done = [r for r in rows if r["state"] == "done"]
    sources = list({r["source"]: Path(r["folder"]) / "before.png" for r in done}.values())
    groups = {"sources (unedited)": sources}
    for method in settings.methods:
        groups[method] = [Path(r["folder"]) / "after.png" for r in done if r["method"] == method]
    for name, files in groups.items():
        if not files:
            continue
        res = realism(files, Path(settings.real), device=device, weights=settings.fid_weights,
                      cache=settings.cache, offline=settings.offline)  # fmt: skip
        out[name] = res
    if any(res.get("notes") for res in out.values()):  # each set's own notes are shown beside its row
        notes.append("FID/KID: read the notes under the realism table before the numbers")
    return out


def _memory(settings, spec, method: str, device) -> dict:
    """Peak memory of one edit of ``method`` in a fresh process (:mod:`.costs`)."""
    from ..jobs.runner import describe_batch
    from ..jobs.spec import BatchSpec
    from .costs import measure_peak_memory

    run = next((r for r in spec.runs if r.method == method), None)
    if run is None:
        return {}
    prompt = next(p for p in spec.prompts if run.takes(p))
    # a seed stands in for a photo: the cost of the edit, not of the inversion, is measured
    one = BatchSpec(generator=spec.generator, prompts=[prompt], runs=[run], seeds=spec.seeds[:1] or [0],
                    truncation_psi=spec.truncation_psi, clip=spec.clip)  # fmt: skip
    res = measure_peak_memory(describe_batch(one), str(device), settings.cache, settings.offline, settings.precision)
    if "error" in res:
        return {"peak_mb": None, "memory_note": res["error"]}
    return {"peak_mb": res.get("peak_mb"), "import_mb": res.get("import_mb"), "memory_how": res.get("how")}


__all__ = [
    "BenchmarkResult",
    "BenchmarkSettings",
    "Judging",
    "check_judging",
    "default_judges",
    "plan_runs",
    "run_benchmark",
]
