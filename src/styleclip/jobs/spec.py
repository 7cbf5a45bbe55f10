"""What a batch is: sources x prompts x runs (a method with its settings), each combination one job with a stable id.

A batch comes from the command line or from a YAML/JSON job file naming the same things::

    generator: afhqdog
    seeds: 0-99                # or  images: photos/   or  latents: inverted.npy
    prompts: [a happy dog, a sleepy dog]          # or  prompts_file: prompts.txt
    runs:
      - {method: optimize, steps: 150, l2_weight: 0.008}
      - {method: directions, neutral: a dog, alpha: 4, beta: 0.12}
      - {method: mapper, mapper: my-mapper.safetensors, strength: 0.1}
    adapted: [nada:pixar, runs/sketch/generator.safetensors]   # optional: every edit also in these styles

A run may name the only prompts it edits with (``prompts: [a happy dog]``): a mapper trained for one text, say.

With ``adapted`` (at the top, or in a run to replace the top list for that run, ``adapted: []`` for none), each
edit is made once with the generator and drawn again by each adapted generator (StyleGAN-NADA's, sharing its W
space): a job per style, under ``styles/<style>/jobs/``, beside the generator's own under ``jobs/``.

Relative paths in a job file are relative to its folder. A job file is data that people share, so what it names
is opened only when it is a catalogue name or a path inside the job file's folder; an absolute path, a ``..``
escape or a URL needs ``--trust-paths`` (or, for the generator and CLIP model, the same option on the command line).
YAML is read with the safe loader and a bound on its nodes (aliases counted at their expanded size), and every value
is type- and range-checked.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..references import Reference, has_scheme, inside_folder, is_catalogue_name, refuse
from ..sample import MAX_SEEDS, SEED_LIMIT, TRUNCATION_RANGE, parse_seeds
from ..utils.safe_yaml import read_yaml
from ..utils.values import check_choice, check_float, check_int, check_str, check_str_list

METHODS = ("optimize", "directions", "mapper")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
# The settings each method takes, with their defaults (anything else in a run is refused by name).
OPTIONS: dict[str, dict[str, Any]] = {
    "optimize": {"steps": 150, "l2_weight": 0.008, "id_weight": None, "space": "w+", "layers": None,
                 "loss": "global", "neutral": None, "lr": 0.1},
    "directions": {"neutral": None, "alpha": 4.0, "beta": 0.15, "relevance": None},
    "mapper": {"mapper": None, "strength": None},
}  # fmt: skip


@dataclass(frozen=True)
class Source:
    """One picture to edit: a seed, a photo or a row of a latent file; ``key`` names its folders."""

    kind: str  # 'seed', 'image' or 'latent'
    key: str
    seed: int | None = None
    path: str | None = None
    row: int | None = None


@dataclass(frozen=True)
class Run:
    """A method with its settings (``options`` as sorted ``(name, value)`` pairs, so that runs compare equal).

    ``adapted``: the adapted generators this run's edits are also drawn by (None: the batch's list); ``prompts``:
    the only prompts this run edits with (None: all the batch's; a mapper, trained for one text, takes only it).
    """

    method: str
    options: tuple[tuple[str, Any], ...]
    adapted: tuple[str, ...] | None = None
    prompts: tuple[str, ...] | None = None

    def takes(self, prompt: str) -> bool:
        return self.prompts is None or prompt in self.prompts

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def tag(self) -> str:
        digest = hashlib.sha256(json.dumps(self.options, default=str).encode()).hexdigest()[:6]
        return f"{self.method}-{digest}"


@dataclass(frozen=True)
class Job:
    """One edit of one source; ``style``: the adapted generator that draws it (its folder name), None for the
    generator itself."""

    source: Source
    prompt: str
    run: Run
    style: str | None = None

    @property
    def base_id(self) -> str:
        """The folder name of the edit, the same in every style."""
        return f"{self.source.key}--{slug(self.prompt)}--{self.run.tag}"

    @property
    def id(self) -> str:
        return self.base_id if self.style is None else f"{self.style}:{self.base_id}"

    @property
    def base(self) -> Job:
        """The same edit drawn by the generator itself."""
        return Job(self.source, self.prompt, self.run)


@dataclass
class BatchSpec:
    """Everything a batch needs; :meth:`jobs` expands it (sources outermost, then prompts, then runs)."""

    generator: str
    prompts: list[str]
    runs: list[Run]
    seeds: list[int] = field(default_factory=list)
    images: str | None = None
    latents: str | None = None
    truncation_psi: float = 0.7
    clip: str | None = None
    adapted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_float("truncation psi (--trunc)", self.truncation_psi, *TRUNCATION_RANGE)

    def run_adapted(self, run: Run) -> tuple[str, ...]:
        """The adapted generators that draw ``run``'s edits."""
        return tuple(self.adapted) if run.adapted is None else run.adapted

    def styles(self) -> dict[str, str]:
        """``{style folder name: adapted generator}`` of every adapted generator named, in first-named order."""
        refs = list(dict.fromkeys([*self.adapted, *(a for r in self.runs for a in (r.adapted or ()))]))
        if len(refs) > MAX_STYLES:
            raise UsageError(f"{len(refs)} adapted generators is more than {MAX_STYLES}; split the batch")
        names: dict[str, str] = {}
        for ref in refs:
            name = base = style_name(ref)
            n = 1
            while name in names:  # two runs/*/generator.safetensors of the same name: numbered in order
                n += 1
                name = f"{base}-{n}"
            names[name] = ref
        return names

    def sources(self, latent_rows: int | None = None) -> list[Source]:
        """The sources; ``latent_rows``: how many W+ latents the ``latents`` file holds (read with the generator)."""
        given = [x for x in (self.seeds, self.images, self.latents) if x]
        if len(given) != 1:
            raise UsageError("give one kind of source: --seeds, --images or --latents")
        if self.seeds:
            return [Source("seed", f"seed{s:04d}", seed=s) for s in self.seeds]
        if self.images:
            folder = Path(self.images)
            if not folder.is_dir():
                raise UsageError(f"--images {folder}: not a folder of photos")
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise UsageError(f"--images {folder}: no photos ({', '.join(IMAGE_SUFFIXES)}) in it")
            return [Source("image", f"img-{slug(p.stem, 32)}", path=str(p.resolve())) for p in files]
        if latent_rows is None:
            raise UsageError("internal: the rows of the latent file are needed")
        return [Source("latent", f"row{r:04d}", path=str(Path(self.latents).resolve()), row=r)
                for r in range(latent_rows)]  # fmt: skip

    def jobs(self, latent_rows: int | None = None, limit: int | None = None) -> list[Job]:
        """Every job; ``limit``: refuse (naming ``--max-edits``) when there would be more, before listing them."""
        if not self.prompts:
            raise UsageError("give at least one prompt: --prompt TEXT or --prompts FILE")
        if not self.runs:
            raise UsageError("give a method: --method optimize|directions|mapper")
        by_ref = {ref: name for name, ref in self.styles().items()}
        drawn = {r: [None, *(by_ref[a] for a in self.run_adapted(r))] for r in self.runs}
        unused = [r for r in self.runs if not any(map(r.takes, self.prompts))]
        if unused:
            raise UsageError(f"a {unused[0].method} run names prompts the batch does not have: "
                             f"{', '.join(map(repr, unused[0].prompts or ()))}")  # fmt: skip
        if limit is not None:
            sources = len(self.seeds) if self.seeds else latent_rows if self.latents and latent_rows else None
            per_source = sum(len(drawn[r]) for p in self.prompts for r in self.runs if r.takes(p))
            count = (sources or len(self.sources(latent_rows))) * per_source
            if count > limit:
                styles = sum(map(len, drawn.values())) - len(self.runs)
                also = f" + {styles} adapted drawings" if styles else ""
                raise UsageError(f"{count} jobs ({count // per_source} sources x {len(self.prompts)} prompts x "
                                 f"{len(self.runs)} runs{also}) is more than --max-edits {limit}; raise "
                                 f"--max-edits to start them all")  # fmt: skip
        jobs = [Job(s, p, r, style) for s in self.sources(latent_rows) for p in self.prompts for r in self.runs
                if r.takes(p) for style in drawn[r]]  # fmt: skip
        ids = [j.id for j in jobs]
        if len(set(ids)) != len(ids):
            raise UsageError("two jobs would share a folder: the prompts, sources or runs repeat themselves (two "
                             "runs that differ only in adapted generators: give one both lists)")  # fmt: skip
        return jobs


def make_run(method: str, settings: dict[str, Any], where: str = "") -> Run:
    """A :class:`Run` with the method's defaults filled in; unknown settings are refused by name, values checked.

    ``where``: what the message names first when a value is wrong (e.g. ``job.yaml: runs[2]``).
    """
    if not isinstance(method, str) or method not in METHODS:
        raise UsageError(f"{where + ': ' if where else ''}unknown method {method!r}: use {', '.join(METHODS)}")
    unknown = sorted(map(str, set(settings) - set(OPTIONS[method])))
    if unknown:
        raise UsageError(f"{method} takes no {', '.join(unknown)} (it takes {', '.join(OPTIONS[method])})")
    values = {**OPTIONS[method], **{k: v for k, v in settings.items() if v is not None}}
    _check_settings(method, values, where)
    if method == "directions" and not values["neutral"]:
        raise UsageError("the directions method needs a neutral text, e.g. --neutral 'a dog'")
    if method == "mapper" and not values["mapper"]:
        raise UsageError("the mapper method needs --mapper NAME|PATH")
    if method == "optimize" and values["loss"] == "directional" and not values["neutral"]:
        raise UsageError("the directional loss needs --neutral")
    return Run(method, tuple(sorted(values.items())))


def _check_settings(method: str, v: dict[str, Any], where: str) -> None:
    from ..edits.optimize import LOSSES, MAX_STEPS, SPACES

    if method == "optimize":
        check_int("steps", v["steps"], 1, MAX_STEPS, where=where)
        check_float("l2_weight", v["l2_weight"], 0, where=where)
        check_float("id_weight", v["id_weight"], 0, where=where, optional=True)
        check_choice("space", v["space"], SPACES, where=where)
        if isinstance(v["layers"], list):
            check_str_list("layers", v["layers"], where=where, max_items=1_000, max_len=200)
        else:
            check_str("layers", v["layers"], where=where, optional=True)
        check_choice("loss", v["loss"], LOSSES, where=where)
        check_float("lr", v["lr"], 0, where=where)
    elif method == "directions":
        check_float("alpha", v["alpha"], -1e4, 1e4, where=where)
        check_float("beta", v["beta"], 0, where=where)
        check_str("relevance", v["relevance"], where=where, optional=True)
    else:
        check_str("mapper", v["mapper"], where=where, optional=True)
        check_float("strength", v["strength"], -1e4, 1e4, where=where, optional=True)
    check_str("neutral", v.get("neutral"), where=where, optional=True)


MAX_PROMPT_FILE_BYTES = 16 << 20


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with ``#`` are skipped."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--prompts {path}: no such file")
    if path.stat().st_size > MAX_PROMPT_FILE_BYTES:
        raise UsageError(f"--prompts {path}: more than {MAX_PROMPT_FILE_BYTES >> 20} MiB; is this a prompt list?")
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


# A job file is a page of settings: a megabyte or a hundred thousand YAML nodes is far beyond any, and bounds what
# an alias bomb ("billion laughs": nested aliases that expand to billions of nodes) can make styleclip build.
MAX_JOB_BYTES = 1 << 20
MAX_RUNS = 1_000
MAX_PROMPTS = 100_000
MAX_STYLES = 100
TRUST_FLAG = "--trust-paths"
JOB_RULE = "a job file may name catalogue models and files inside its own folder"
KNOWN = ("generator", "seeds", "images", "latents", "prompts", "prompts_file", "runs", "truncation_psi", "clip",
         "adapted")  # fmt: skip
# The command-line option that names the same thing as a job file's entry (given there, it is trusted).
OVERRIDES = {"generator": "--generator", "clip": "--clip", "adapted": "--adapted"}


def read_job_file(path: str | Path, *, trust_paths: bool = False, given: tuple[str, ...] = ()) -> BatchSpec:
    """A :class:`BatchSpec` from a YAML (``.yaml``/``.yml``) or JSON job file (see the module docstring).

    Args:
        trust_paths: open any path or URL the file names (``--trust-paths``); otherwise catalogue names and paths
            inside the job file's folder only.
        given: entries the command line gives instead (``generator``, ``clip``, ``adapted``): not opened from the
            file.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such job file")
    data = _load(path)
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a job file is a mapping (generator, seeds/images/latents, prompts, runs)")
    unknown = sorted(map(str, set(data) - set(KNOWN)))
    if unknown:
        raise UsageError(f"{path}: unknown entries {', '.join(unknown)} (known: {', '.join(sorted(KNOWN))})")
    where = str(path)

    def opened(key: str, kind: str) -> str | None:
        value = check_str(key, data.get(key), where=where, optional=True)
        if value is None or key in given:
            return value
        return _place(path, Reference(key, value, kind), trust_paths)

    generator = opened("generator", "generator")
    clip = opened("clip", "clip")
    images = opened("images", "folder")
    latents = opened("latents", "file")
    prompts_file = opened("prompts_file", "file")
    prompts = check_str_list("prompts", data.get("prompts") or [], where=where, max_items=MAX_PROMPTS)
    if prompts_file:
        prompts += read_prompts(prompts_file)
    runs_data = data.get("runs") or []
    if not isinstance(runs_data, list) or len(runs_data) > MAX_RUNS:
        raise UsageError(f"{path}: runs must be a list of at most {MAX_RUNS} runs, e.g. [{{method: optimize}}]")
    runs = []
    for i, item in enumerate(runs_data):
        if not isinstance(item, dict) or "method" not in item:
            raise UsageError(f"{path}: each run needs a method, e.g. {{method: optimize, steps: 150}}")
        settings = {str(k): v for k, v in item.items() if k != "method"}
        for key, kind in (("mapper", "mapper"), ("relevance", "directions")):
            if settings.get(key) is not None:
                label = f"runs[{i}].{key}"
                value = check_str(label, settings[key], where=where)
                settings[key] = _place(path, Reference(label, value, kind), trust_paths)
        adapted = settings.pop("adapted", None)
        only = settings.pop("prompts", None)
        run = make_run(item["method"], settings, where=f"{path}: runs[{i}]")
        if adapted is not None:
            refs = _adapted(path, f"runs[{i}].adapted", adapted, trust_paths)
            run = Run(run.method, run.options, tuple(refs))
        if only is not None:
            only = [only] if isinstance(only, str) else only
            names = check_str_list(f"runs[{i}].prompts", only, where=where, max_items=MAX_PROMPTS)
            run = Run(run.method, run.options, run.adapted, tuple(names))
        runs.append(run)
    psi = data.get("truncation_psi", 0.7)
    return BatchSpec(
        generator=generator or "",
        prompts=prompts,
        runs=runs,
        seeds=_seeds(data.get("seeds"), where),
        images=images,
        latents=latents,
        truncation_psi=check_float("truncation_psi", psi, *TRUNCATION_RANGE, where=where),  # type: ignore[arg-type]
        clip=clip,
        adapted=[] if "adapted" in given else _adapted(path, "adapted", data.get("adapted"), trust_paths),
    )


def _adapted(job: Path, label: str, value: Any, trust: bool) -> list[str]:
    """A job file's list of adapted generators (one name may stand alone), each placed by the trust rules."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    refs = check_str_list(label, items, where=str(job), max_items=MAX_STYLES, max_len=1_000)
    return [_place(job, Reference(f"{label}[{i}]", ref, "generator"), trust) for i, ref in enumerate(refs)]


def style_name(ref: str) -> str:
    """The folder name of an adapted generator's drawings: ``nada:pixar`` -> ``nada-pixar``,
    ``runs/sketch/generator.safetensors`` -> ``sketch`` (an adaptation's run folder names it), else the file's stem."""
    text = ref.rstrip("/")
    if not has_scheme(text) and ":" in text and "/" not in text and "\\" not in text:
        return slug(text)
    name = re.split(r"[/\\]", text.split("?", 1)[0])
    leaf = name[-1]
    stem = leaf.rsplit(".", 1)[0] if "." in leaf else leaf
    if stem == "generator" and len(name) > 1 and name[-2]:
        stem = name[-2]
    return slug(stem)


def describe_references(path: Path, spec: BatchSpec) -> str:
    """One line saying what running the job file will open."""
    parts = [f"{k} {v}" for k, v in (("generator", spec.generator), ("CLIP", spec.clip), ("images", spec.images),
                                      ("latents", spec.latents)) if v]  # fmt: skip
    for ref in spec.styles().values():
        if f"adapted {ref}" not in parts:
            parts.append(f"adapted {ref}")
    for run in spec.runs:
        for key in ("mapper", "relevance"):
            value = run.settings.get(key)
            if value and f"{key} {value}" not in parts:
                parts.append(f"{key} {value}")
    return " ".join(f"job file {path}: {', '.join(parts) or 'no files'}".split())


def _place(job: Path, ref: Reference, trust: bool) -> str:
    """The value a loader gets for ``ref``: a catalogue name as written, a path inside the job's folder resolved;
    anything else only with ``trust`` (relative paths still taken from the job's folder)."""
    folder = job.parent
    if is_catalogue_name(ref.value, ref.kind, folder):
        return ref.value
    inside = inside_folder(ref.value, folder, ref.kind)
    if inside is not None:
        return inside
    if not trust:
        where = "" if has_scheme(ref.value) else ", outside the job file's folder"
        # an entry of a list (adapted[1]) is given on the command line as the list's option
        raise refuse(job, ref, OVERRIDES.get(ref.field.split("[")[0]), TRUST_FLAG, JOB_RULE, why=where)
    if has_scheme(ref.value):
        return ref.value
    path = Path(ref.value).expanduser()  # ~/lat.npy means the user's home, not a folder named ~
    return str(path if path.is_absolute() else folder / path)


def _seeds(value: Any, where: str) -> list[int]:
    if value is None:
        return []
    if isinstance(value, list):
        if len(value) > MAX_SEEDS:
            raise UsageError(f"{where}: more than {MAX_SEEDS} seeds; split the job")
        return [check_int("seeds", v, 0, SEED_LIMIT - 1, where=where) for v in value]  # type: ignore[misc]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UsageError(f"{where}: seeds must be a range such as 0-99, a seed, or a list of seeds")
    try:
        return parse_seeds(value)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None


def _load(path: Path) -> Any:
    size = path.stat().st_size
    if size > MAX_JOB_BYTES:
        raise UsageError(f"{path}: {size >> 10} KiB is far more than a job file holds (at most {MAX_JOB_BYTES >> 10})")
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_JOB_BYTES + 1)[:MAX_JOB_BYTES].decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a text file (a job file is UTF-8 YAML or JSON)") from None
    if path.suffix.lower() not in (".yaml", ".yml"):
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            line = f" (line {exc.lineno}: {exc.msg})" if isinstance(exc, json.JSONDecodeError) else ""
            raise UsageError(f"{path}: not valid JSON{line}") from None
    return read_yaml(text, str(path), advice="write the job out without nested aliases")


def slug(text: str, limit: int = 40) -> str:
    """``text`` as a short file-name part: lower-case letters and digits joined by '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "x"
