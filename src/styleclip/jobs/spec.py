"""What a batch is: sources x prompts x runs (a method with its settings), each combination one job with a stable id.

A batch comes from the command line or from a YAML/JSON job file naming the same things::

    generator: afhqdog
    seeds: 0-99                # or  images: photos/   or  latents: inverted.npy
    prompts: [a happy dog, a sleepy dog]          # or  prompts_file: prompts.txt
    runs:
      - {method: optimize, steps: 150, l2_weight: 0.008}
      - {method: directions, neutral: a dog, alpha: 4, beta: 0.12}
      - {method: mapper, mapper: my-mapper.safetensors, strength: 0.1}
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..sample import parse_seeds

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

    def jobs(self, latent_rows: int | None = None) -> list[Job]:
        if not self.prompts:
            raise UsageError("give at least one prompt: --prompt TEXT or --prompts FILE")
        if not self.runs:
            raise UsageError("give a method: --method optimize|directions|mapper")
        jobs = [Job(s, p, r) for s in self.sources(latent_rows) for p in self.prompts for r in self.runs]
        ids = [j.id for j in jobs]
        if len(set(ids)) != len(ids):
            raise UsageError("two jobs would share a folder: the prompts or sources repeat themselves")
        return jobs


def make_run(method: str, settings: dict[str, Any]) -> Run:
    """A :class:`Run` with the method's defaults filled in; unknown settings are refused by name."""
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}: use {', '.join(METHODS)}")
    unknown = sorted(set(settings) - set(OPTIONS[method]))
    if unknown:
        raise UsageError(f"{method} takes no {', '.join(unknown)} (it takes {', '.join(OPTIONS[method])})")
    values = {**OPTIONS[method], **{k: v for k, v in settings.items() if v is not None}}
    if method == "directions" and not values["neutral"]:
        raise UsageError("the directions method needs a neutral text, e.g. --neutral 'a dog'")
    if method == "mapper" and not values["mapper"]:
        raise UsageError("the mapper method needs --mapper NAME|PATH")
    if method == "optimize" and values["loss"] == "directional" and not values["neutral"]:
        raise UsageError("the directional loss needs --neutral")
    return Run(method, tuple(sorted(values.items())))


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with ``#`` are skipped."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--prompts {path}: no such file")
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def read_job_file(path: str | Path) -> BatchSpec:
    """A :class:`BatchSpec` from a YAML (``.yaml``/``.yml``) or JSON job file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such job file")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
    except ImportError:
        raise UsageError("YAML job files need PyYAML: pip install pyyaml (or write the job file as JSON)") from None
    except Exception as exc:
        raise UsageError(f"{path}: not a valid job file ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a job file is a mapping (generator, seeds/images/latents, prompts, runs)")
    known = {"generator", "seeds", "images", "latents", "prompts", "prompts_file", "runs", "truncation_psi", "clip"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{path}: unknown entries {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    prompts = data.get("prompts") or []
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if data.get("prompts_file"):
        prompts += read_prompts(path.parent / data["prompts_file"])
    runs = []
    for item in data.get("runs") or []:
        if not isinstance(item, dict) or "method" not in item:
            raise UsageError(f"{path}: each run needs a method, e.g. {{method: optimize, steps: 150}}")
        settings = {k: v for k, v in item.items() if k != "method"}
        runs.append(make_run(item["method"], settings))
    seeds = data.get("seeds")
    relative = {k: str(path.parent / data[k]) for k in ("images", "latents") if data.get(k)}
    return BatchSpec(
        generator=str(data.get("generator") or ""),
        prompts=[str(p) for p in prompts],
        runs=runs,
        seeds=parse_seeds(str(seeds)) if seeds is not None else [],
        images=relative.get("images"),
        latents=relative.get("latents"),
        truncation_psi=float(data.get("truncation_psi", 0.7)),
        clip=data.get("clip"),
    )


def slug(text: str, limit: int = 40) -> str:
    """``text`` as a short file-name part: lower-case letters and digits joined by '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "x"
