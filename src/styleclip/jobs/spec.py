"""What a batch is: sources x prompts x runs (a method with its settings), each combination one job with a stable id.

A batch comes from the command line or from a YAML/JSON job file naming the same things::

    generator: afhqdog
    seeds: 0-99                # or  images: photos/   or  latents: inverted.npy
    prompts: [a happy dog, a sleepy dog]          # or  prompts_file: prompts.txt
    runs:
      - {method: optimize, steps: 150, l2_weight: 0.008}
      - {method: directions, neutral: a dog, alpha: 4, beta: 0.12}
      - {method: mapper, mapper: my-mapper.safetensors, strength: 0.1}

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
    """A method with its settings (``options`` as sorted ``(name, value)`` pairs, so that runs compare equal)."""

    method: str
    options: tuple[tuple[str, Any], ...]

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def tag(self) -> str:
        digest = hashlib.sha256(json.dumps(self.options, default=str).encode()).hexdigest()[:6]
        return f"{self.method}-{digest}"


@dataclass(frozen=True)
class Job:
    source: Source
    prompt: str
    run: Run

    @property
    def id(self) -> str:
        return f"{self.source.key}--{slug(self.prompt)}--{self.run.tag}"


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

    def __post_init__(self) -> None:
        check_float("truncation psi (--trunc)", self.truncation_psi, *TRUNCATION_RANGE)

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
        if limit is not None:
            sources = len(self.seeds) if self.seeds else latent_rows if self.latents and latent_rows else None
            count = (sources or len(self.sources(latent_rows))) * len(self.prompts) * len(self.runs)
            if count > limit:
                raise UsageError(f"{count} jobs ({count // (len(self.prompts) * len(self.runs))} sources x "
                                 f"{len(self.prompts)} prompts x {len(self.runs)} runs) is more than --max-edits "
                                 f"{limit}; raise --max-edits to start them all")  # fmt: skip
        jobs = [Job(s, p, r) for s in self.sources(latent_rows) for p in self.prompts for r in self.runs]
        ids = [j.id for j in jobs]
        if len(set(ids)) != len(ids):
            raise UsageError("two jobs would share a folder: the prompts or sources repeat themselves")
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
MAX_YAML_NODES = 100_000
MAX_RUNS = 1_000
MAX_PROMPTS = 100_000
TRUST_FLAG = "--trust-paths"
JOB_RULE = "a job file may name catalogue models and files inside its own folder"
KNOWN = ("generator", "seeds", "images", "latents", "prompts", "prompts_file", "runs", "truncation_psi", "clip")
# The command-line option that names the same thing as a job file's entry (given there, it is trusted).
OVERRIDES = {"generator": "--generator", "clip": "--clip"}


def read_job_file(path: str | Path, *, trust_paths: bool = False, given: tuple[str, ...] = ()) -> BatchSpec:
    """A :class:`BatchSpec` from a YAML (``.yaml``/``.yml``) or JSON job file (see the module docstring).

    Args:
        trust_paths: open any path or URL the file names (``--trust-paths``); otherwise catalogue names and paths
            inside the job file's folder only.
        given: entries the command line gives instead (``generator``, ``clip``): not opened from the file.
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
        runs.append(make_run(item["method"], settings, where=f"{path}: runs[{i}]"))
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
    )


def describe_references(path: Path, spec: BatchSpec) -> str:
    """One line saying what running the job file will open."""
    parts = [f"{k} {v}" for k, v in (("generator", spec.generator), ("CLIP", spec.clip), ("images", spec.images),
                                      ("latents", spec.latents)) if v]  # fmt: skip
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
        raise refuse(job, ref, OVERRIDES.get(ref.field), TRUST_FLAG, JOB_RULE, why=where)
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
    try:
        import yaml
    except ImportError:
        raise UsageError("YAML job files need PyYAML: pip install pyyaml (or write the job file as JSON)") from None
    loader = _bounded_loader(yaml)(text)
    try:
        return loader.get_single_data()
    except _TooLarge as exc:
        raise UsageError(f"{path}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}: " if mark is not None else ""
        raise UsageError(f"{path}: not valid YAML ({at}{' '.join(str(exc.problem or exc.context).split())})") from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not valid YAML ({type(exc).__name__})") from None
    finally:
        loader.dispose()


class _TooLarge(Exception):
    pass


def _bounded_loader(yaml):
    """PyYAML's safe loader counting each node at its expanded size (an alias adds its whole anchored tree)."""

    class BoundedLoader(yaml.SafeLoader):
        def __init__(self, stream):
            super().__init__(stream)
            self._sizes: dict[int, int] = {}

        def compose_node(self, parent, index):
            alias = self.check_event(yaml.AliasEvent)
            node = super().compose_node(parent, index)
            if alias:
                if id(node) not in self._sizes:
                    raise _TooLarge("an alias refers to the node that holds it (a recursive YAML structure)")
                return node
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            else:
                children = []
            size = 1 + sum(self._sizes[id(c)] for c in children)
            if size > MAX_YAML_NODES:
                raise _TooLarge(f"expands to more than {MAX_YAML_NODES} YAML nodes (aliases counted at their size); "
                                "write the job out without nested aliases")  # fmt: skip
            self._sizes[id(node)] = size
            return node

    return BoundedLoader


def slug(text: str, limit: int = 40) -> str:
    """``text`` as a short file-name part: lower-case letters and digits joined by '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "x"
