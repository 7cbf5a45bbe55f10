"""What the web UI does, without the web: sources, live global-direction previews, latent optimisation with
streamed frames, accepted steps with undo/redo, and downloads. The Gradio page (:mod:`styleclip.ui.app`) is a thin
layer over :class:`EditSession`; tests and other front ends drive it directly.

One :class:`Studio` holds what all browser sessions share (generator, CLIP, style statistics, relevance matrix,
directions cached per prompt); one :class:`EditSession` per browser session holds its history and its own
temporary folder.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
import shutil
import tempfile
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..edits.base import Edit
from ..edits.global_direction import GlobalDirection, global_direction
from ..errors import StyleclipError, UsageError
from ..guidance.clip import ClipGuide
from ..io.images import image_grid, save_png, to_uint8
from ..latents import Codes
from ..nets.stylegan2 import Generator
from ..utils.files import atomic_write
from ..utils.precision import computing_in, resolve_precision

SESSION_KEY = "styleclip:session"  # PNG text chunk: the history of the picture, codes included
MAX_PROMPT_CHARS = 1000
SWEEP_COUNT = 7


@dataclass
class Limits:
    """Upload limits (a photo larger than these is refused with a message before it is decoded)."""

    max_upload_mb: float = 20.0
    max_megapixels: float = 40.0


@dataclass
class Step:
    """One picture in the history: its codes (on the CPU), what made it, and its pixels ``[H, W, 3]`` uint8."""

    codes: Codes
    label: str
    edit: dict[str, Any]
    pixels: np.ndarray


class Studio:
    """The assets every session shares, loaded once: generator, CLIP, and the global-direction machinery.

    Args:
        G: the generator (frozen).
        guide: a loaded CLIP guide on ``G``'s device.
        generator_name: how the user named the generator (reports, and the precompute command we suggest).
        stats_samples: latents for the style statistics (100,000 as StyleCLIP; fewer for quick tests).
        relevance: a relevance matrix file / URL / catalogue name; None = the published or a precomputed one.
        cache, offline: the model cache and whether downloads are allowed.
        limits: upload limits.
        precision: the networks' arithmetic for every session ('auto': :mod:`styleclip.utils.precision`).
    """

    def __init__(
        self,
        G: Generator,
        guide: ClipGuide,
        generator_name: str | None = None,
        stats_samples: int = 100_000,
        relevance: str | Path | None = None,
        cache: str | Path | None = None,
        offline: bool | None = None,
        limits: Limits | None = None,
        precision: str = "auto",
    ) -> None:
        self.G, self.guide = G, guide
        self.precision = resolve_precision(precision, G.device)
        self.generator_name = generator_name or G.meta.get("asset") or G.meta.get("source") or "generator"
        self.stats_samples, self.relevance_spec = stats_samples, relevance
        self.cache, self.offline = cache, offline
        self.limits = limits or Limits()
        self.lock = threading.RLock()  # lazy loading and the direction cache, across sessions
        self._stats = None
        self._matrix = None
        self._directions: OrderedDict[tuple, GlobalDirection] = OrderedDict()
        self._mappers: dict[str, Any] = {}

    @property
    def domain(self) -> str | None:
        return self.G.meta.get("domain")

    def stats(self):
        from ..stylespace import style_statistics

        with self.lock:
            if self._stats is None:
                self._stats = style_statistics(self.G, samples=self.stats_samples, cache=self.cache)
            return self._stats

    def matrix(self):
        """The relevance matrix; :class:`UsageError` naming the command that makes one when there is none."""
        from ..edits.relevance_files import find_relevance

        with self.lock:
            if self._matrix is None:
                self._matrix = find_relevance(
                    self.G, self.guide.name, self.relevance_spec, self.cache, self.offline, self.generator_name
                )
            return self._matrix

    def has_matrix(self) -> bool:
        try:
            self.matrix()
        except UsageError:
            return False
        return True

    def compute_matrix(self, images: int = 20, batch_size: int = 32):
        """Make the gradient-estimate relevance matrix (minutes on a GPU; progress through tqdm) and cache it."""
        from ..edits.relevance import relevance_matrix_gradient
        from ..edits.relevance_files import default_relevance_path

        stats = self.stats()
        with computing_in(self.precision):
            matrix = relevance_matrix_gradient(self.G, self.guide, stats, images=images, batch_size=batch_size)
        matrix.save(default_relevance_path(self.G, self.guide.name, "gradient", self.cache))
        with self.lock:
            self._matrix = matrix
            self._directions.clear()
        return matrix

    def direction(self, target: str, neutral: str, beta: float | None) -> GlobalDirection:
        """The direction for ``neutral -> target`` at ``beta`` (None: automatic), cached per prompt pair and β."""
        target, neutral = check_prompt(target, "target"), check_prompt(neutral, "neutral")
        key = (target, neutral, None if beta is None else round(float(beta), 4))
        with self.lock:
            hit = self._directions.get(key)
            if hit is not None:
                self._directions.move_to_end(key)
                return hit
        matrix, stats = self.matrix(), self.stats()
        with computing_in(self.precision):
            found = global_direction(self.guide, target, neutral, matrix, stats, beta=beta, domain=self.domain)
        with self.lock:
            self._directions[key] = found
            while len(self._directions) > 64:
                self._directions.popitem(last=False)
        return found

    def mapper(self, spec: str):
        """A latent mapper (catalogue name, path or URL) paired with this generator, loaded once."""
        from ..hub.mappers import load_mapper

        if not isinstance(spec, str) or not spec.strip():
            raise UsageError("name a mapper: a catalogue name (styleclip-mapper:mohawk), a file or a URL")
        spec = spec.strip()
        with self.lock:
            if spec not in self._mappers:
                self._mappers[spec] = load_mapper(
                    spec, generator=self.G, device=self.G.device, cache=self.cache, offline=self.offline
                )
            return self._mappers[spec]


def check_prompt(text: Any, what: str = "prompt") -> str:
    """A prompt as CLIP can read it, or a one-line :class:`UsageError` (empty, absurdly long, too many tokens)."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"the {what} is empty: describe what the image should show")
    text = text.strip()
    if len(text) > MAX_PROMPT_CHARS:
        raise UsageError(f"the {what} is {len(text)} characters long; CLIP reads about 77 words at most: shorten it")
    return text


