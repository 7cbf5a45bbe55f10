"""Run a batch: every job of a :class:`~.spec.BatchSpec` once, sharded over ``torchrun`` processes, resumable.

Each job gets ``<outdir>/jobs/<job id>/`` with ``before.png``, ``after.png``, ``latent.npy`` (or ``codes.npz`` for
StyleSpace edits) and ``report.json``, written last and atomically: a job is done exactly when its report exists,
so a crash or Ctrl-C never leaves half-written work counted as done, and running the same command again does
only what is left. A job that fails (no face in the photo, a NaN loss) leaves ``failed.json`` with its one-line
reason; the others go on. Jobs of one method, prompt and setting run several sources per forward pass.

With adapted generators (StyleGAN-NADA's: the batch's ``adapted`` list), each edit is made once with the generator
and also drawn by each adapted one into ``<outdir>/styles/<style>/jobs/<job id>/`` (``before.png``: the source in
that style; the codes saved there draw ``after.png`` with the adapted generator). A style added to a finished batch
draws the edits saved under ``jobs/`` instead of making them again.

Under ``torchrun --nproc_per_node N -m styleclip batch ...`` process ``r`` takes every N-th forward pass (a chunk of
jobs that share a method, setting and prompt) still to do, so its results are those of one process; each
job folder is written by exactly one process and only process 0 writes ``manifest.json`` and the summary, after
all have finished, so nothing is written by two processes at once.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..errors import StyleclipError, UsageError
from ..io.images import save_png, to_pil
from ..latents import Codes
from ..utils.compiling import CompileRecord, compiling
from ..utils.files import atomic_save_arrays, atomic_write, make_folder
from ..utils.precision import current_precision
from .spec import BatchSpec, Job, Source

REPORT, FAILED = "report.json", "failed.json"


@dataclass
class BatchResult:
    """What a batch did: job ids by state (``done``, ``failed`` with reasons, ``skipped`` = done before)."""

    outdir: Path
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    rank: int = 0
    world: int = 1


def job_folder(outdir: Path, job: Job) -> Path:
    """``<outdir>/jobs/<job id>`` (``<outdir>/styles/<style>/jobs/<job id>`` for an adapted generator's drawing):
    where one job's outputs go."""
    if job.style is not None:
        return Path(outdir) / "styles" / job.style / "jobs" / job.base_id
    return Path(outdir) / "jobs" / job.id


OFFSETS = "offsets.safetensors"  # a photo's HyperStyle weight offsets, beside its latent under sources/


def run_batch(
    spec: BatchSpec,
    outdir: str | Path,
    *,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    cache: str | Path | None = None,
    offline: bool | None = None,
    precision: str = "auto",
    compile: bool = False,
    invert_method: str = "auto",
    invert_lpips: str | None = None,
    invert_steps: int | None = None,
    invert_encoder: str | None = None,
    invert_hyperstyle: str | None = None,
    stats_samples: int = 100_000,
    summary: Callable[[Path, Any, Any], Any] | None = None,
    progress: bool = True,
    redo: bool = False,
    max_jobs: int | None = None,
) -> BatchResult:
    """Run every job of ``spec`` not yet done in ``outdir`` (under torchrun: this process's share of them).

    Args:
        batch_size: sources per forward pass for jobs that share a method, prompt and setting.
        precision: the networks' arithmetic (:mod:`styleclip.utils.precision`).
        compile: ``torch.compile`` the generator (:mod:`styleclip.utils.compiling`): pays off over many jobs.
        invert_method: how photos are inverted (:data:`styleclip.inversion.invert.METHODS`; 'auto': the most
            faithful the catalogue knows); a photo HyperStyle inverted keeps ``offsets.safetensors`` beside its
            latent under ``sources/`` and its edits are drawn with them.
        invert_lpips: the distance projection minimises ('vgg', 'alex', 'off' for pixels alone, or a weights file;
            None = LPIPS-VGG), as :func:`styleclip.invert`'s ``lpips``; ``invert_steps``: ReStyle's, HyperStyle's or
            projection's; ``invert_encoder`` / ``invert_hyperstyle``: models other than the catalogue's.
        stats_samples: latents for the style statistics of the directions method.
        summary: ``summary(outdir, G, guide)`` called on process 0 once every process has finished.
        redo: do every job again, even those done before (``--overwrite``).
        max_jobs: refuse a batch of more jobs (``--max-edits``), counted before any is listed or any latent read.
    """
    from ..guidance.clip import DEFAULT_CLIP, load_clip
    from ..hub.generators import load_generator
    from ..latents import latent_rows
    from ..utils.devices import resolve_device
    from ..utils.distributed import setup
    from ..utils.precision import computing_in, resolve_precision

    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if not spec.generator:
        raise UsageError("name a generator: --generator NAME|PATH|URL")
    outdir = Path(outdir)
    ctx = setup(resolve_device(device))
    try:
        G = load_generator(spec.generator, device=ctx.device, cache=cache, offline=offline)
        rows = latent_rows(spec.latents, G) if spec.latents else None  # from the file's header
        jobs = spec.jobs(rows, limit=max_jobs)
        styles = load_styles(spec, G, cache, offline)
        guide = load_clip(spec.clip or DEFAULT_CLIP, device=ctx.device)
        result = BatchResult(outdir, rank=ctx.rank, world=ctx.world)
        result.skipped = [] if redo else [j.id for j in jobs if (job_folder(outdir, j) / REPORT).is_file()]
        todo = [j for j in jobs if redo or not (job_folder(outdir, j) / REPORT).is_file()]
        # every process must share out the same list: none starts writing reports before all have read the folder
        ctx.barrier()
        # whole forward passes are shared out, so that each source is computed in the same company as in one process
        mine = _groups(todo, batch_size)[ctx.rank :: ctx.world]
        if ctx.is_main:
            make_folder(outdir)
            text = json.dumps(_describe(spec, batch_size, precision, compile), indent=1, default=str)
            atomic_write(outdir / "batch.json", lambda tmp: tmp.write_text(text))
        inversion = {"method": invert_method, "lpips": invert_lpips, "steps": invert_steps, "redo": redo,
                     "encoder": invert_encoder, "hyperstyle": invert_hyperstyle}  # fmt: skip
        worker = _Worker(G, guide, outdir, spec, cache, offline, inversion, stats_samples, ctx.rank)
        worker.styles = styles
        with computing_in(resolve_precision(precision, ctx.device)), compiling(compile) as compiled:
            worker.compiled = compiled
            bar = tqdm(total=sum(map(len, mine)), desc=f"batch (process {ctx.rank})" if ctx.world > 1 else "batch",
                       unit="job", disable=not progress or None)  # fmt: skip
            try:
                for group in mine:
                    outcome = worker.run(group)
                    for job in group:
                        if job.id in outcome:
                            result.failed[job.id] = outcome[job.id]
                        else:
                            result.done.append(job.id)
                    bar.update(len(group))
            finally:
                bar.close()
        ctx.barrier()
        if ctx.is_main:
            write_manifest(outdir, jobs)
            if summary is not None:
                summary(outdir, G, guide)
        ctx.barrier()
        return result
    finally:
        ctx.close()


def load_styles(spec: BatchSpec, G, cache=None, offline: bool | None = None) -> dict[str, Any]:
    """``{style: adapted generator composed with G}`` (:func:`styleclip.load_adapted`) for every adapted generator
    the batch names, each checked against ``G`` before any job starts (one line naming the misfit)."""
    import sys

    from ..adapted import check_compatible, load_adapted

    styles = {}
    for name, ref in spec.styles().items():
        A = load_adapted(ref, G, cache=cache, offline=offline)
        check_compatible(A, G, ref)
        if A.meta.get("adapted_note"):
            print(f"styleclip batch: {A.meta['adapted_note']}", file=sys.stderr)
        styles[name] = A
    return styles


def _groups(jobs: list[Job], size: int) -> list[list[Job]]:
    """Jobs that share a method, setting and prompt, in chunks of ``size`` sources (first-seen order); the drawings
    of one edit by the adapted generators go with it."""
    by_key: dict[tuple, dict[str, list[Job]]] = {}
    for job in jobs:
        by_key.setdefault((job.run, job.prompt), {}).setdefault(job.source.key, []).append(job)
    chunks = []
    for by_source in by_key.values():
        lists = list(by_source.values())
        chunks += [[j for js in lists[i : i + size] for j in js] for i in range(0, len(lists), size)]
    return chunks


def _describe(spec: BatchSpec, batch_size: int, precision: str, compile: bool) -> dict:
    return {**describe_batch(spec), "batch_size": batch_size, "precision": precision, "compile": compile}


def describe_batch(spec: BatchSpec) -> dict:
    """What ``batch.json`` records of ``spec``: the settings that decide the jobs and their results."""
    runs = [{"method": r.method, **r.settings, **({} if r.adapted is None else {"adapted": list(r.adapted)}),
             **({} if r.prompts is None else {"prompts": list(r.prompts)})} for r in spec.runs]  # fmt: skip
    return {
        "generator": spec.generator,
        "clip": spec.clip,
        "prompts": spec.prompts,
        "runs": runs,
        "seeds": spec.seeds,
        "images": spec.images,
        "latents": spec.latents,
        "truncation_psi": spec.truncation_psi,
        # only when given: a batch folder made before adapted generators existed resumes as the same batch
        **({"adapted": spec.adapted} if spec.adapted else {}),
    }


class _Worker:
    """Turns groups of jobs into their folders, with the assets each method needs loaded once."""

    def __init__(self, G, guide, outdir: Path, spec: BatchSpec, cache, offline, inversion: dict, stats_samples, rank):
        self.G, self.guide, self.outdir, self.spec = G, guide, outdir, spec
        self.cache, self.offline, self.inversion, self.stats_samples = cache, offline, inversion, stats_samples
        self.rank = rank
        self.compiled = CompileRecord(False)  # the batch's, once it runs
        self.styles: dict[str, Any] = {}  # style name -> adapted generator
        self._stats = self._matrices = None
        self._mappers: dict[str, Any] = {}
        self._latents: dict[str, torch.Tensor] = {}  # a latent file is read once, not once per row
        self._inverted: set[str] = set()  # photos inverted by this run
        # photos HyperStyle inverted: their offset copies of G (and of each adapted generator), the last few kept
        self._weights: OrderedDict[tuple[str, str | None], Any] = OrderedDict()

    # -- sources -------------------------------------------------------------------------------------------

    def source_ws(self, source: Source) -> torch.Tensor:
        """W+ ``[1, num_ws, w_dim]`` of a source; photos are inverted once and kept under ``sources/``."""
        from ..sources import from_photo, from_seeds

        G = self.G
        with torch.no_grad():
            if source.kind == "seed":
                return from_seeds(G, [source.seed], self.spec.truncation_psi).ws
            if source.kind == "latent":
                from ..latents import load_latent

                if source.path not in self._latents:
                    self._latents[source.path] = load_latent(source.path, G)
                return self._latents[source.path][source.row : source.row + 1]
        from ..latents import load_latent

        where = self.outdir / "sources" / source.key
        # --overwrite inverts each photo again, once per run: the earlier inversion may have used other settings
        if (where / "latent.npy").is_file() and (source.key in self._inverted or not self.inversion["redo"]):
            return load_latent(where / "latent.npy", G)
        options = {k: v for k, v in self.inversion.items() if k != "redo"}
        inv = from_photo(G, source.path, **options, progress=False).inversion
        save_png(inv.aligned, where / "aligned.png")
        if inv.offsets is not None:  # before the latent: a latent without its offsets would draw another face
            from ..inversion.hyperstyle import save_offsets

            save_offsets(where / OFFSETS, inv.offsets, inv.generator.meta["offsets_of"])
        else:
            (where / OFFSETS).unlink(missing_ok=True)  # an earlier inversion's (--overwrite) is not this latent's
        atomic_save_arrays(where / "latent.npy", inv.ws.cpu().numpy())
        self._inverted.add(source.key)
        return inv.ws

    def generator_for(self, source: Source, style: str | None = None):
        """The network that draws ``source``'s edits: ``G`` (or the adapted generator ``style``), with the photo's
        HyperStyle offsets applied when it has them (on an adapted generator those from 128 px up)."""
        base = self.G if style is None else self.styles[style]
        path = self.outdir / "sources" / source.key / OFFSETS
        if source.kind != "image" or not path.is_file():
            return base
        key = (source.key, style)
        if key not in self._weights:
            from ..inversion.hyperstyle import load_offsets
            from ..sources import apply_offsets

            self._weights[key] = apply_offsets(base, load_offsets(path, self.G), adapted=style is not None)
            while len(self._weights) > 2:  # a copy is a whole generator: keep the last few, not one per photo
                self._weights.popitem(last=False)
        self._weights.move_to_end(key)
        return self._weights[key]

    # -- methods ---------------------------------------------------------------------------------------------

    def run(self, group: list[Job]) -> dict[str, str]:
        """Do ``group`` (one method, setting and prompt; each edit with its drawings by adapted generators);
        returns ``{job id: reason}`` of the failed ones."""
        failed: dict[str, str] = {}
        by_source: dict[str, list[Job]] = {}
        for job in group:
            # an earlier report (--overwrite) must not count this job as done if it now fails or stops half-way
            (job_folder(self.outdir, job) / REPORT).unlink(missing_ok=True)
            (job_folder(self.outdir, job) / FAILED).unlink(missing_ok=True)
            by_source.setdefault(job.source.key, []).append(job)
        ready, ws, outputs = [], [], {}
        for key, jobs in by_source.items():
            try:
                source_ws = self.source_ws(jobs[0].source)
                if any(j.style is None for j in jobs):
                    ready.append(key)
                    ws.append(source_ws)
                else:  # only new drawings of an edit done before: its saved codes, not a new edit
                    outputs[key] = self._saved(jobs[0].base, source_ws)
            except StyleclipError as exc:
                failed.update({j.id: self._fail(j, str(exc)) for j in jobs})
        if not ready and not outputs:
            return failed
        run, prompt = group[0].run, group[0].prompt
        t0 = time.perf_counter()
        # sources drawn by G share forward passes; a photo with its own weights (HyperStyle) takes its own
        passes: OrderedDict[int, tuple[Any, list[str], list[torch.Tensor]]] = OrderedDict()
        for key, w in zip(ready, ws, strict=True):
            G = self.generator_for(by_source[key][0].source)
            passes.setdefault(id(G), (G, [], []))[1].append(key)
            passes[id(G)][2].append(w)
        for G, keys, pass_ws in passes.values():
            try:
                made = getattr(self, f"_{run.method}")(G, torch.cat(pass_ws), prompt, run.settings)
            except StyleclipError as exc:
                made = [{"error": str(exc)}] * len(keys)
            outputs.update(zip(keys, made, strict=True))
        seconds = (time.perf_counter() - t0) / max(len(ready), 1)
        for key, out in outputs.items():
            for job in by_source[key]:
                if out.get("error"):
                    failed[job.id] = self._fail(job, out["error"])
                    continue
                try:
                    t1 = time.perf_counter()
                    drawn = out if job.style is None else self._draw(job.style, out, job.source)
                    self._write(job, drawn, seconds + time.perf_counter() - t1)
                except StyleclipError as exc:
                    if isinstance(exc, OSError):  # a full or read-only disk fails every job after it: stop here
                        raise
                    failed[job.id] = self._fail(job, str(exc))
        return failed

    def _saved(self, base: Job, ws: torch.Tensor) -> dict:
        """The edit a finished job saved (its codes), to be drawn by adapted generators."""
        from ..latents import load_latent

        where = job_folder(self.outdir, base)
        if (where / "codes.npz").is_file():
            import numpy as np

            with np.load(where / "codes.npz") as arrays:
                codes = Codes.from_arrays(dict(arrays), self.G)
        else:
            codes = Codes(load_latent(where / "latent.npy", self.G))
        report = json.loads((where / REPORT).read_text())
        extra = {k: v for k, v in report.items() if k not in _job_dict(base) and k not in _OWN}
        return {"ws": ws, "codes": codes, "extra": extra}

    def _draw(self, style: str, out: dict, source: Source) -> dict:
        """An edit's output (made with the generator) drawn by the adapted generator ``style``."""
        from ..adapted import adapted_codes, summary

        A, codes = self.generator_for(source, style), out["codes"]
        source_ws = out.get("ws", codes.ws)
        with torch.no_grad():
            mine = adapted_codes(self.G, A, codes.to(self.G.device))
            before, after = A.synthesize(source_ws.to(self.G.device)), mine.image(A)
        adapted = {"style": style, **(summary(A) or {"name": self.spec.styles()[style]})}
        return {"before": before, "after": after, "codes": mine, "extra": {**out["extra"], "adapted": adapted}}

    def _optimize(self, G, ws: torch.Tensor, prompt: str, settings: dict) -> list[dict]:
        from ..edits.optimize import optimize

        results = optimize(G, prompt, self.guide, source=ws, progress=False, **settings)
        return [
            {
                "ws": ws[i : i + 1], "before": r.source_image, "after": r.image,
                "codes": Codes(r.latent, r.styles if r.styles is not None else None),
                "extra": {"steps_done": r.steps_done, "stopped": r.stopped},
                "error": r.message if r.stopped == "nan" else None,
            }
            for i, r in enumerate(results)
        ]  # fmt: skip

    def _directions(self, G, ws: torch.Tensor, prompt: str, settings: dict) -> list[dict]:
        """``G`` draws (a photo's offset copy, or the generator); statistics and relevance are the generator's."""
        from ..edits.global_direction import global_direction
        from ..edits.relevance_files import find_relevance
        from ..stylespace import style_statistics

        base = self.G
        if self._stats is None:
            self._stats = style_statistics(base, samples=self.stats_samples, cache=self.cache, progress=False)
            self._matrices = {}
        key = settings["relevance"]
        if key not in self._matrices:
            self._matrices[key] = find_relevance(base, self.guide.name, key, self.cache, self.offline,
                                                 self.spec.generator)  # fmt: skip
        direction = global_direction(self.guide, prompt, settings["neutral"], self._matrices[key], self._stats,
                                     beta=settings["beta"], domain=base.meta.get("domain"))  # fmt: skip
        with torch.no_grad():
            styles = G.styles(ws)
            edited = direction.at(settings["alpha"]).apply(G, Codes(ws, styles))
            before, after = G.synthesis_from_styles(styles), edited.image(G)
        extra = {"beta": direction.beta, "channels_changed": direction.channels_changed}
        return [
            {"ws": ws[i : i + 1], "before": before[i : i + 1], "after": after[i : i + 1], "extra": extra,
             "codes": Codes(ws[i : i + 1], {k: v[i : i + 1] for k, v in edited.styles.items()})}
            for i in range(ws.shape[0])
        ]  # fmt: skip

    def _mapper(self, G, ws: torch.Tensor, prompt: str, settings: dict) -> list[dict]:
        from ..edits.mapper import MapperEdit
        from ..hub.mappers import load_mapper

        name = settings["mapper"]
        if name not in self._mappers:
            self._mappers[name] = load_mapper(name, generator=self.G, device=self.G.device, cache=self.cache,
                                              offline=self.offline)  # fmt: skip
        edit = MapperEdit(self._mappers[name], settings["strength"])
        with torch.no_grad():
            edited = edit.apply(G, Codes(ws))
            before, after = G.synthesize(ws), edited.image(G)
        extra = {"strength": edit.describe()["strength"], "mapper_prompt": self._mappers[name].meta.get("prompt")}
        return [
            {"ws": ws[i : i + 1], "before": before[i : i + 1], "after": after[i : i + 1],
             "codes": Codes(edited.ws[i : i + 1]), "extra": extra}
            for i in range(ws.shape[0])
        ]  # fmt: skip

    # -- outputs -----------------------------------------------------------------------------------------------

    def _write(self, job: Job, out: dict, seconds: float) -> None:
        where = job_folder(self.outdir, job)
        save_png(to_pil(out["before"])[0], where / "before.png")
        save_png(to_pil(out["after"])[0], where / "after.png")
        codes: Codes = out["codes"].cpu()
        if codes.styles is None:
            atomic_save_arrays(where / "latent.npy", codes.ws.numpy())
        else:
            atomic_save_arrays(where / "codes.npz", codes.arrays())
        report = {**_job_dict(job), "state": "done", "process": self.rank, "seconds": round(seconds, 3),
                  "generator": self.spec.generator, "domain": self.G.meta.get("domain"), "clip": self.guide.name,
                  "precision": current_precision(), "compile": self.compiled.report(), **out["extra"]}  # fmt: skip
        text = json.dumps(report, indent=1, default=str)
        atomic_write(where / REPORT, lambda tmp: tmp.write_text(text))  # last: the job is done

    def _fail(self, job: Job, reason: str) -> str:
        reason = reason.splitlines()[0] if reason else "failed"
        text = json.dumps({**_job_dict(job), "state": "failed", "reason": reason, "process": self.rank}, indent=1)
        atomic_write(job_folder(self.outdir, job) / FAILED, lambda tmp: tmp.write_text(text))
        return reason


# What a job's report says of the run rather than of the edit (not carried over when a saved edit is drawn again).
_OWN = ("state", "process", "seconds", "generator", "domain", "clip", "precision", "compile", "adapted")


def _job_dict(job: Job) -> dict:
    s = job.source
    source = {"kind": s.kind, "key": s.key, "seed": s.seed, "path": s.path, "row": s.row}
    return {"job": job.id, "source": source, "prompt": job.prompt, "method": job.run.method,
            "settings": job.run.settings, "style": job.style}  # fmt: skip


def write_manifest(outdir: Path, jobs: list[Job]) -> dict:
    """``manifest.json``: every job's state (done / failed with its reason / pending), read from the job folders."""
    entries, counts = [], {"done": 0, "failed": 0, "pending": 0}
    for job in jobs:
        where = job_folder(outdir, job)
        entry = _job_dict(job)
        if (where / REPORT).is_file():
            data = json.loads((where / REPORT).read_text())
            entry.update(state="done", process=data.get("process"), seconds=data.get("seconds"))
        elif (where / FAILED).is_file():
            data = json.loads((where / FAILED).read_text())
            entry.update(state="failed", reason=data.get("reason"), process=data.get("process"))
        else:
            entry.update(state="pending")
        counts[entry["state"]] += 1
        entries.append(entry)
    manifest = {"counts": counts, "jobs": entries}
    text = json.dumps(manifest, indent=1, default=str)
    atomic_write(Path(outdir) / "manifest.json", lambda tmp: tmp.write_text(text))
    return manifest


__all__ = ["BatchResult", "describe_batch", "job_folder", "load_styles", "run_batch", "write_manifest"]
