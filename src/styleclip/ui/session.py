"""What the web UI does, without the web: sources, live global-direction previews, latent optimisation with
streamed frames, accepted steps with undo/redo, and downloads. The Gradio page (:mod:`styleclip.ui.app`) is a thin
layer over :class:`EditSession`; tests and other front ends drive it directly.

One :class:`Studio` holds what all browser sessions share (generator, CLIP, style statistics, relevance matrix,
directions cached per prompt); one :class:`EditSession` per browser session holds its history and its own
temporary folder.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
import threading
import weakref
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..adapted import draw_adapted
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
VIDEO_PREVIEW_FRAMES = 3  # evenly spaced frames the Video tab previews an edit on
VIDEO_PREVIEW_PX = 256  # the side of each crop in the preview grid (1024-px crops would make a 6-megapixel grid)
VIDEO_FRAMINGS = ("auto", "face", "center")
VIDEO_STAGES = ("detect", "aligned", "latents", "offsets", "track.json")  # edit_video's work that no edit changes
# Steps a session keeps and a dropped PNG may restore: each one is a drawn picture held in memory.
MAX_HISTORY = 100
MAX_LABEL_CHARS = 2000
MAX_MAPPERS = 8  # mappers kept loaded (and, for URLs, kept on disk) at once; the least recently used goes first
# Adapted generators a session keeps loaded: each is a whole generator on the device (about 120 MB at 1024 px).
MAX_STYLES = 3
STYLE_PREFIX = "nada:"  # the catalogue's published adapted generators
ADAPT_LAYERS = ("auto", "nada", "all")
MAX_ADAPT_STEPS = 5000
SAMPLE_PREVIEW_PX = 1024  # the taller side of the sample grid sent to the page while an adaptation runs
PATHS_OFF = "the server's owner may allow a folder with styleclip ui --allow-paths DIR"
PTI_OFF = (
    "pivotal tuning (PTI) is not offered in the page: it tunes a whole generator per photo for minutes; pick "
    "hyperstyle (per-photo weights in seconds) or run styleclip invert --pti"
)
NO_OFFSETS = (
    "restored without the photo's HyperStyle weight offsets (a PNG does not carry them): the steps are drawn by the "
    "shared generator, less like the photo; invert the photo again to edit it faithfully"
)


@dataclass
class Limits:
    """Upload limits (a photo larger than these is refused with a message before it is decoded; a clip with more
    frames than ``max_video_frames`` before any frame is aligned: every frame is inverted and drawn)."""

    max_upload_mb: float = 20.0
    max_megapixels: float = 40.0
    max_video_frames: int = 300


@dataclass(eq=False)
class PhotoWeights:
    """A photo's own weights: the shared generator with HyperStyle's per-photo offsets applied (``W * (1 + Δ)``),
    which draws that photo's codes and every edit of them. ``generator`` is a whole copy (about 120 MB at 1024 px):
    every step derived from the photo shares this one object, and it goes with them."""

    generator: Generator
    offsets: dict[str, torch.Tensor]  # {layer: [1, out, in, k, k]}
    method: str
    saved: Path | None = None  # offsets.safetensors in the session's folder, once a download asked for it


@dataclass
class Step:
    """One picture in the history: its codes (on the CPU), what made it, its pixels ``[H, W, 3]`` uint8, and the
    photo weights that draw it (None: the shared generator)."""

    codes: Codes
    label: str
    edit: dict[str, Any]
    pixels: np.ndarray
    weights: PhotoWeights | None = None


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
        allow_paths: server folders whose files page users may name (a mapper box, a latent); nothing else on
            the server is opened for them but their own uploads and their session's folder.
        allow_urls: whether page users may name http(s) URLs (mappers) for the server to download.
        upload_dirs: where the web framework stores uploads (files there are the page users' own).
        max_mappers: mappers kept loaded at once (least recently used dropped, with their downloads).
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
        allow_paths: Iterable[str | Path] = (),
        allow_urls: bool = False,
        upload_dirs: Iterable[str | Path] = (),
        max_mappers: int = MAX_MAPPERS,
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
        self.allow_paths = [allowed_folder(p) for p in allow_paths]
        self.upload_dirs = [Path(p).resolve() for p in upload_dirs]
        self.allow_urls = bool(allow_urls)
        self.max_mappers = max(1, int(max_mappers))
        self._mappers: OrderedDict[str, Any] = OrderedDict()
        self._downloaded: dict[str, Path] = {}  # mapper key -> the folder its URL was downloaded into here
        self._hyperstyle = None  # the catalogue's HyperStyle model for G (2.3 GB for FFHQ): loaded once, shared
        self._encoders: dict[str, Any] = {}  # the catalogue's e4e / ReStyle encoders for G (videos), loaded once

    def hyperstyle(self):
        """The HyperStyle model (with its W encoder) the catalogue pairs with the generator, loaded on first use
        and shared by every session: reloading gigabytes per photo would cost more than the inversion."""
        from ..inversion.hyperstyle import load_hyperstyle
        from ..inversion.invert import inversions_for

        with self.lock:
            if self._hyperstyle is None:
                name = inversions_for(self.G)["hyperstyle"]
                self._hyperstyle = load_hyperstyle(name, device=self.G.device, cache=self.cache, offline=self.offline)
            return self._hyperstyle

    def video_inversion(self, method: str = "auto", encoder: Any = None) -> VideoInversion:
        """The encoder that inverts a video's frames: ``method`` ('auto', 'hyperstyle', 'restyle', 'e4e') resolved
        against the catalogue's inversions for the generator, loaded once and shared by every session.
        ``encoder``: a loaded e4e/ReStyle :class:`~styleclip.inversion.encoders.Encoder` or its path (library
        callers and tests; the page never passes one). Projection is not offered: hours for a clip."""
        from ..inversion.encoders import Encoder, load_encoder
        from ..inversion.invert import choose_method, inversions_for
        from ..video.pipeline import INVERSIONS

        if method not in INVERSIONS:
            raise UsageError(f"video frames are inverted with {', '.join(INVERSIONS)}, got {str(method)[:40]!r}")
        known = inversions_for(self.G)
        why = "as picked"
        if method == "auto":
            method, why = choose_method(self.G, encoder)
            if method == "project":
                raise UsageError("the catalogue pairs no encoder with this server's generator, and projecting every "
                                 "frame would take hours: edit videos with styleclip video --encoder")  # fmt: skip
        if method == "hyperstyle":
            if "hyperstyle" not in known:
                raise UsageError("the catalogue knows no HyperStyle model for this server's generator: pick auto or "
                                 "another inversion")  # fmt: skip
            model = self.hyperstyle()
            return VideoInversion("hyperstyle", why, model.w_encoder, model)
        if not isinstance(encoder, Encoder):
            name = encoder if encoder is not None else known.get(method)
            if name is None:
                raise UsageError(f"the catalogue knows no {method} encoder for this server's generator: pick auto or "
                                 "another inversion")  # fmt: skip
            with self.lock:
                key = str(name)
                if key not in self._encoders:
                    self._encoders[key] = load_encoder(name, device=self.G.device, cache=self.cache,
                                                       offline=self.offline)  # fmt: skip
                encoder = self._encoders[key]
        return VideoInversion(encoder.kind if encoder.kind in ("e4e", "restyle") else "e4e", why, encoder, None)

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

    def style_names(self) -> list[str]:
        """The catalogue's published adapted generators (``nada:*``), as the Style tab lists them."""
        from ..hub.registry import all_assets

        return sorted(a.name for a in all_assets() if a.kind == "generator" and a.name.startswith(STYLE_PREFIX))

    def local_file(self, path: Any, what: str, own: Path | None = None) -> Path:
        """``path`` resolved (symlinks followed) when it lies in a folder page users may open: the uploads
        folder, ``own`` (a session's folder) or an ``allow_paths`` folder; else one :class:`UsageError` that
        reads the same whether or not the file exists, so the page learns nothing about the server's files."""
        text = str(path) if isinstance(path, str | os.PathLike) else ""
        if not text.strip():
            raise UsageError(f"upload the {what} first")
        roots = [*self.upload_dirs, *self.allow_paths, *([own.resolve()] if own is not None else [])]
        try:
            resolved = Path(text).resolve() if "\0" not in text else None
        except (OSError, RuntimeError, ValueError):
            resolved = None
        if resolved is None or not any(resolved.is_relative_to(root) for root in roots):
            raise UsageError(f"the page opens only files uploaded to it: upload the {what} ({PATHS_OFF})")
        if not resolved.is_file():
            raise UsageError(f"the {what} is no longer on the server: upload it again")
        return resolved

    def mapper(self, spec: str):
        """A latent mapper paired with this generator, loaded once and kept among the ``max_mappers`` most
        recently used: a catalogue name, an http(s) URL when ``allow_urls``, a file in an ``allow_paths`` folder
        or an upload."""
        from ..hub.mappers import load_mapper

        key, source = self._mapper_source(spec)
        with self.lock:
            hit = self._mappers.get(key)
            if hit is not None:
                self._mappers.move_to_end(key)
                return hit
            shown = key.split(":", 1)[1]  # the mapper as the page user named it
            path = None
            try:
                path = self._mapper_file(key, source)
                mapper = load_mapper(path, generator=self.G, device=self.G.device, cache=self.cache,
                                     offline=self.offline)  # fmt: skip
            except BaseException as exc:
                self._forget_download(key)  # a URL that was no mapper leaves nothing behind
                if isinstance(exc, StyleclipError):  # said without the server's own paths
                    raise UsageError(self._redact(str(exc), path, shown)) from None
                raise
            # reports and PNGs name the mapper as the page user did, never the server's file
            mapper.meta["source"] = mapper.meta["name"] = shown
            self._mappers[key] = mapper
            while len(self._mappers) > self.max_mappers:
                old, _ = self._mappers.popitem(last=False)
                self._forget_download(old)
            return mapper

    def _mapper_source(self, spec: Any) -> tuple[str, Any]:
        """What the mapper box names: ``(cache key, catalogue asset | URL | local path)``; refuses the rest."""
        from ..hub.registry import find_asset, get_asset

        if not isinstance(spec, str) or not spec.strip():
            raise UsageError("name a mapper: a catalogue name such as styleclip-mapper:mohawk")
        spec = spec.strip()
        if len(spec) > 2000 or "\0" in spec:
            raise UsageError("the mapper box takes a catalogue name such as styleclip-mapper:mohawk")
        asset = find_asset(spec) or find_asset(f"styleclip-mapper:{spec}")
        if asset is not None and asset.kind == "mapper":
            return f"asset:{asset.name}", asset
        if "://" in spec:
            if not spec.lower().startswith(("http://", "https://")):
                raise UsageError("the mapper box takes a catalogue name or an http(s) URL, no other kind of URL")
            if not self.allow_urls:
                raise UsageError(
                    "this server downloads no URLs typed in the page: name a catalogue mapper such as "
                    "styleclip-mapper:mohawk (the server's owner may allow URLs with styleclip ui --allow-urls)"
                )
            return f"url:{spec}", spec
        if asset is None and ("/" in spec or "\\" in spec or "." in spec or spec.startswith("~")):
            try:
                return f"path:{spec}", self.local_file(spec, "mapper")
            except UsageError:
                raise UsageError(
                    f"the page opens no server paths: name a catalogue mapper such as styleclip-mapper:mohawk "
                    f"({PATHS_OFF})"
                ) from None
        get_asset(spec, kind="mapper")  # an unknown name: the error suggests close ones
        raise UsageError(f"{spec!r} is not a mapper")  # unreachable: get_asset refuses every other name

    def _mapper_file(self, key: str, source: Any) -> Path:
        """The local file of a mapper source, downloading catalogue entries and (allowed) URLs into the cache."""
        from ..hub.download import cache_dir
        from ..hub.registry import fetch, fetch_url

        if isinstance(source, Path):
            return source
        if not isinstance(source, str):
            return fetch(source, cache=self.cache, offline=self.offline)
        # the folder fetch_url keeps this URL in; removed with the mapper when nothing else had put it there
        folder = cache_dir(self.cache) / "urls" / hashlib.sha256(source.encode()).hexdigest()[:16]
        existed = folder.exists()
        try:
            path = fetch_url(source, cache=self.cache, offline=self.offline)
        finally:
            if not existed and folder.exists():
                self._downloaded[key] = folder
        if path.parent != folder:  # a layout this code does not know: delete nothing
            self._downloaded.pop(key, None)
        return path

    def _redact(self, message: str, path: Path | None, shown: str) -> str:
        from ..hub.download import cache_dir

        if path is not None:
            message = message.replace(str(path), shown)
        return message.replace(str(cache_dir(self.cache)), "the model cache")

    def _forget_download(self, key: str) -> None:
        folder = self._downloaded.pop(key, None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def allowed_folder(path: str | Path) -> Path:
    """An ``--allow-paths`` folder, resolved; a one-line :class:`UsageError` when it is not a folder."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_dir():
        raise UsageError(f"--allow-paths {path}: not a folder; name a folder that exists")
    return resolved


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
    weights: PhotoWeights | None = None  # the source's: an edit is drawn by the generator of its source


@dataclass
class StyleView:
    """The current picture drawn by the session's generator and by an adapted one (``[H, W, 3]`` uint8 each)."""

    name: str  # the style as the page named it
    base: np.ndarray
    adapted: np.ndarray
    info: str


@dataclass
class StyleRun:
    """An adaptation started from the page: the picker's name for it and its run folder's files."""

    name: str
    path: Path  # generator.safetensors
    steps_done: int
    stopped: str  # 'done' or 'interrupted'
    samples: Path | None  # the newest sample grid (rows: base | adapted)


@dataclass
class VideoInversion:
    """How a video's frames are inverted: the method ('hyperstyle', 'restyle', 'e4e'), why it was chosen, the loaded
    encoder (HyperStyle's W encoder for 'hyperstyle') and the HyperStyle model (None for the others)."""

    method: str
    why: str
    encoder: Any
    hyperstyle: Any = None

    def key(self) -> str:
        return f"{self.method}:{id(self.encoder)}:{id(self.hyperstyle)}"


@dataclass
class VideoSamples:
    """A few evenly spaced frames of the clip, aligned and inverted once, so that previewing an edit on them costs
    one synthesis per frame: ``crops`` ``[R, R, 3]`` uint8 (None: no face in that frame, ``frames`` shows it),
    ``ws`` W+ ``[k, num_ws, w_dim]`` of the frames with a crop, in order, and their HyperStyle offsets (or None)."""

    indices: list[int]
    frames: list[np.ndarray]
    crops: list[np.ndarray | None]
    ws: torch.Tensor | None
    offsets: dict[str, torch.Tensor] | None


@dataclass
class VideoClip:
    """The clip uploaded to the Video tab (the upload itself, never copied) and what was probed of it."""

    path: Path
    info: Any  # styleclip.video.frames.VideoInfo
    samples: dict[tuple, VideoSamples] = dataclasses.field(default_factory=dict)  # (inversion, framing) -> samples
    render: tuple[str, Path] | None = None  # (the inversion's key, the folder) of the last render started

    def describe(self) -> str:
        i = self.info
        sound = "with sound" if i.audio else "no sound"
        return f"{self.path.name}: {i.frames} frames, {i.fps:g} fps, {i.size[0]}x{i.size[1]} px, {i.duration:.1f} s, {sound}"


@dataclass
class VideoRun:
    """A render of the Video tab: its three outputs (None until it completes), whether it was cancelled, the frames
    left unedited (no face) and the report's measures."""

    folder: Path
    stopped: bool
    edited: Path | None = None
    comparison: Path | None = None
    report: Path | None = None
    frames: int = 0
    unedited: list[int] = dataclasses.field(default_factory=list)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        return [p for p in (self.edited, self.comparison, self.report) if p is not None]


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
        # adapted generators: loaded ones (cache key -> generator, least recently used first), the session's own
        # (picker name -> generator file: trained here or uploaded) and the style last drawn (the picture follows)
        self._adapted: OrderedDict[str, Generator] = OrderedDict()
        self.own_styles: dict[str, Path] = {}
        self.style: str | None = None
        self._style_lock = threading.Lock()  # with --concurrency above 1, one page's events may overlap
        # the adapted generator last drawn, with the current photo's offsets applied from 128 px up: (that adapted
        # generator, the photo weights, the copy); one at a time, made once per photo and style, not per picture
        self._styled: tuple[weakref.ref, PhotoWeights, Generator] | None = None
        self.notice = ""  # one line the page shows under the history (what a restored PNG could not bring back)
        self.video: VideoClip | None = None  # the Video tab's clip

    # -- lifetime -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the session's folder (uploads, videos, downloads, adaptations) and its loaded generators."""
        self._adapted.clear()
        self._styled = None
        self.history, self.index, self.preview = [], -1, None  # the photo weights go with the steps
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
        """The shared generator: seeds are mapped, codes checked, relevance and statistics computed with it."""
        return self.studio.G

    @property
    def weights(self) -> PhotoWeights | None:
        """The photo weights that draw the current source and its edits (None: the shared generator)."""
        return self.history[self.index].weights if self.index >= 0 else None

    @property
    def drawer(self) -> Generator:
        """The generator that draws the current source and its edits: its photo's own weights (a photo inverted
        with HyperStyle) or the shared generator."""
        weights = self.weights
        return weights.generator if weights is not None else self.G

    @property
    def source(self) -> Step:
        if self.index < 0:
            raise UsageError("choose a source first: a seed, a photo, a latent or a styleclip PNG")
        return self.history[self.index]

    def _render(self, codes: Codes, G: Generator | None = None) -> np.ndarray:
        with torch.no_grad(), computing_in(self.studio.precision):
            return to_uint8(codes.image(G if G is not None else self.G))[0]

    def _start(self, codes: Codes, label: str, edit: dict[str, Any], weights: PhotoWeights | None = None) -> Step:
        """A new source: the history starts over from it (and the previous photo's weights are let go)."""
        codes = Codes(codes.ws[:1], {k: v[:1] for k, v in codes.styles.items()} if codes.styles else None)
        draw = weights.generator if weights is not None else self.G
        step = Step(codes.cpu(), label, edit, self._render(codes.to(self.G.device), draw), weights)
        self._new_history([step])
        return step

    def _new_history(self, steps: list[Step]) -> None:
        self.history, self.index, self.preview = steps, len(steps) - 1, None
        self._styles, self._styled, self.notice = None, None, ""

    def from_seed(self, seed: Any, truncation_psi: Any = 0.7, class_idx: int | None = None) -> Step:
        """Source = the image ``seed`` draws (as NVIDIA's generate.py) at truncation ``psi``."""
        seed = int(check_number(seed, "the seed", 0, 2**32 - 1))
        psi = check_number(truncation_psi, "truncation", 0, 2)
        G = self.G
        with torch.no_grad():
            ws = G.mapping_forward(G.z_from_seed(seed), G.label(class_idx), truncation_psi=psi)
        return self._start(Codes(ws), f"seed {seed}", {"source": "seed", "seed": seed, "truncation_psi": psi})

    def from_latent_file(self, path: str | Path) -> Step:
        """Source = an uploaded latent file (``.npy``/``.npz``/``.pt`` from generate/edit/invert; the first row),
        or the codes file this UI downloads (W+ and edited styles)."""
        from ..latents import load_latent

        path = self._check_size(self.studio.local_file(path, "latent", self.folder))
        name = path.name
        if path.suffix == ".npz" and _has_styles(path):
            try:
                [arrays] = read_codes(path, self.G, [""])
            except StyleclipError as exc:
                raise UsageError(f"{name}: {exc}") from None
            codes = Codes.from_arrays(arrays, self.G)
            return self._start(codes, name, {"source": "latent", "file": name})
        ws = load_latent(path, self.G)
        return self._start(Codes(ws), name, {"source": "latent", "file": name, "rows": int(ws.shape[0])})

    def _check_size(self, path: Path) -> Path:
        limits = self.studio.limits
        size_mb = path.stat().st_size / 2**20
        if size_mb > limits.max_upload_mb:
            raise UsageError(f"the file is {size_mb:.3g} MB; the limit is {limits.max_upload_mb:g} MB")
        return path

    def check_upload(self, path: str | Path) -> Path:
        """The uploaded image's path, or a one-line refusal: not an upload, over the size or the pixel limit
        (checked from its header, before anything is decoded), or not an image."""
        path = self._check_size(self.studio.local_file(path, "image", self.folder))
        limits = self.studio.limits
        try:
            with Image.open(path) as im:
                w, h = im.size
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            # PIL's own guard, far above ours: the pixel count is in its message
            found = re.search(r"\((\d+) pixels\)", str(exc))
            size = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "too many megapixels"
            raise UsageError(f"the image is {size}; the limit is {limits.max_megapixels:g}") from None
        except Exception:  # PIL raises many types for files it cannot read
            raise UsageError(f"{path.name} is not an image PIL can read (PNG, JPEG, WebP, ...)") from None
        if w * h > limits.max_megapixels * 1e6:
            raise UsageError(f"the image is {w * h / 1e6:.0f} megapixels; the limit is {limits.max_megapixels:g}")
        return path

    def from_photo(self, path: str | Path, method: str = "auto", steps: int | None = None, **invert_kwargs) -> Step:
        """Source = a photo, aligned and inverted (:func:`styleclip.invert`; progress through tqdm) with ``method``
        (:data:`styleclip.inversion.invert.METHODS`; the models are the catalogue's for the shared generator unless
        ``invert_kwargs`` name others). A photo inverted with HyperStyle keeps its offset generator
        (:class:`PhotoWeights`) for itself and every step derived from it; pivotal tuning is refused (:data:`PTI_OFF`).
        """
        from ..inversion.invert import METHODS, inversions_for
        from ..sources import from_photo

        if method not in METHODS:
            raise UsageError(f"the inversion must be one of {', '.join(METHODS)}, got {str(method)[:40]!r}")
        if invert_kwargs.get("pti"):
            raise UsageError(PTI_OFF)
        paired = invert_kwargs.get("hyperstyle") is not None or "hyperstyle" in inversions_for(self.G)
        if method == "hyperstyle" and not paired:
            raise UsageError("the catalogue knows no HyperStyle model for this server's generator: pick auto or "
                             "another inversion")  # fmt: skip
        path = self.check_upload(path)
        if method in ("auto", "hyperstyle") and "hyperstyle" not in invert_kwargs and paired:
            from ..inversion.invert import choose_method

            if method == "hyperstyle" or choose_method(self.G, invert_kwargs.get("encoder"))[0] == "hyperstyle":
                invert_kwargs["hyperstyle"] = self.studio.hyperstyle()
        photo = from_photo(self.G, path, method=method, steps=steps, precision=self.studio.precision, **invert_kwargs)
        inv = photo.inversion
        weights = None
        if inv.offsets is not None:
            weights = PhotoWeights(photo.generator, inv.offsets, inv.method)
        elif photo.generator is not self.G:
            raise UsageError(PTI_OFF)
        metrics = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in inv.metrics.items()}
        edit = {"source": "photo", "file": path.name, "method": inv.method, "why": inv.why, "metrics": metrics,
                "seconds": round(inv.seconds, 2)}  # fmt: skip
        if weights is not None:
            edit["offsets"] = len(weights.offsets)  # layers drawn with W * (1 + Δ); a PNG does not carry them
        return self._start(Codes(inv.ws), f"photo ({inv.method})", edit, weights)

    def from_png(self, path: str | Path) -> dict[str, Any]:
        """Restore from an uploaded styleclip PNG: this UI's (exact codes and history), ``styleclip edit``'s
        (source and optimisation settings) or ``directions apply``'s (direction settings). Returns the settings
        to show. Nothing the PNG names (a latent file, a URL) is ever opened."""
        from ..reports import REPORT_KEY

        path = self.check_upload(path)
        keys = (SESSION_KEY, REPORT_KEY, "styleclip:target")
        try:
            with Image.open(path) as im:
                text = dict(im.info)  # the text chunks before the pixels: what styleclip writes
                if not any(k in text for k in keys):
                    text = dict(getattr(im, "text", {}) or {})  # chunks after the pixels (pixels decoded)
        except Exception:
            raise UsageError(f"{path.name} is not a PNG written by styleclip") from None
        text = {k: v for k, v in text.items() if isinstance(v, str)}
        if SESSION_KEY in text:
            return self._restore_session(_json(text[SESSION_KEY], path))
        if REPORT_KEY in text:
            report = _json(text[REPORT_KEY], path)
            cfg = report.get("config")
            if not isinstance(cfg, dict) and "mapper" in report:  # mapper apply's PNGs record no source to restore
                raise UsageError(f"{path.name} is a mapper edit, which the page cannot restore: start from a seed, or "
                                 "upload its latent.npy in the Latent tab")  # fmt: skip
            if not isinstance(cfg, dict):
                raise UsageError(f"{path.name}: its styleclip metadata is damaged")
            if cfg.get("latent"):
                raise UsageError(
                    "this PNG was edited from a latent file, and the page opens no file a PNG names: upload that "
                    "latent in the Latent tab"
                )
            seeds = cfg.get("seeds")
            if not (isinstance(seeds, list) and seeds and cfg.get("mode", "edit") == "edit"):
                raise UsageError("this PNG's source (a free generation) cannot be restored: start from a seed")
            prompts = cfg.get("prompts")
            prompt = prompts[0] if isinstance(prompts, list) and prompts else ""
            settings = restored_settings({**{k: cfg.get(k) for k in OPTIMIZE_KEYS}, "method": "optimize",
                                          "prompt": prompt})  # fmt: skip
            self.from_seed(seeds[0], cfg.get("truncation_psi", 0.7), _class_index(cfg.get("class_idx")))
            return settings
        if "styleclip:target" in text:
            settings = restored_settings(
                {
                    "method": "directions",
                    "target": text["styleclip:target"],
                    "neutral": text.get("styleclip:neutral"),
                    "alpha": text.get("styleclip:alpha", 0),
                    "beta": text.get("styleclip:beta", 0.15),
                }
            )
            if "styleclip:seed" in text:
                self.from_seed(text["styleclip:seed"], text.get("styleclip:truncation_psi", 0.7))
            return settings
        raise UsageError(f"{path.name} carries no styleclip metadata (drop an after.png or a PNG downloaded here)")

    def _restore_session(self, data: dict) -> dict[str, Any]:
        """The history a PNG of this page carries: its size and every array's shape are checked before anything
        is decompressed or drawn, and each step draws one picture."""
        damaged = UsageError("this PNG's styleclip history is damaged")
        steps = data.get("steps")
        if not isinstance(steps, list) or not steps:
            raise damaged
        if len(steps) > MAX_HISTORY:
            raise UsageError(
                f"this PNG's history has {len(steps)} steps; the page restores at most {MAX_HISTORY}: drop the PNG "
                "of a shorter history"
            )
        for step in steps:
            if not (
                isinstance(step, dict) and isinstance(step.get("label"), str) and isinstance(step.get("edit"), dict)
            ):
                raise damaged
            if len(step["label"]) > MAX_LABEL_CHARS:
                raise damaged
        settings = restored_settings(steps[-1]["edit"])
        encoded = data.get("codes")
        try:
            blob = base64.b64decode(encoded if isinstance(encoded, str) else "", validate=True)
        except (binascii.Error, ValueError):
            raise damaged from None
        try:
            arrays = read_codes(io.BytesIO(blob), self.G, [f"{i}/" for i in range(len(steps))], rows=1)
            codes = [Codes.from_arrays(a, self.G) for a in arrays]
        except StyleclipError as exc:
            if "do not fit" in str(exc) or "incomplete" in str(exc):
                raise UsageError(f"this PNG was made with another generator: {exc}") from None
            raise UsageError(f"this PNG's styleclip history is damaged: {exc}") from None
        history = [Step(c.cpu(), s["label"], s["edit"], self._render(c)) for c, s in zip(codes, steps, strict=True)]
        self._new_history(history)
        first = steps[0]["edit"]
        if first.get("source") == "photo" and (first.get("method") == "hyperstyle" or "offsets" in first):
            self.notice = NO_OFFSETS
        return settings

    # -- edits -----------------------------------------------------------------------------------------

    def _source_styles(self) -> dict[str, torch.Tensor]:
        """The current source's styles, computed once per source (a slider move then costs one synthesis)."""
        step = self.source
        if self._styles is None or self._styles[0] != id(step):
            with torch.no_grad():
                self._styles = (id(step), step.codes.to(self.G.device).style_codes(self.drawer))
        return self._styles[1]

    def apply(self, edit: Edit, label: str) -> Preview:
        """Preview ``edit`` applied to the current source (one synthesis pass for a cached direction), drawn by the
        source's generator (:attr:`drawer`)."""
        codes = self.source.codes.to(self.G.device)
        if edit.space == "s":  # the source's styles, computed once per source
            codes = Codes(codes.ws, self._source_styles())
        draw = self.drawer
        with torch.no_grad(), computing_in(self.studio.precision):
            edited = edit.apply(draw, codes)
            pixels = to_uint8(edited.image(draw))[0]
        self.preview = Preview(edited, pixels, edit.describe(), label, weights=self.weights)
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
            frames = [Image.fromarray(a) for a in to_uint8(self.drawer.synthesis_from_styles(edited))]
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
                self.drawer,  # the photo's own weights, when it has them: the prompt judges what the page shows
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
        self.preview = Preview(edited, to_uint8(result.image)[0], edit, label, path, source.weights)
        return self.preview

    def request_cancel(self) -> None:
        self.cancel.set()

    # -- styles (adapted generators) -------------------------------------------------------------------

    def style_choices(self) -> list[str]:
        """What the Style tab's picker lists: the catalogue's ``nada:*`` names, then this session's own."""
        return [*self.studio.style_names(), *self.own_styles]

    def add_style_upload(self, path: str | Path) -> str:
        """An uploaded generator file, listed in the picker as ``upload:<file name>``; returns that name."""
        resolved = self.studio.local_file(path, "generator", self.folder)
        return self._own_name(f"upload:{resolved.name}", resolved)

    def _own_name(self, name: str, path: Path) -> str:
        taken, n = name, 1
        while self.own_styles.get(taken, path) != path:
            n += 1
            taken = f"{name}-{n}"
        self.own_styles[taken] = path
        return taken

    def adapted(self, spec: Any) -> tuple[str, Generator]:
        """``(name, generator)`` for a style the picker names: a catalogue generator (``nada:sketch``), one trained
        or uploaded in this session, a file in an ``allow_paths`` folder or an allowed URL. Loaded once and kept
        among the session's :data:`MAX_STYLES` most recently used; refused in one line when it cannot draw this
        server's codes."""
        from ..hub.generators import load_generator

        key, source, shown = self._style_source(spec)
        with self._style_lock:
            hit = self._adapted.get(key)
            if hit is not None:
                self._adapted.move_to_end(key)
                return shown, hit
        path = source if isinstance(source, Path) else None
        try:
            A = load_generator(source, device=self.G.device, cache=self.studio.cache, offline=self.studio.offline)
        except StyleclipError as exc:  # said without the server's own paths
            raise UsageError(self.studio._redact(str(exc), path, shown)) from None
        check_compatible(self.G, A, shown)
        self._keep_style(key, A)
        return shown, A

    def _keep_style(self, key: str, A: Generator) -> None:
        with self._style_lock:
            self._adapted[key] = A
            while len(self._adapted) > MAX_STYLES:
                self._adapted.popitem(last=False)

    def _style_source(self, spec: Any) -> tuple[str, str | Path, str]:
        """What the style picker names: ``(cache key, catalogue name | URL | local path, name to show)``."""
        from ..hub.registry import find_asset, get_asset

        example = f"a catalogue name such as {STYLE_PREFIX}sketch"
        if not isinstance(spec, str) or not spec.strip():
            raise UsageError(f"pick a style: {example}, or one trained or uploaded here")
        spec = spec.strip()
        if len(spec) > 2000 or "\0" in spec:
            raise UsageError(f"the style box takes {example}")
        if spec in self.own_styles:
            path = self.own_styles[spec]
            if not path.is_file():
                raise UsageError(f"{spec} is no longer on the server: train or upload it again")
            return f"path:{path}", path, spec
        asset = find_asset(spec) or find_asset(f"{STYLE_PREFIX}{spec}")
        if asset is not None and asset.kind == "generator":
            return f"asset:{asset.name}", asset.name, asset.name
        if "://" in spec:
            if not spec.lower().startswith(("http://", "https://")):
                raise UsageError("the style box takes a catalogue name or an http(s) URL, no other kind of URL")
            if not self.studio.allow_urls:
                raise UsageError(f"this server downloads no URLs typed in the page: name {example} (the server's "
                                 "owner may allow URLs with styleclip ui --allow-urls)")  # fmt: skip
            return f"url:{spec}", spec, spec
        if asset is None and ("/" in spec or "\\" in spec or "." in spec or spec.startswith("~")):
            try:
                path = self.studio.local_file(spec, "generator", self.folder)
            except UsageError:
                raise UsageError(f"the page opens no server paths: name {example}, or upload the generator "
                                 f"({PATHS_OFF})") from None  # fmt: skip
            return f"path:{path}", path, spec
        get_asset(spec, kind="generator")  # an unknown name: the error suggests close ones
        raise UsageError(f"{spec!r} is not a generator")  # unreachable: get_asset refuses every other name

    def draw_style(self, spec: Any) -> StyleView:
        """The current picture (source or preview, its edit included) drawn by the style ``spec`` names, beside
        the session generator's drawing; later pictures follow it (:meth:`follow_style`)."""
        shown, A = self.adapted(spec)
        current = self.current
        draw = self._with_offsets(A)
        with torch.no_grad(), computing_in(self.studio.precision):
            pixels = to_uint8(draw_adapted(self.G, draw, current.codes.to(self.G.device)))[0]
        self.style = spec.strip()
        info = self._style_info(shown, A)
        if draw is not A:
            info += " (with the photo's HyperStyle offsets from 128 px up)"
        return StyleView(shown, current.pixels, pixels, info)

    def _with_offsets(self, A: Generator) -> Generator:
        """``A``, or for a photo with its own weights, ``A`` with the photo's offsets from 128 px up (HyperStyle's
        recipe for adapted generators): one copy per photo and style, kept until either changes."""
        from ..sources import apply_offsets

        weights = self.weights
        if weights is None:
            return A
        with self._style_lock:
            kept = self._styled
            if kept is not None and kept[0]() is A and kept[1] is weights:
                return kept[2]
            self._styled = None  # the previous copy goes before the next is made: one at a time
        draw = apply_offsets(A, weights.offsets, adapted=True)
        with self._style_lock:
            self._styled = (weakref.ref(A), weights, draw)
        return draw

    def follow_style(self) -> StyleView | None:
        """The style last drawn, redrawn for the current picture (None when none was picked): one synthesis pass,
        the generator is already loaded."""
        if self.style is None or self.index < 0:
            return None
        try:
            return self.draw_style(self.style)
        except UsageError:
            self.style = None  # said once; the next pictures are not drawn in a style that fails
            raise

    def _style_info(self, shown: str, A: Generator) -> str:
        from ..adapted import base_note

        adapted = A.meta.get("adapted")
        if not isinstance(adapted, dict):
            return f"{shown}: a generator of the same shape (no record of an adaptation)"
        text = f"{shown}: {adapted.get('source', '?')!s} → {adapted.get('target', '?')!s}"
        if isinstance(adapted.get("steps"), int):
            text += f", {adapted['steps']} steps"
        note = base_note(A, self.G, shown)
        return f"{text} (note: {note})" if note else text

    def adapt_style(
        self,
        source: Any,
        target: Any,
        steps: Any = 300,
        layers: str = "auto",
        on_step: Callable[[int, int, Path | None], None] | None = None,
        progress: bool = True,
    ) -> StyleRun:
        """Adapt the session's generator from ``source`` to ``target`` text (StyleGAN-NADA, :func:`styleclip.adapt`
        with the server's CLIP) into the session's folder; the result joins the picker as ``trained:<target>``.

        ``on_step(step, steps, sample grid or None)`` sees every step; :meth:`request_cancel` (from another
        thread) stops the run and keeps the steps done.
        """
        from ..training.adapt import adapt

        source = check_prompt(source, "source text")
        target = check_prompt(target, "target text")
        if source.lower() == target.lower():
            raise UsageError("the source and target texts are the same: name the style to move to")
        n = int(check_number(steps, "steps", 1, MAX_ADAPT_STEPS))
        if layers not in ADAPT_LAYERS:
            raise UsageError(f"layers must be one of {', '.join(ADAPT_LAYERS)}, got {layers!r}")
        self._serial += 1
        outdir = self.folder / "styles" / f"{self._serial:04d}-{_slug(target)}"
        guide = self.studio.guide
        every = max(1, n // 10)  # about ten previews per run

        def check(step: int, info: dict) -> None:
            if on_step is not None:
                grid = outdir / "samples" / f"step-{step:06d}.png"
                on_step(step, n, grid if grid.is_file() else None)
            if self.cancel.is_set():
                raise KeyboardInterrupt

        self.cancel.clear()
        result = adapt(
            self.G, clips=[guide], outdir=outdir, device=self.G.device, progress=progress, callback=check,
            source=source, target=target, steps=n, layers=layers, clip_models=(guide.name,), clip_weights=(1.0,),
            sample_every=every, checkpoint_every=n, keep_checkpoints=1, precision=self.studio.precision,
        )  # fmt: skip
        shutil.rmtree(outdir / "checkpoints", ignore_errors=True)  # the page never resumes: the disk is freed
        if result.path is None or not result.path.is_file():
            raise UsageError("cancelled before the first step: nothing was trained")
        name = self._own_name(f"trained:{_slug(target)}", result.path)
        self._keep_style(f"path:{result.path}", result.generator)  # the weights just saved: no reload
        grids = sorted((outdir / "samples").glob("step-*.png"))
        return StyleRun(name, result.path, result.steps_done, result.stopped, grids[-1] if grids else None)

    # -- video ----------------------------------------------------------------------------------------------

    def load_video(self, path: str | Path) -> VideoClip:
        """The Video tab's clip: an upload (never a server path), within the size limit, a video ffmpeg reads, of at
        most ``limits.max_video_frames`` frames (said from its header before any frame is counted when it can be)."""
        from ..video import frames as vio

        self.video = None  # a refused upload leaves no earlier clip behind it to render by mistake
        path = self._check_size(self.studio.local_file(path, "video", self.folder))
        limit = int(self.studio.limits.max_video_frames)
        declared = _declared_frames(path)
        if declared is not None and declared > 2 * limit:  # counting a long clip's frames decodes all of them
            raise UsageError(_too_long(path, f"about {declared}", limit))
        try:
            info = vio.probe(path, None)
        except UsageError as exc:
            raise UsageError(_video_message(str(exc), path)) from None
        if info.frames > limit:
            raise UsageError(_too_long(path, str(info.frames), limit))
        self.video = VideoClip(path, info)
        return self.video

    def _clip(self) -> VideoClip:
        if self.video is None or not self.video.path.is_file():
            self.video = None
            raise UsageError("upload a video clip in the Video tab first")
        return self.video

    def video_edit(self, kind: str, target: Any = None, neutral: Any = None, alpha: Any = 0, beta: Any = None,
                   mapper: Any = None, strength: Any = 0.1) -> tuple[Edit, str, str | None]:  # fmt: skip
        """The edit the Video tab applies to every frame: the Global directions tab's (``kind`` 'direction': neutral,
        target, α, β; None = automatic β) or the Mapper tab's ('mapper': its name and strength). Returns ``(edit,
        label, prompt)``, the prompt scoring the frames in the report."""
        if kind == "mapper":
            from ..edits.mapper import MapperEdit

            strength = check_number(strength, "strength", -10, 10)
            found = self.studio.mapper(mapper)
            prompt = found.meta.get("prompt")
            prompt = prompt if isinstance(prompt, str) and prompt.strip() else None
            return MapperEdit(found, strength), f"mapper {prompt or mapper} (strength {strength:g})", prompt
        if kind != "direction":
            raise UsageError(f"the video's edit is 'direction' or 'mapper', got {str(kind)[:40]!r}")
        alpha = check_number(alpha, "alpha", -100, 100)
        found = self.direction(target, neutral, beta)
        return found.at(alpha), f"{found.target} (α {alpha:g}, β {found.beta:g})", found.target

    def _framing(self, align: str) -> bool:
        """Whether frames are aligned on a face (else the frame's centre square), as :func:`edit_video` decides."""
        if align not in VIDEO_FRAMINGS:
            raise UsageError(f"the framing must be one of {', '.join(VIDEO_FRAMINGS)}, got {str(align)[:40]!r}")
        return align == "face" or (align == "auto" and self.G.meta.get("domain") == "face")

    def video_samples(self, inversion: VideoInversion, align: str = "auto") -> VideoSamples:
        """:data:`VIDEO_PREVIEW_FRAMES` evenly spaced frames of the clip, each aligned on its own (the render smooths
        the crops over time) and inverted; kept for the clip, the inversion and the framing."""
        from ..inversion.encoders import encode
        from ..io.photos import to_tensor
        from ..video import frames as vio
        from ..video.stitch import crop
        from ..video.track import Square, pick_face, square_from_landmarks

        clip = self._clip()
        face = self._framing(align)
        key = (inversion.key(), align)
        if key in clip.samples:
            return clip.samples[key]
        n = clip.info.frames
        wanted = sorted({int(x + 0.5) for x in np.linspace(0, n - 1, min(VIDEO_PREVIEW_FRAMES, n))})
        frames: dict[int, np.ndarray] = {}
        for index, frame in vio.read_frames(clip.info):
            if index in wanted:
                frames[index] = frame.copy()
            if index >= wanted[-1]:
                break
        indices = [i for i in wanted if i in frames]
        if not indices:
            raise UsageError(f"{clip.path.name}: no frame could be decoded; upload another clip")
        squares: list[Any] = []
        for i in indices:
            if face:
                from ..io.align import detect_faces

                previous = next((q for q in reversed(squares) if q is not None), None)
                found = pick_face(detect_faces(Image.fromarray(frames[i])), previous)
                squares.append(square_from_landmarks(found.landmarks) if found is not None else None)
            else:
                h, w = frames[i].shape[:2]
                half = min(h, w) / 2
                squares.append(Square(np.array([w / 2, h / 2]), np.array([half, 0.0]), np.array([0.0, half])))
        if not any(q is not None for q in squares):
            shown = ", ".join(map(str, indices))
            raise UsageError(f"no face found in the previewed frames ({shown}) of {clip.path.name}: for another "
                             "subject pick the center framing")  # fmt: skip
        R = self.G.img_resolution
        crops = [np.asarray(crop(Image.fromarray(frames[i]), q, R)) if q is not None else None
                 for i, q in zip(indices, squares, strict=True)]  # fmt: skip
        photos = torch.cat([to_tensor(Image.fromarray(c), self.G.device) for c in crops if c is not None])
        offsets = None
        with torch.no_grad():
            if inversion.hyperstyle is not None:
                from ..inversion.hyperstyle import hyperstyle_invert

                result = hyperstyle_invert(inversion.hyperstyle, inversion.encoder, self.G, photos)
                ws, offsets = result.ws, result.offsets[-1]
            else:
                ws = encode(inversion.encoder, self.G, photos)[-1]
        samples = VideoSamples(indices, [frames[i] for i in indices], crops, ws, offsets)
        clip.samples = {key: samples}  # one set at a time: another inversion or framing replaces it
        return samples

    def preview_video(self, edit: Edit, inversion: VideoInversion, align: str = "auto") -> np.ndarray:
        """``edit`` on the clip's sample frames (:meth:`video_samples`): a grid ``[H, W, 3]`` uint8 of the aligned crops
        (top) above their edits (bottom); a frame without a face shows as it is. Once the samples are inverted, a
        new edit costs one synthesis per frame."""
        samples = self.video_samples(inversion, align)
        side = min(self.G.img_resolution, VIDEO_PREVIEW_PX)
        drawer = None
        if samples.offsets is not None:
            from ..inversion.hyperstyle import OffsetDrawer

            drawer = OffsetDrawer(self.G)
        before, after, labels = [], [], []
        k = 0
        with torch.no_grad(), computing_in(self.studio.precision):
            for i, frame, c in zip(samples.indices, samples.frames, samples.crops, strict=True):
                if c is None:
                    still = Image.fromarray(frame).convert("RGB")
                    still.thumbnail((side, side))
                    shown = Image.new("RGB", (side, side), "black")
                    shown.paste(still, ((side - still.width) // 2, (side - still.height) // 2))
                    before.append(shown)
                    after.append(shown)
                    labels.append(f"frame {i}: no face")
                    continue
                assert samples.ws is not None
                edited = edit.apply(self.G, Codes(samples.ws[k : k + 1]))  # styles of the shared G, as the render
                draw = drawer.set(samples.offsets, k) if drawer is not None else self.G
                pixels = to_uint8(edited.image(draw, noise_mode="const"))[0]
                before.append(Image.fromarray(c).resize((side, side), Image.Resampling.LANCZOS))
                after.append(Image.fromarray(pixels).resize((side, side), Image.Resampling.LANCZOS))
                labels.append(f"frame {i}")
                k += 1
        return np.asarray(image_grid([before, after], labels))

    def render_video(
        self,
        edit: Edit,
        prompt: str | None,
        inversion: VideoInversion,
        align: str = "auto",
        on_progress: Callable[[str, int, int], None] | None = None,
        progress: bool = False,
        batch_size: int = 8,
    ) -> VideoRun:
        """The whole clip edited by :func:`styleclip.video.edit_video` into the session's folder
        (``videos/<settings>/``: ``edited.mp4``, ``comparison.mp4``, ``report.json``).

        ``on_progress(stage, done, total)`` sees every frame of every stage; :meth:`request_cancel` (from another
        thread) stops between frames, and rendering the same again resumes there. Another edit of the same clip,
        inversion and framing starts from the frames already aligned and inverted; the previous render's files go.
        """
        from ..video import edit_video

        clip = self._clip()
        self._framing(align)
        setup = json.dumps([str(clip.path), inversion.key(), align])
        name = hashlib.sha256((setup + json.dumps(edit.describe(), sort_keys=True, default=str)).encode())
        outdir = self.folder / "videos" / name.hexdigest()[:16]
        previous = clip.render
        if previous is not None and previous[1] != outdir:
            if previous[0] == setup:
                _reuse_stages(previous[1] / "work", outdir / "work")
            shutil.rmtree(previous[1], ignore_errors=True)
        clip.render = (setup, outdir)
        report = outdir / "report.json"
        if report.is_file() and (outdir / "edited.mp4").is_file():
            return _finished(outdir)

        def check(stage: str, done: int, total: int) -> None:
            if on_progress is not None:
                on_progress(stage, done, total)
            if self.cancel.is_set():
                raise KeyboardInterrupt

        identity = self._video_identity if self._framing(align) else None
        self.cancel.clear()
        try:
            with computing_in(self.studio.precision):
                result = edit_video(
                    clip.path, self.G, edit, outdir, method=inversion.method, encoder=inversion.encoder,
                    hyperstyle=inversion.hyperstyle, align=align, max_frames=self.studio.limits.max_video_frames,
                    guide=self.studio.guide, prompt=prompt, identity=identity, progress=progress, callback=check,
                    batch_size=batch_size,
                )  # fmt: skip
        except KeyboardInterrupt:
            return VideoRun(outdir, stopped=True)
        except UsageError as exc:
            raise UsageError(_video_message(str(exc), clip.path)) from None
        return VideoRun(outdir, False, result.edited, result.comparison, result.report, result.frames,
                        list(result.unedited), dict(result.metrics))  # fmt: skip

    def _video_identity(self):
        """ArcFace for the report's identity per frame, loaded when the frames are measured; None when it cannot be
        (the report then leaves identity out)."""
        from ..guidance.identity import load_identity_loss

        try:
            return load_identity_loss(device=self.G.device, cache=self.studio.cache, offline=self.studio.offline)
        except StyleclipError:
            return None

    # -- history ------------------------------------------------------------------------------------------

    def accept(self) -> Step:
        """Make the previewed edit the new source (edits stack); later redo steps are dropped."""
        if self.preview is None:
            raise UsageError("nothing to accept yet: make an edit first")
        if self.index + 2 > MAX_HISTORY:
            raise UsageError(
                f"the history holds {MAX_HISTORY} steps, the most a session keeps: prepare the downloads, then "
                "click an earlier step to go on from there"
            )
        p = self.preview
        step = Step(p.codes.cpu(), p.label, p.edit, p.pixels, p.weights)
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
            chain = [*chain, Step(p.codes.cpu(), p.label, p.edit, p.pixels, p.weights)]
        return chain

    def report(self) -> dict[str, Any]:
        G = self.G
        chain = self._chain()
        generator = {"name": self.studio.generator_name, "asset": G.meta.get("asset"), "resolution": G.img_resolution}
        weights = chain[-1].weights
        if weights is not None:
            generator["photo_weights"] = {
                "method": weights.method,
                "layers": sorted(weights.offsets),
                "note": "drawn with the photo's weight offsets W * (1 + delta): offsets.safetensors among the downloads",
            }
        report = {"generator": generator, "clip": self.studio.guide.name, "precision": self.studio.precision,
                  "steps": [{"label": s.label, "edit": s.edit} for s in chain]}  # fmt: skip
        if self.notice:
            report["note"] = self.notice
        return report

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

    def export_offsets(self) -> Path | None:
        """The current photo's HyperStyle offsets as ``offsets.safetensors`` (written once per photo; ``styleclip
        edit --latent latent.npy --offsets offsets.safetensors`` draws with them), or None without photo weights."""
        from ..inversion.hyperstyle import save_offsets

        weights = self.weights
        if weights is None:
            return None
        if weights.saved is None or not weights.saved.is_file():
            owner = weights.generator.meta.get("offsets_of") or ""
            weights.saved = save_offsets(self.new_path("offsets.safetensors"), weights.offsets, owner)
        return weights.saved

    def downloads(self) -> list[Path]:
        """Every download at once: PNG, codes, report, the trajectory video (if any), the history zip, and a photo's
        HyperStyle offsets (if any)."""
        files = [self.export_png(), self.export_codes(), self.export_report(), self.export_history()]
        if self.preview is not None and self.preview.video is not None:
            files.insert(2, self.preview.video)
        offsets = self.export_offsets()
        if offsets is not None:
            files.append(offsets)
        return files


def _family(G: Generator) -> str:
    from ..nets.stylegan3 import Generator3

    return "StyleGAN3" if isinstance(G, Generator3) else "StyleGAN2"


def _declared_frames(path: Path) -> int | None:
    """The frame count a video's header implies (duration x rate), without decoding a frame; None if unknown."""
    try:
        import imageio_ffmpeg

        reader = imageio_ffmpeg.read_frames(str(path))
        try:
            meta = next(reader)
        finally:
            reader.close()
        count = float(meta.get("duration") or 0) * float(meta.get("fps") or 0)
    except Exception:  # not a video, or no ffmpeg: probe says which in one line
        return None
    return int(count) if math.isfinite(count) and count > 0 else None


def _too_long(path: Path, frames: str, limit: int) -> str:
    return (f"{path.name}: {frames} frames; the page edits clips of at most {limit} frames (every frame is inverted "
            "and drawn): trim it, or ask the server's owner to raise the limit (styleclip ui --max-video-frames)")  # fmt: skip


def _video_message(text: str, path: Path) -> str:
    """A video error as the page says it: the upload by its name (not the server's path), the page's settings for
    the command line's flags."""
    text = text.replace(str(path), path.name)
    return text.replace("use --align center", "pick the center framing in the Video tab")


def _reuse_stages(old: Path, new: Path) -> None:
    """Move the work no edit changes (faces found, crops, codes) from an earlier render of the same clip, inversion
    and framing into the next one, which then draws and stitches only."""
    if not old.is_dir() or old.is_symlink():
        return
    new.mkdir(parents=True, exist_ok=True)
    for name in VIDEO_STAGES:
        if (old / name).exists() and not (new / name).exists():
            os.replace(old / name, new / name)


def _finished(outdir: Path) -> VideoRun:
    """A render that completed earlier (its report is written last), from its report."""
    try:
        report = json.loads((outdir / "report.json").read_text())
    except ValueError:
        report = {}
    return VideoRun(outdir, False, outdir / "edited.mp4", outdir / "comparison.mp4", outdir / "report.json",
                    int(report.get("frames") or 0), list(report.get("unedited_frames") or []),
                    dict(report.get("metrics") or {}))  # fmt: skip


def check_compatible(base: Generator, adapted: Generator, shown: str) -> None:
    """One :class:`UsageError` line listing what differs when ``adapted`` cannot draw ``base``'s codes: the
    network family, W+ rows, w width, resolution, or the style layers (an edit's Δs is added layer by layer)."""
    wanted = {"family": _family(base), "W+ rows": base.num_ws, "w_dim": base.w_dim, "resolution": base.img_resolution}
    found = {"family": _family(adapted), "W+ rows": adapted.num_ws, "w_dim": adapted.w_dim,
             "resolution": adapted.img_resolution}  # fmt: skip
    diffs = [f"{k} {found[k]} (needs {wanted[k]})" for k in wanted if found[k] != wanted[k]]
    if not diffs and type(adapted) is not type(base):
        diffs.append(f"a {type(adapted).__name__} (needs a {type(base).__name__})")
    layers = [(layer.name, layer.channels) for layer in base.style_layers]
    if not diffs and [(layer.name, layer.channels) for layer in adapted.style_layers] != layers:
        diffs.append("other style layers (another channel width)")
    if diffs:
        raise UsageError(f"{shown} cannot draw the codes of this server: {'; '.join(diffs)}. Pick a generator adapted "
                         "from the one this server edits")  # fmt: skip


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "style"


def _json(text: str, path: Path) -> dict:
    """A PNG's styleclip metadata, or a one-line error when it is damaged."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        data = None
    if not isinstance(data, dict):
        raise UsageError(f"{path.name}: its styleclip metadata is damaged")
    return data


OPTIMIZE_KEYS = ("steps", "l2_weight", "id_weight", "space", "layers", "loss", "neutral")


def _class_index(value: Any) -> int | None:
    return None if value is None or value == "" else int(check_number(value, "the class", 0, 1e9))


def restored_settings(edit: dict) -> dict[str, Any]:
    """The settings a dropped PNG puts back in the page's boxes, checked as if typed there (nothing else of
    what the PNG says is kept)."""
    method = edit.get("method")
    if method == "directions":
        neutral = edit.get("neutral")
        return {
            "method": "directions",
            "target": check_prompt(edit.get("target"), "target"),
            "neutral": None if neutral in (None, "") else check_prompt(neutral, "neutral"),
            "alpha": check_number(edit.get("alpha", 0), "alpha", -100, 100),
            "beta": check_number(edit.get("beta", 0.15), "beta", 0, 0.99),
        }
    if method == "optimize":
        prompt = edit.get("prompt")
        settings: dict[str, Any] = {"method": "optimize", "prompt": check_prompt(prompt) if prompt else ""}
        for key in OPTIMIZE_KEYS:
            value = edit.get(key)
            if isinstance(value, bool) or value is None:
                continue
            number = isinstance(value, int | float) and math.isfinite(value)
            if number or (isinstance(value, str) and len(value) <= MAX_PROMPT_CHARS):
                settings[key] = value
        return settings
    return {"method": method} if method in ("mapper",) else {}


def _has_styles(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(name.startswith("styles/") for name in z.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def read_codes(source: Path | io.BytesIO, G: Generator, groups: list[str], rows: int | None = None) -> list[dict]:
    """Each group's codes (``{"ws": ..., "styles/<layer>": ...}``, first row only) from an ``.npz``.

    Every member's ``.npy`` header is checked against ``G`` before its data is read, and only the first row is
    decompressed, so no size a file declares makes styleclip allocate more than one picture's codes per group.
    ``rows``: the number of rows each array must hold (None: any). Raises :class:`UsageError` in one line.
    """
    widths = {layer.name: layer.channels for layer in G.style_layers}
    found: list[dict[str, np.ndarray]] = [{} for _ in groups]
    index = {g: i for i, g in enumerate(groups)}
    try:
        with zipfile.ZipFile(source) as z:
            infos = z.infolist()
            if len(infos) > len(groups) * (len(widths) + 1):
                raise UsageError("these codes hold more arrays than the generator has layers")
            for info in infos:
                name = info.filename.removesuffix(".npy")
                group, key = _split_member(name, index)
                if group is None:
                    continue
                if key == "ws":
                    shapes = [(G.num_ws, G.w_dim), (G.w_dim,)]
                elif key.startswith("styles/") and key[len("styles/") :] in widths:
                    shapes = [(widths[key[len("styles/") :]],)]
                elif key.startswith("styles/"):
                    raise UsageError(f"style codes {key[len('styles/') :]} do not fit this generator")
                else:
                    continue
                with z.open(info) as f:
                    found[group][key] = _first_row(f, key, shapes, rows)
    except UsageError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, RuntimeError, NotImplementedError):
        raise UsageError("these codes are not an .npz styleclip can read") from None
    return found


def _split_member(name: str, index: dict[str, int]) -> tuple[int | None, str]:
    if "" in index:
        return index[""], name
    head, _, key = name.partition("/")
    return index.get(f"{head}/"), key


def _first_row(f, key: str, shapes: list[tuple[int, ...]], rows: int | None) -> np.ndarray:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"npy version {version}")
    if dtype.kind != "f" or dtype.itemsize not in (2, 4, 8) or dtype.hasobject:
        raise UsageError(f"codes {key}: expected float numbers, found {dtype}")
    if len(shape) < 2 or tuple(shape[1:]) not in shapes or shape[0] < 1:
        raise UsageError(f"codes {key} {list(shape)} do not fit this generator")
    if rows is not None and shape[0] != rows:
        raise UsageError(f"codes {key} hold {shape[0]} rows; a step of a history is one picture")
    if fortran and shape[0] != 1:
        raise UsageError(f"codes {key}: Fortran-ordered arrays of several rows are not read")
    count = int(np.prod(shape[1:]))
    data = f.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ValueError("truncated")
    row = np.frombuffer(data, dtype=dtype)
    row = row.reshape(tuple(reversed(shape[1:]))).T if fortran else row.reshape(shape[1:])
    return row.astype(np.float32)[None]


__all__ = [
    "SESSION_KEY",
    "EditSession",
    "Limits",
    "OptimizeSettings",
    "PhotoWeights",
    "Preview",
    "Step",
    "Studio",
    "StyleRun",
    "StyleView",
    "VideoClip",
    "VideoInversion",
    "VideoRun",
    "VideoSamples",
    "check_compatible",
    "check_number",
    "check_prompt",
]