def check_number(value: Any, what: str, low: float | None = None, high: float | None = None) -> float:
    """A finite number within ``[low, high]``, or a one-line :class:`UsageError` (empty boxes and NaN included)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise UsageError(f"{what} must be a finite number, got {value}")
    if (low is not None and x < low) or (high is not None and x > high):
        raise UsageError(f"{what} must be between {low:g} and {high:g}, got {x:g}")
    return x


@dataclass
class Preview:
    """The edit being looked at (not yet accepted): its codes, pixels, and settings."""

    codes: Codes
    pixels: np.ndarray
    edit: dict[str, Any]
    label: str
    video: Path | None = None


@dataclass
class OptimizeSettings:
    """The optimisation tab's settings (see :class:`styleclip.OptimizeConfig` for their meaning)."""

    prompt: str
    steps: int = 150
    l2_weight: float = 0.008
    id_weight: float | None = None
    space: str = "w+"
    layers: str = "all"
    loss: str = "global"
    neutral: str | None = None


class EditSession:
    """One user's editing session: the current source, the edit being previewed, and the accepted history.

    ``history[index]`` is the current source; :meth:`accept` appends the preview after it (dropping any redo
    steps), :meth:`undo` / :meth:`redo` / :meth:`restore` move ``index``.
    """

    def __init__(self, studio: Studio, root: str | Path | None = None) -> None:
        self.studio = studio
        self.folder = Path(tempfile.mkdtemp(prefix="session-", dir=root))
        self.history: list[Step] = []
        self.index = -1
        self.preview: Preview | None = None
        self.cancel = threading.Event()
        self._styles: tuple[int, dict[str, torch.Tensor]] | None = None  # (id of the source step, its styles)
        self._serial = 0

    # -- lifetime -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the session's folder (uploads, videos, downloads)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def new_path(self, name: str) -> Path:
        """A fresh file name in the session folder (downloads never overwrite one the browser still shows)."""
        self._serial += 1
        where = self.folder / f"{self._serial:04d}"
        where.mkdir(parents=True, exist_ok=True)
        return where / name

    # -- the current source ------------------------------------------------------------------------

    @property
    def G(self) -> Generator:
        return self.studio.G

    @property
    def source(self) -> Step:
        if self.index < 0:
            raise UsageError("choose a source first: a seed, a photo, a latent or a styleclip PNG")
        return self.history[self.index]

    def _render(self, codes: Codes) -> np.ndarray:
        with torch.no_grad(), computing_in(self.studio.precision):
            return to_uint8(codes.image(self.G))[0]

    def _start(self, codes: Codes, label: str, edit: dict[str, Any]) -> Step:
        """A new source: the history starts over from it."""
        codes = Codes(codes.ws[:1], {k: v[:1] for k, v in codes.styles.items()} if codes.styles else None)
        step = Step(codes.cpu(), label, edit, self._render(codes.to(self.G.device)))
        self.history, self.index, self.preview = [step], 0, None
        return step

    def from_seed(self, seed: Any, truncation_psi: Any = 0.7, class_idx: int | None = None) -> Step:
        """Source = the image ``seed`` draws (as NVIDIA's generate.py) at truncation ``psi``."""
        seed = int(check_number(seed, "the seed", 0, 2**32 - 1))
        psi = check_number(truncation_psi, "truncation", 0, 2)
        G = self.G
        with torch.no_grad():
            ws = G.mapping_forward(G.z_from_seed(seed), G.label(class_idx), truncation_psi=psi)
        return self._start(Codes(ws), f"seed {seed}", {"source": "seed", "seed": seed, "truncation_psi": psi})

    def from_latent_file(self, path: str | Path) -> Step:
        """Source = a latent file (``.npy``/``.npz``/``.pt`` from generate/edit/invert; the first row), or the
        codes file this UI downloads (W+ and edited styles)."""
        from ..latents import load_latent

        path = Path(path)
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if any(k.startswith("styles/") for k in data.files):
                    codes = Codes.from_arrays({k: data[k] for k in data.files}, self.G)
                    return self._start(codes, path.name, {"source": "latent", "file": path.name})
        ws = load_latent(path, self.G)
        return self._start(Codes(ws), path.name, {"source": "latent", "file": path.name, "rows": int(ws.shape[0])})

    def check_upload(self, path: str | Path) -> Path:
        """Refuse, in one line, an upload over the size or pixel limits before decoding it."""
        path = Path(path)
        limits = self.studio.limits
        size_mb = path.stat().st_size / 2**20
        if size_mb > limits.max_upload_mb:
            raise UsageError(f"the file is {size_mb:.1f} MB; the limit is {limits.max_upload_mb:g} MB")
        try:
            with Image.open(path) as im:
                w, h = im.size
        except Exception:  # PIL raises many types for files it cannot read
            raise UsageError(f"{path.name} is not an image PIL can read (PNG, JPEG, WebP, ...)") from None
        if w * h > limits.max_megapixels * 1e6:
            raise UsageError(f"the image is {w * h / 1e6:.0f} megapixels; the limit is {limits.max_megapixels:g}")
        return path

    def from_photo(self, path: str | Path, method: str = "auto", steps: int | None = None, **invert_kwargs) -> Step:
        """Source = a photo, aligned and inverted (:func:`styleclip.invert`; progress through tqdm)."""
        from ..inversion.invert import invert

        path = self.check_upload(path)
        inv = invert(path, self.G, method=method, steps=steps, precision=self.studio.precision, **invert_kwargs)
        if inv.generator is not self.G:
            raise UsageError("pivotal tuning changes the generator; the UI edits with the shared one, so PTI is off")
        metrics = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in inv.metrics.items()}
        edit = {"source": "photo", "file": path.name, "method": inv.method, "metrics": metrics}
        return self._start(Codes(inv.ws), f"photo ({inv.method})", edit)

    def from_png(self, path: str | Path) -> dict[str, Any]:
        """Restore from a styleclip PNG: this UI's (exact codes and history), ``styleclip edit``'s (source and
        optimisation settings) or ``directions apply``'s (direction settings). Returns the settings to show."""
        from ..cli.edit import REPORT_KEY

        path = Path(path)
        try:
            with Image.open(path) as im:
                text = dict(getattr(im, "text", {}) or {})
        except Exception:
            raise UsageError(f"{path.name} is not a PNG written by styleclip") from None
        if SESSION_KEY in text:
            return self._restore_session(_json(text[SESSION_KEY], path))
        if REPORT_KEY in text:
            report = _json(text[REPORT_KEY], path)
            cfg = report.get("config", {})
            if cfg.get("seeds") and not cfg.get("latent") and cfg.get("mode", "edit") == "edit":
                self.from_seed(cfg["seeds"][0], cfg.get("truncation_psi", 0.7), cfg.get("class_idx"))
            elif cfg.get("latent") and Path(cfg["latent"]).is_file():
                self.from_latent_file(cfg["latent"])
            else:
                raise UsageError("this PNG's source (a free generation or a missing latent file) cannot be restored")
            return {
                "method": "optimize",
                **{k: cfg.get(k) for k in OPTIMIZE_KEYS},
                "prompt": (cfg.get("prompts") or [""])[0],
            }
        if "styleclip:target" in text:
            settings = {
                "method": "directions",
                "target": text["styleclip:target"],
                "neutral": text.get("styleclip:neutral"),
            }
            settings.update(alpha=float(text.get("styleclip:alpha", 0)), beta=float(text.get("styleclip:beta", 0.15)))
            if "styleclip:seed" in text:
                self.from_seed(text["styleclip:seed"], text.get("styleclip:truncation_psi", 0.7))
            return settings
        raise UsageError(f"{path.name} carries no styleclip metadata (drop an after.png or a PNG downloaded here)")

    def _restore_session(self, data: dict) -> dict[str, Any]:
        try:
            raw = np.load(io.BytesIO(base64.b64decode(data["codes"])), allow_pickle=False)
            steps = data["steps"]
            codes = [Codes.from_arrays({k[len(f"{i}/") :]: raw[k] for k in raw.files if k.startswith(f"{i}/")}, self.G)
                     for i in range(len(steps))]  # fmt: skip
        except StyleclipError as exc:
            raise UsageError(f"this PNG was made with another generator: {exc}") from None
        except Exception:
            raise UsageError("this PNG's styleclip history is damaged") from None
        self.history = [
            Step(c.cpu(), s["label"], s["edit"], self._render(c)) for c, s in zip(codes, steps, strict=True)
        ]
        self.index, self.preview = len(self.history) - 1, None
        last = self.history[-1].edit
        return dict(last) if last.get("method") else {}

    # -- edits -----------------------------------------------------------------------------------------

    def _source_styles(self) -> dict[str, torch.Tensor]:
        """The current source's styles, computed once per source (a slider move then costs one synthesis)."""
        step = self.source
        if self._styles is None or self._styles[0] != id(step):
            with torch.no_grad():
                self._styles = (id(step), step.codes.to(self.G.device).style_codes(self.G))
        return self._styles[1]

    def apply(self, edit: Edit, label: str) -> Preview:
        """Preview ``edit`` applied to the current source (one synthesis pass for a cached direction)."""
        codes = self.source.codes.to(self.G.device)
        if edit.space == "s":  # the source's styles, computed once per source
            codes = Codes(codes.ws, self._source_styles())
        with torch.no_grad(), computing_in(self.studio.precision):
            edited = edit.apply(self.G, codes)
            pixels = to_uint8(edited.image(self.G))[0]
        self.preview = Preview(edited, pixels, edit.describe(), label)
        return self.preview

    def direction(self, target: str, neutral: str, beta: float | None) -> GlobalDirection:
        if beta is not None:
            beta = check_number(beta, "beta", 0.0, 0.99)
        return self.studio.direction(target, neutral, beta)

    def preview_direction(self, target: str, neutral: str, alpha: Any, beta: float | None) -> Preview:
        """``neutral -> target`` at strength ``alpha`` (−10…10) and threshold ``beta`` (None = automatic)."""
        alpha = check_number(alpha, "alpha", -100, 100)
        found = self.direction(target, neutral, beta)
        return self.apply(found.at(alpha), f"{found.target} (α {alpha:g}, β {found.beta:g})")

    def preview_mapper(self, spec: str, strength: Any) -> Preview:
        """A latent mapper at ``strength`` (0.1 as StyleCLIP; ~1.5 for NVIDIA's ADA generators)."""
        from ..edits.mapper import MapperEdit

        strength = check_number(strength, "strength", -10, 10)
        mapper = self.studio.mapper(spec)
        label = f"mapper {mapper.meta.get('prompt') or spec} (strength {strength:g})"
        return self.apply(MapperEdit(mapper, strength), label)

    def sweep(self, target: str, neutral: str, alpha: Any, beta: float | None, count: int = SWEEP_COUNT) -> Image.Image:
        """A strip of the current source edited at ``count`` strengths from −a to a (a = max(5, |α|))."""
        limit = max(5.0, abs(check_number(alpha, "alpha", -100, 100)))
        alphas = [round(float(a), 2) for a in np.linspace(-limit, limit, count)]
        found = self.direction(target, neutral, beta)
        styles = self._source_styles()
        n = len(alphas)
        batch = {k: v.expand(n, -1) for k, v in styles.items()}
        with torch.no_grad(), computing_in(self.studio.precision):
            edited = found.apply(batch, torch.tensor(alphas))
            frames = [Image.fromarray(a) for a in to_uint8(self.G.synthesis_from_styles(edited))]
        return image_grid([frames], [f"α {a:g}" for a in alphas])

    def optimize(
        self,
        settings: OptimizeSettings,
        on_frame: Callable[[int, np.ndarray], None] | None = None,
        frame_every: int = 1,
        video: bool = True,
        progress: bool = True,
    ) -> Preview:
        """Latent optimisation from the current source; ``on_frame(step, [H, W, 3] uint8)`` sees its progress.

        :meth:`request_cancel` (from another thread) stops it and keeps the best result so far. A source that
        carries a StyleSpace edit is optimised in S.
        """
        from ..edits.optimize import optimize
        from ..io.video import VideoWriter

        prompt = check_prompt(settings.prompt)
        steps = int(check_number(settings.steps, "steps", 1, 5000))
        l2 = check_number(settings.l2_weight, "λ_L2", 0, 10)
        id_weight = None if settings.id_weight is None else check_number(settings.id_weight, "λ_ID", 0, 10)
        neutral = check_prompt(settings.neutral, "neutral") if settings.loss == "directional" else None
        source = self.source
        space = settings.space
        if source.codes.in_stylespace and space != "s":
            raise UsageError("this image carries a StyleSpace edit (a global direction): optimise it in S")
        layers = None if settings.layers in (None, "", "all") else settings.layers
        writer = VideoWriter(self.new_path("trajectory.mp4"), fps=15) if video else None

        def frame(i: int, step: int, pixels: np.ndarray) -> None:
            if writer is not None:
                writer.append(pixels)
            if on_frame is not None and (step % frame_every == 0 or step == steps):
                on_frame(step, pixels)

        def check_cancel(step: int, info: dict) -> None:
            if self.cancel.is_set():
                raise KeyboardInterrupt

        self.cancel.clear()
        codes = source.codes.to(self.G.device)
        try:
            [result] = optimize(
                self.G,
                prompt,
                self.studio.guide,
                source=codes.ws,
                source_styles=codes.styles,
                steps=steps,
                l2_weight=l2,
                id_weight=id_weight,
                space=space,
                layers=layers,
                loss=settings.loss,
                neutral=neutral,
                frame_every=1,
                on_frame=frame,
                callback=check_cancel,
                progress=progress,
                precision=self.studio.precision,
            )
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        path = writer.close() if writer is not None else None
        if result.stopped == "nan":
            raise UsageError(result.message)
        styles = result.styles if space == "s" else None
        edited = Codes(
            result.latent.to(self.G.device), {k: v.to(self.G.device) for k, v in styles.items()} if styles else None
        )
        edit = {
            "method": "optimize",
            **{k: v for k, v in dataclasses.asdict(settings).items() if v is not None},
            "prompt": prompt,
            "steps_done": result.steps_done,
            "stopped": result.stopped,
            "clip_before": round(result.clip_before, 4),
            "clip_after": round(result.clip_after, 4),
        }
        label = f"{prompt} ({result.steps_done} steps{', cancelled' if result.stopped != 'completed' else ''})"
        self.preview = Preview(edited, to_uint8(result.image)[0], edit, label, path)
        return self.preview

    def request_cancel(self) -> None:
        self.cancel.set()

    # -- history ------------------------------------------------------------------------------------------

    def accept(self) -> Step:
        """Make the previewed edit the new source (edits stack); later redo steps are dropped."""
        if self.preview is None:
            raise UsageError("nothing to accept yet: make an edit first")
        p = self.preview
        step = Step(p.codes.cpu(), p.label, p.edit, p.pixels)
        self.history = [*self.history[: self.index + 1], step]
        self.index, self.preview = len(self.history) - 1, None
        return step

    def restore(self, index: int) -> Step:
        if not 0 <= index < len(self.history):
            raise UsageError(f"no step {index} in the history (0-{len(self.history) - 1})")
        self.index, self.preview = index, None
        return self.history[index]

    def undo(self) -> Step:
        if self.index <= 0:
            raise UsageError("nothing to undo")
        return self.restore(self.index - 1)

    def redo(self) -> Step:
        if self.index + 1 >= len(self.history):
            raise UsageError("nothing to redo")
        return self.restore(self.index + 1)

    @property
    def current(self) -> Step | Preview:
        """The picture shown as the result: the preview when there is one, else the current source."""
        return self.preview if self.preview is not None else self.source

    # -- downloads ----------------------------------------------------------------------------------------

    def _chain(self) -> list[Step]:
        """The steps that lead to the current picture (source first, the preview last when there is one)."""
        chain = self.history[: self.index + 1]
        if self.preview is not None:
            p = self.preview
            chain = [*chain, Step(p.codes.cpu(), p.label, p.edit, p.pixels)]
        return chain

    def report(self) -> dict[str, Any]:
        G = self.G
        return {
            "generator": {
                "name": self.studio.generator_name,
                "asset": G.meta.get("asset"),
                "resolution": G.img_resolution,
            },
            "clip": self.studio.guide.name,
            "precision": self.studio.precision,
            "steps": [{"label": s.label, "edit": s.edit} for s in self._chain()],
        }

    def png_text(self) -> dict[str, str]:
        """PNG metadata: the report, and every step's codes so that dropping the PNG back restores the history."""
        chain = self._chain()
        arrays = {f"{i}/{k}": v for i, step in enumerate(chain) for k, v in step.codes.arrays().items()}
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        data = {**self.report(), "codes": base64.b64encode(buf.getvalue()).decode("ascii")}
        return {SESSION_KEY: json.dumps(data), "styleclip:label": chain[-1].label}

    def export_png(self) -> Path:
        return save_png(Image.fromarray(self.current.pixels), self.new_path("styleclip.png"), text=self.png_text())

    def export_codes(self) -> Path:
        """``latent.npy`` (W+ ``[1, num_ws, w_dim]``), or ``codes.npz`` when the picture carries edited styles."""
        from ..utils.files import atomic_save_arrays

        codes = self.current.codes.cpu()
        if codes.styles is None:
            return atomic_save_arrays(self.new_path("latent.npy"), codes.ws.numpy())
        return atomic_save_arrays(self.new_path("codes.npz"), codes.arrays())

    def export_report(self) -> Path:
        text = json.dumps(self.report(), indent=1, default=str)
        return atomic_write(self.new_path("report.json"), lambda tmp: tmp.write_text(text))

    def export_history(self) -> Path:
        """A zip of every step: ``NN-label.png`` (with metadata), its codes, and ``history.json``."""
        import re

        def write(tmp: Path) -> None:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
                for i, step in enumerate(self._chain()):
                    slug = re.sub(r"[^a-z0-9]+", "-", step.label.lower()).strip("-")[:40] or "step"
                    buf = io.BytesIO()
                    Image.fromarray(step.pixels).save(buf, format="PNG")
                    z.writestr(f"{i:02d}-{slug}.png", buf.getvalue())
                    arrays = io.BytesIO()
                    np.savez(arrays, **step.codes.arrays())
                    z.writestr(f"{i:02d}-{slug}.npz", arrays.getvalue())
                z.writestr("history.json", json.dumps(self.report(), indent=1, default=str))

        return atomic_write(self.new_path("history.zip"), write)

    def downloads(self) -> list[Path]:
        """Every download at once: PNG, codes, report, the trajectory video (if any) and the history zip."""
        files = [self.export_png(), self.export_codes(), self.export_report(), self.export_history()]
        if self.preview is not None and self.preview.video is not None:
            files.insert(2, self.preview.video)
        return files


def _json(text: str, path: Path) -> dict:
    """A PNG's styleclip metadata, or a one-line error when it is damaged."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise UsageError(f"{path.name}: its styleclip metadata is damaged")
    return data


OPTIMIZE_KEYS = ("steps", "l2_weight", "id_weight", "space", "layers", "loss", "neutral")


__all__ = [
    "SESSION_KEY",
    "EditSession",
    "Limits",
    "OptimizeSettings",
    "Preview",
    "Step",
    "Studio",
    "check_number",
    "check_prompt",
]
