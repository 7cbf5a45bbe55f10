"""The Gradio page: a thin layer over :class:`~styleclip.ui.session.EditSession`.

Every event handler is a method of :class:`Handlers` that takes the browser session's :class:`EditSession` first
and returns plain values (numpy images, text, file paths), so tests can call them without a browser. Known errors
become a readable message on the page (``gr.Error``); anything else is logged with its traceback on the server and
shown as one line, and the app keeps serving.
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
import queue
import random
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StyleclipError, UsageError
from ..guidance.clip import ClipGuide
from ..inversion.invert import METHODS, inversions_for
from ..nets.stylegan2 import Generator
from ..video.pipeline import INVERSIONS
from .session import (
    ADAPT_LAYERS,
    SAMPLE_PREVIEW_PX,
    VIDEO_FRAMINGS,
    EditSession,
    Limits,
    OptimizeSettings,
    Studio,
    check_number,
)

log = logging.getLogger("styleclip.ui")

LAYER_CHOICES = ["all", "coarse", "medium", "fine"]
PHOTO_METHODS = list(METHODS)  # the same inversions as styleclip invert --method
ALPHA_RANGE = (-10.0, 10.0)
KEEP = object()
# Small generators (and thumbnails) are shown enlarged with crisp pixels; pass it to ``launch(css=CSS)``.
CSS = """
#before img, #after img, #style-base img, #style-after img, #video-preview img {
  width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated;
}
#style-samples img { image-rendering: pixelated; }
#history img { image-rendering: pixelated; }
"""
DEFAULT_TEXTS = {  # (neutral, target) the page starts with, by the generator's domain
    "face": ("a face", "a smiling face"),
    "dog": ("a dog", "a happy dog"),
    "cat": ("a cat", "a cat with sunglasses"),
    "wild": ("an animal", "a tiger"),
    "art": ("a portrait", "a smiling portrait"),
}  # a streamed update that leaves this output as it is
BETA_RANGE = (0.05, 0.4)
VIDEO_EDITS = [("the Global directions tab's", "direction"), ("the Mapper tab's", "mapper")]
VIDEO_FILE_TYPES = [".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v"]
VIDEO_STAGE_NAMES = {"detect": "finding the subject", "align": "aligning", "invert": "inverting", "edit": "editing",
                     "stitch": "stitching"}  # fmt: skip
STATUS_EVERY = 0.5  # seconds between two progress lines sent to the page (a frame may take milliseconds)


def _gradio():
    try:
        import gradio as gr
    except ImportError:
        raise UsageError('the web UI needs Gradio: pip install "styleclip[ui]"') from None
    return gr


def _message(exc: BaseException) -> str:
    """One line of escaped text: Gradio shows an error's message as HTML, and messages echo what users typed."""
    if isinstance(exc, StyleclipError):
        text = str(exc)
    else:
        log.exception("unexpected error in the UI", exc_info=exc)
        text = f"something went wrong ({type(exc).__name__}: {str(exc)[:200]}); the details are in the server's log"
    return html.escape(" ".join(text.split()))


# what can start markup, a link, an image or an autolink (www., http:, user@host) inside one line of Markdown
_MARKDOWN = re.compile(r"([\\`*_\[\]()#.!|~:$@])")


def plain(text: Any) -> str:
    """``text`` as a Markdown component shows it literally: HTML escaped, Markdown's punctuation too (a label
    from a shared PNG must not become a link, a remote image or markup)."""
    return _MARKDOWN.sub(r"\\\1", html.escape(" ".join(str(text).split()), quote=False))


def readable_errors(fn: Callable) -> Callable:
    """Turn any error of a handler into a one-line message on the page (the server keeps serving)."""
    gr = _gradio()

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as exc:
                raise gr.Error(_message(exc), duration=None, print_exception=False) from None

        return gen

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            raise gr.Error(_message(exc), duration=None, print_exception=False) from None

    return wrapper


class Handlers:
    """The page's event handlers. ``View`` outputs are ``(before, after, gallery, history text)``."""

    def __init__(self, studio: Studio, root: Path) -> None:
        self.studio, self.root = studio, root
        self.open: dict[str, EditSession] = {}  # browser session id -> its session, to clean up when it ends

    # -- sessions --------------------------------------------------------------------------------------

    def session(self, session: EditSession | None) -> EditSession:
        return session if session is not None else EditSession(self.studio, self.root)

    def view(self, s: EditSession) -> tuple:
        """Before (the current source), after (the preview, or the source), the history gallery and its caption."""
        if s.index < 0:
            return None, None, [], "No source yet."
        # gallery captions are shown as text; the history line is Markdown
        gallery = [(step.pixels, f"{i}: {step.label}") for i, step in enumerate(s.history)]
        text = f"Step {s.index} of {len(s.history) - 1}: {plain(s.source.label)}"
        if s.preview is not None:
            text += f" — previewing: {plain(s.preview.label)} (Accept to keep it)"
        if s.weights is not None:
            text += f" — drawn with the photo's own {plain(s.weights.method)} weights"
        if s.notice:
            text += f" — note: {plain(s.notice)}"
        return s.source.pixels, s.current.pixels, gallery, text

    def start(self, session, seed, psi, class_idx=None):
        """Page load: a session of its own, drawing the first seed."""
        s = self.session(session)
        if s.index < 0:
            s.from_seed(seed, psi, _class(class_idx))
        return (s, *self.view(s), self.relevance_note())

    def end(self, session_id: str) -> None:
        """The browser went away: remove that session's folder (uploads, videos, downloads)."""
        s = self.open.pop(session_id, None)
        if s is not None:
            s.close()

    def relevance_note(self) -> str:
        try:
            self.studio.matrix()
        except StyleclipError as exc:
            return f"**Global directions need a relevance matrix.** {plain(exc)}. Or press *Compute relevance* below."
        return ""

    # -- sources ---------------------------------------------------------------------------------------

    def seed(self, session, seed, psi, class_idx=None):
        s = self.session(session)
        s.from_seed(seed, psi, _class(class_idx))
        return (s, *self.view(s))

    def random_seed(self, session, psi, class_idx=None):
        seed = random.randrange(0, 2**31)
        s = self.session(session)
        s.from_seed(seed, psi, _class(class_idx))
        return (s, seed, *self.view(s))

    def photo(self, session, path, method, steps):
        s = self.session(session)
        if not path:
            raise UsageError("upload a photo first")
        n = int(steps) if steps not in (None, "") and float(steps) > 0 else None
        step = s.from_photo(path, method=method or "auto", steps=n)
        return (s, *self.view(s), photo_info(step.edit))

    def latent(self, session, path):
        s = self.session(session)
        if not path:
            raise UsageError("upload a latent file (.npy, .npz or .pt)")
        s.from_latent_file(path)
        return (s, *self.view(s))

    def png(self, session, path, target, neutral, alpha, beta, prompt):
        """A styleclip PNG dropped back in: its source and history, and its edit's settings in the tabs."""
        s = self.session(session)
        if not path:
            raise UsageError("drop a PNG written by styleclip")
        settings = s.from_png(path)
        if settings.get("method") == "directions":
            target, neutral = settings.get("target") or target, settings.get("neutral") or neutral
            alpha, beta = settings.get("alpha", alpha), settings.get("beta", beta)
        elif settings.get("method") == "optimize":
            prompt = settings.get("prompt") or prompt
        return (s, *self.view(s), target, neutral, alpha, beta, prompt)

    # -- global directions ----------------------------------------------------------------------------

    def direction(self, session, target, neutral, alpha, beta, auto_beta):
        """A slider moved: one synthesis pass (direction and source styles are cached)."""
        s = self.session(session)
        preview = s.preview_direction(target, neutral, alpha, None if auto_beta else beta)
        per_layer = s.studio.direction(target, neutral, None if auto_beta else float(beta)).per_layer()
        layers = ", ".join(f"{k} {v}" for k, v in per_layer.items())
        info = f"β {preview.edit['beta']:g}: {preview.edit['channels_changed']} channels changed ({layers})"
        return s, preview.pixels, plain(info), self.view(s)[3]

    def mapper(self, session, spec, strength):
        """The mapper's strength slider moved (or a mapper was named): one mapper pass and one synthesis."""
        s = self.session(session)
        preview = s.preview_mapper(spec, strength)
        mapper = s.studio.mapper(spec)
        rows = ", ".join(f"{g} rows {lo}-{hi - 1}" for g, (lo, hi) in mapper.rows.items())
        info = f"trained for {mapper.meta.get('prompt') or 'an unrecorded prompt'!r}; edits {rows}"
        return s, preview.pixels, plain(info), self.view(s)[3]

    def sweep(self, session, target, neutral, alpha, beta, auto_beta):
        s = self.session(session)
        return np.asarray(s.sweep(target, neutral, alpha, None if auto_beta else beta))

    def compute_relevance(self):
        self.studio.compute_matrix()
        return "Relevance matrix ready: move the sliders."

    # -- optimisation -----------------------------------------------------------------------------------

    def optimize(self, session, prompt, steps, l2, id_weight, space, layers, loss, neutral, progress=None):
        """Run latent optimisation in a worker thread and stream its frames; yields
        ``(session, after, status, video, before, gallery, history)``, :data:`KEEP` where nothing changed."""
        s = self.session(session)
        settings = OptimizeSettings(
            prompt=prompt, steps=steps, l2_weight=l2, id_weight=id_weight if id_weight not in (None, "") else None,
            space=space, layers=layers, loss=loss, neutral=neutral,
        )  # fmt: skip
        n = int(check_number(steps, "steps", 1, 5000))
        done: dict[str, Any] = {}

        def work(put):
            done["preview"] = s.optimize(settings, on_frame=lambda k, px: put((k, px)), progress=False,
                                         frame_every=max(1, n // 20))  # fmt: skip

        for step, pixels in streamed("styleclip-optimize", work):
            if progress is not None:
                progress((step, max(n, 1)), desc="optimising")
            yield s, pixels, f"step {step} of {n}", KEEP, KEEP, KEEP, KEEP
        p = done["preview"]
        status = plain(
            f"{p.edit['stopped']} after {p.edit['steps_done']} steps: CLIP {p.edit['clip_before']:.3f} -> "
            f"{p.edit['clip_after']:.3f}. Accept to keep it."
        )
        before, after, gallery, history = self.view(s)
        yield s, after, status, str(p.video) if p.video else None, before, gallery, history

    def cancel(self, session):
        if session is not None:
            session.request_cancel()
        return "cancelling: the best result so far is kept"

    # -- styles (adapted generators) --------------------------------------------------------------------

    def style(self, session, spec):
        """A style picked: ``(session, base picture, adapted picture, info)``; an empty picker clears the view."""
        s = self.session(session)
        if spec in (None, "") or (isinstance(spec, str) and not spec.strip()):
            s.style = None
            return s, None, None, ""
        view = s.draw_style(spec)
        return s, view.base, view.adapted, plain(view.info)

    def follow_style(self, session):
        """The picture changed: redraw it in the style last picked (one synthesis), or :data:`KEEP` without one."""
        s = self.session(session)
        view = s.follow_style()
        if view is None:
            return s, KEEP, KEEP, KEEP
        return s, view.base, view.adapted, plain(view.info)

    def style_upload(self, session, path):
        """A generator file uploaded: ``(session, picker update)`` naming it in the picker (which then draws)."""
        s = self.session(session)
        if not path:
            raise UsageError("upload a generator file (.safetensors, .pt or .pkl)")
        name = s.add_style_upload(path)
        return s, {"choices": s.style_choices(), "value": name}

    def adapt(self, session, source, target, steps, layers, progress=None):
        """Train a style in a worker thread and stream its sample grids; yields
        ``(session, status, samples, picker update, generator file)``, :data:`KEEP` where nothing changed."""
        s = self.session(session)
        done: dict[str, Any] = {}

        def work(put):
            done["run"] = s.adapt_style(source, target, steps, layers or "auto", progress=False,
                                        on_step=lambda k, n, grid: put((k, n, grid)))  # fmt: skip

        for step, n, grid in streamed("styleclip-adapt", work):
            if progress is not None:
                progress((step, n), desc="adapting")
            yield s, f"step {step} of {n}", _preview(grid) if grid is not None else KEEP, KEEP, KEEP
        run = done["run"]
        how = "cancelled" if run.stopped == "interrupted" else "done"
        status = plain(f"{how} after {run.steps_done} steps: {run.name} is in the style picker")
        samples = _preview(run.samples) if run.samples is not None else KEEP
        yield s, status, samples, {"choices": s.style_choices(), "value": run.name}, str(run.path)

    def cancel_adapt(self, session):
        if session is not None:
            session.request_cancel()
        return "cancelling: the steps done are kept"

    # -- video ----------------------------------------------------------------------------------------------

    def video_upload(self, session, path):
        """A clip uploaded: checked and probed, no model runs; ``(session, info, preview cleared)``."""
        s = self.session(session)
        if not path:
            raise UsageError("upload a video clip (MP4, MOV, WebM, ...)")
        clip = s.load_video(path)
        note = " Its frames come at a variable rate: they are re-timed at that rate." if clip.info.variable else ""
        return s, plain(clip.describe() + "." + note), None

    def _video_setup(self, s: EditSession, kind, target, neutral, alpha, beta, auto_beta, mapper, strength, method,
                     align, encoder):  # fmt: skip
        s._clip()  # these said before a model loads or a direction is computed
        s._framing(align or "auto")
        if (method or "auto") not in INVERSIONS:
            raise UsageError(f"video frames are inverted with {', '.join(INVERSIONS)}, got {str(method)[:40]!r}")
        edit, label, prompt = s.video_edit(kind, target, neutral, alpha, None if auto_beta else beta, mapper, strength)
        inversion = s.studio.video_inversion(method or "auto", encoder)
        return edit, label, prompt, inversion, align or "auto"

    def video_preview(self, session, kind, target, neutral, alpha, beta, auto_beta, mapper, strength, method, align,
                      encoder=None):  # fmt: skip
        """The edit on a few evenly spaced frames: ``(session, grid of crops above edits, info)``. The frames are
        aligned and inverted once per clip, inversion and framing; then a preview is one synthesis per frame.
        ``encoder``: a loaded encoder or its path instead of the catalogue's (library callers; not in the page)."""
        s = self.session(session)
        edit, label, _, inversion, align = self._video_setup(s, kind, target, neutral, alpha, beta, auto_beta, mapper,
                                                             strength, method, align, encoder)  # fmt: skip
        grid = s.preview_video(edit, inversion, align)
        frames = ", ".join(map(str, s.video_samples(inversion, align).indices))
        info = f"{label} on frames {frames} (top: the aligned crops; bottom: edited), inverted with {inversion.method}"
        return s, grid, plain(info)

    def video_render(self, session, kind, target, neutral, alpha, beta, auto_beta, mapper, strength, method, align,
                     progress=None, encoder=None):  # fmt: skip
        """Render the whole clip in a worker thread; yields ``(session, status, edited video, downloads)``,
        :data:`KEEP` where nothing changed. Cancel stops between frames; rendering again resumes there."""
        s = self.session(session)
        edit, label, prompt, inversion, align = self._video_setup(s, kind, target, neutral, alpha, beta, auto_beta,
                                                                  mapper, strength, method, align, encoder)  # fmt: skip
        done: dict[str, Any] = {}

        def work(put):
            done["run"] = s.render_video(edit, prompt, inversion, align, on_progress=lambda *p: put(p))

        clock = _StageClock()
        for stage, n, total in streamed("styleclip-video", work):
            line = clock.line(stage, n, total)
            if line is None:
                continue
            if progress is not None:
                progress((n, max(total, 1)), desc=VIDEO_STAGE_NAMES.get(stage, stage))
            yield s, plain(line), KEEP, KEEP
        run = done["run"]
        if run.stopped:
            yield s, "cancelled: the frames done are kept; Render again to resume where it stopped", KEEP, KEEP
            return
        flicker = run.metrics.get("flicker") or {}
        text = f"{run.frames} frames edited with {label} ({inversion.method})"
        if flicker.get("edited") is not None:
            text += f"; frame-to-frame change of the crops {flicker['edited']} (the source's: {flicker['source']})"
        if run.unedited:
            listed = ", ".join(map(str, run.unedited[:20])) + (" ..." if len(run.unedited) > 20 else "")
            text += f"; no face in {len(run.unedited)} frame(s), left as they were: {listed}"
        yield s, plain(text), str(run.edited), [str(p) for p in run.files]

    def cancel_video(self, session):
        if session is not None:
            session.request_cancel()
        return "cancelling: the frames done are kept; Render again to resume"

    # -- history and downloads --------------------------------------------------------------------------

    def accept(self, session):
        s = self.session(session)
        s.accept()
        return (s, *self.view(s))

    def undo(self, session):
        s = self.session(session)
        s.undo()
        return (s, *self.view(s))

    def redo(self, session):
        s = self.session(session)
        s.redo()
        return (s, *self.view(s))

    def restore(self, session, index: int):
        s = self.session(session)
        s.restore(int(index))
        return (s, *self.view(s))

    def downloads(self, session):
        s = self.session(session)
        return [str(p) for p in s.downloads()]


def photo_info(edit: dict) -> str:
    """What the Photo tab says about an inversion: the method, why it was chosen, its time and metrics (Markdown)."""
    why = str(edit.get("why") or "")
    why = "as picked" if not why or why.startswith("--method") else why
    metrics = ", ".join(f"{k} {v}" for k, v in edit.get("metrics", {}).items() if v is not None)
    text = f"Inverted with {edit['method']} ({why}) in {edit.get('seconds', 0):g} s: {metrics}"
    if edit.get("offsets"):
        text += f". Its edits are drawn with the photo's weight offsets ({edit['offsets']} layers)"
    return plain(text)


def photo_methods_label(G: Generator) -> str:
    known = inversions_for(G)
    return "inversion (this generator: " + (", ".join(known.values()) or "projection only") + ")"


def video_methods_label(G: Generator) -> str:
    known = inversions_for(G)
    return "inversion (this generator: " + (", ".join(known.values()) or "none known: videos need an encoder") + ")"


class _StageClock:
    """Progress lines for a render: the stage, frames done and an estimate of the stage's time left; None between
    two lines less than :data:`STATUS_EVERY` apart (a stage's first and last frames always get one)."""

    def __init__(self) -> None:
        self.stage, self.start, self.first, self.last = None, 0.0, 0, 0.0

    def line(self, stage: str, n: int, total: int) -> str | None:
        import time

        now = time.perf_counter()
        if stage != self.stage:
            self.stage, self.start, self.first, self.last = stage, now, n, 0.0
        elif n < total and now - self.last < STATUS_EVERY:
            return None
        self.last = now
        text = f"{VIDEO_STAGE_NAMES.get(stage, stage)}: {n} of {total} frames"
        if n > self.first and n < total:
            left = (now - self.start) / (n - self.first) * (total - n)
            text += f", about {left:.0f} s left in this stage"
        return text


def _preview(path: Path) -> np.ndarray:
    """A sample grid as the page shows it: ``[H, W, 3]`` uint8, its longer side at most SAMPLE_PREVIEW_PX."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((SAMPLE_PREVIEW_PX, SAMPLE_PREVIEW_PX))
        return np.asarray(im)


def streamed(name: str, work: Callable[[Callable[[Any], None]], None]):
    """Run ``work(put)`` in a daemon thread named ``name`` and yield what it puts, as it puts it; once it returns,
    re-raise here whatever it raised (a long job streams its progress to the page while Gradio's worker waits)."""
    items: queue.Queue = queue.Queue()
    failed: list[BaseException] = []

    def run():
        try:
            work(items.put)
        except BaseException as exc:
            failed.append(exc)
        finally:
            items.put(_END)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    while (item := items.get()) is not _END:
        yield item
    thread.join()
    if failed:
        raise failed[0]


_END = object()


def _class(value) -> int | None:
    """The class box of conditional generators (hidden, and None, for the others)."""
    return None if value is None or value == "" else int(check_number(value, "the class", 0, 1e9))


def build_app(
    G: Generator,
    clip: ClipGuide | str | None = None,
    *,
    generator_name: str | None = None,
    relevance: str | Path | None = None,
    stats_samples: int = 100_000,
    concurrency: int = 1,
    limits: Limits | None = None,
    cache: str | Path | None = None,
    offline: bool | None = None,
    workdir: str | Path | None = None,
    title: str = "styleclip",
    precision: str = "auto",
    allow_paths: list[str | Path] | tuple = (),
    allow_urls: bool = False,
):
    """The web UI as a ``gradio.Blocks`` (mount it in FastAPI with ``gr.mount_gradio_app`` or ``.launch()`` it).

    Args:
        G: the generator every session edits.
        clip: a loaded :class:`ClipGuide`, or a name/path for :func:`styleclip.load_clip` (default ViT-B-32).
        generator_name: how to name the generator on the page and in reports.
        relevance: the relevance matrix for global directions (file / URL / catalogue name); None = the published
            one for the generator, or one precomputed here (else the page offers to compute one).
        stats_samples: latents for the style statistics (100,000 as StyleCLIP).
        concurrency: jobs that may run on the device at once; further requests queue.
        limits: upload limits (20 MB and 40 megapixels by default).
        workdir: parent of the per-session temporary folders (default: the system's temporary folder).
        precision: the networks' arithmetic ('auto': bf16 on CPUs with native bf16 and on GPUs, else fp32).
        allow_paths: server folders whose files page users may name (e.g. in the mapper box); by default they
            open only their uploads and catalogue names.
        allow_urls: let page users name http(s) URLs for the server to download (mappers).
    """
    gr = _gradio()
    from ..guidance.clip import load_clip

    guide = clip if isinstance(clip, ClipGuide) else load_clip(clip, device=G.device)
    from gradio.utils import get_upload_folder

    studio = Studio(
        G, guide, generator_name, stats_samples, relevance, cache, offline, limits, precision,
        allow_paths=allow_paths, allow_urls=allow_urls, upload_dirs=[get_upload_folder()],
    )  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="styleclip-ui-", dir=workdir))
    h = Handlers(studio, root)
    safe = readable_errors
    device = {"concurrency_id": "device", "concurrency_limit": max(1, int(concurrency))}
    limits = studio.limits
    texts = DEFAULT_TEXTS.get(studio.domain or "", ("a photo", "a photo at sunset"))
    tracked, bar = gr.Progress(track_tqdm=True), gr.Progress()  # Gradio fills these in per call

    with gr.Blocks(title=title, delete_cache=(3600, 3600), analytics_enabled=False) as demo:
        state = gr.State(None, delete_callback=lambda s: s.close() if s is not None else None)
        gr.Markdown(
            f"# styleclip — edit with words\n{plain(studio.generator_name)} ({G.img_resolution} px) · CLIP "
            f"{plain(guide.name)} · {G.device}, {studio.precision}"
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=280), gr.Tabs():
                with gr.Tab("Seed"):
                    seed = gr.Number(0, label="seed", precision=0, minimum=0, elem_id="seed")
                    psi = gr.Slider(0, 1.5, 0.7, step=0.05, label="truncation ψ", elem_id="psi")
                    class_idx = gr.Number(0 if G.c_dim else None, label=f"class (0-{G.c_dim - 1})", precision=0,
                                          visible=G.c_dim > 0, elem_id="class")  # fmt: skip
                    with gr.Row():
                        seed_btn = gr.Button("Draw", variant="primary", elem_id="seed-draw")
                        random_btn = gr.Button("Random seed", elem_id="seed-random")
                with gr.Tab("Photo"):
                    photo = gr.File(label=f"photo (≤ {limits.max_upload_mb:g} MB)", type="filepath", elem_id="photo")
                    method = gr.Radio(PHOTO_METHODS, value="auto", label=photo_methods_label(G), elem_id="method")
                    photo_steps = gr.Number(0, label="steps (0 = the method's default)", precision=0)
                    photo_btn = gr.Button("Invert", variant="primary", elem_id="photo-invert")
                    photo_info = gr.Markdown()
                with gr.Tab("Latent"):
                    latent = gr.File(label="latent (.npy / .npz / .pt)", type="filepath", elem_id="latent")
                with gr.Tab("styleclip PNG"):
                    png = gr.File(
                        label="a PNG written by styleclip", type="filepath", file_types=[".png"], elem_id="png"
                    )
            with gr.Column(scale=3):
                with gr.Row():
                    before = gr.Image(label="before", type="numpy", format="png", interactive=False, height=360,
                                      elem_id="before")  # fmt: skip
                    after = gr.Image(label="after", type="numpy", format="png", interactive=False, height=360,
                                     elem_id="after")  # fmt: skip
                history_text = gr.Markdown(elem_id="history-text")
                with gr.Row():
                    accept_btn = gr.Button("✔ Accept", variant="primary", elem_id="accept")
                    undo_btn = gr.Button("↶ Undo", elem_id="undo")
                    redo_btn = gr.Button("↷ Redo", elem_id="redo")
                gallery = gr.Gallery(label="history (click a step to restore it)", columns=8, height=170,
                                     object_fit="contain", allow_preview=False, fit_columns=False,
                                     elem_id="history")  # fmt: skip

        with gr.Tabs():
            with gr.Tab("Global directions"):
                relevance_note = gr.Markdown(elem_id="relevance-note")
                with gr.Row():
                    neutral = gr.Textbox(texts[0], label="neutral", elem_id="neutral")
                    target = gr.Textbox(texts[1], label="target", elem_id="target")
                with gr.Row():
                    alpha = gr.Slider(*ALPHA_RANGE, 0.0, step=0.1, label="α (strength)", elem_id="alpha")
                    beta = gr.Slider(*BETA_RANGE, 0.15, step=0.01, label="β (disentanglement)", elem_id="beta")
                    auto_beta = gr.Checkbox(False, label="automatic β", elem_id="auto-beta")
                channels = gr.Markdown(elem_id="channels")
                with gr.Row():
                    sweep_btn = gr.Button("α sweep", elem_id="sweep")
                    relevance_btn = gr.Button("Compute relevance (gradient method)", elem_id="compute-relevance")
                sweep = gr.Image(label="α sweep", type="numpy", format="png", interactive=False)
            with gr.Tab("Mapper"):
                with gr.Row():
                    mapper_name = gr.Textbox(
                        "", label="mapper (a catalogue name: styleclip-mapper:mohawk"
                        + (", a URL" if studio.allow_urls else "")
                        + (", a file of the server's allowed folders" if studio.allow_paths else "")
                        + "; Enter loads it)",
                        scale=3, elem_id="mapper-name",
                    )  # fmt: skip
                    strength = gr.Slider(-1, 3, 0.1, step=0.05, label="strength (0.1 as StyleCLIP; ~1.5 for ADA "
                                         "generators)", elem_id="strength")  # fmt: skip
                mapper_info = gr.Markdown(elem_id="mapper-info")
            with gr.Tab("Optimisation"):
                with gr.Row():
                    prompt = gr.Textbox(texts[1], label="prompt", scale=3, elem_id="prompt")
                    steps = gr.Number(150, label="steps", precision=0, minimum=1, elem_id="steps")
                with gr.Row():
                    l2 = gr.Number(0.008, label="λ_L2 (0.002 big changes … 0.06 subtle)", elem_id="l2")
                    id_weight = gr.Number(
                        0.005 if studio.domain == "face" else 0.0,
                        label="λ_ID (identity: 0.005 for faces)",
                        minimum=0,
                        elem_id="id-weight",
                    )
                    space = gr.Radio(["w+", "w", "s"], value="w+", label="space")
                    layers = gr.Radio(LAYER_CHOICES, value="all", label="layers")
                with gr.Row():
                    loss = gr.Radio(["global", "directional"], value="global", label="loss")
                    opt_neutral = gr.Textbox("", label="neutral (directional loss)")
                with gr.Row():
                    run_btn = gr.Button("Run", variant="primary", elem_id="run")
                    cancel_btn = gr.Button("Cancel (keep the best)", variant="stop", elem_id="cancel")
                opt_status = gr.Markdown(elem_id="opt-status")
                video = gr.Video(label="trajectory", interactive=False, height=320, elem_id="video")
            with gr.Tab("Style", elem_id="style-tab"):
                with gr.Row():
                    style_name = gr.Dropdown(
                        studio.style_names(), value=None, allow_custom_value=True, scale=3, elem_id="style-name",
                        label="adapted generator (a catalogue name such as nada:sketch, one trained or uploaded here"
                        + (", a URL" if studio.allow_urls else "")
                        + (", a file of the server's allowed folders" if studio.allow_paths else "") + ")",
                    )  # fmt: skip
                    style_file = gr.File(label="or upload one (.safetensors / .pt / .pkl)", type="filepath",
                                         scale=1, elem_id="style-file")  # fmt: skip
                with gr.Row():
                    style_base = gr.Image(label="this server's generator", type="numpy", format="png",
                                          interactive=False, height=320, elem_id="style-base")  # fmt: skip
                    style_after = gr.Image(label="the adapted generator", type="numpy", format="png",
                                           interactive=False, height=320, elem_id="style-after")  # fmt: skip
                style_info = gr.Markdown(elem_id="style-info")
                with gr.Accordion("Train a style from two texts (StyleGAN-NADA)", open=False):
                    with gr.Row():
                        style_source = gr.Textbox("photo", label="source (what the generator draws now)",
                                                  elem_id="style-source")  # fmt: skip
                        style_target = gr.Textbox("sketch", label="target (the new style)", elem_id="style-target")
                    with gr.Row():
                        style_steps = gr.Number(300, label="steps", precision=0, minimum=1, elem_id="style-steps")
                        style_layers = gr.Radio(list(ADAPT_LAYERS), value="auto", elem_id="style-layers",
                                                label="layers (auto: NADA's adaptive choice; nada: its fixed set)")  # fmt: skip
                    with gr.Row():
                        train_btn = gr.Button("Train", variant="primary", elem_id="style-train")
                        train_cancel = gr.Button("Cancel (keep the steps done)", variant="stop",
                                                 elem_id="style-cancel")  # fmt: skip
                    train_status = gr.Markdown(elem_id="style-status")
                    style_samples = gr.Image(label="samples (base | adapted)", type="numpy", format="png",
                                             interactive=False, elem_id="style-samples")  # fmt: skip
                    style_download = gr.File(label="the trained generator (generator.safetensors)",
                                             interactive=False, elem_id="style-download")  # fmt: skip
            with gr.Tab("Video", elem_id="video-tab"):
                with gr.Row():
                    clip_file = gr.File(
                        label=f"clip (≤ {limits.max_upload_mb:g} MB, ≤ {limits.max_video_frames} frames)",
                        type="filepath", file_types=VIDEO_FILE_TYPES, scale=1, elem_id="video-file",
                    )  # fmt: skip
                    with gr.Column(scale=3):
                        clip_info = gr.Markdown("Upload a short clip; the edit is the one set in the tab picked here.",
                                                elem_id="video-info")  # fmt: skip
                        with gr.Row():
                            clip_edit = gr.Radio(VIDEO_EDITS, value="direction", label="edit every frame with",
                                                 elem_id="video-edit")  # fmt: skip
                            clip_method = gr.Radio(list(INVERSIONS), value="auto", label=video_methods_label(G),
                                                   elem_id="video-method")  # fmt: skip
                            clip_align = gr.Radio(list(VIDEO_FRAMINGS), value="auto", elem_id="video-align",
                                                  label="framing (auto: the face for face generators, else the "
                                                  "centre square)")  # fmt: skip
                with gr.Row():
                    clip_preview_btn = gr.Button("Preview on 3 frames", elem_id="video-preview-btn")
                    clip_render_btn = gr.Button("Render the clip", variant="primary", elem_id="video-render")
                    clip_cancel = gr.Button("Cancel (keep the frames done)", variant="stop", elem_id="video-cancel")
                clip_status = gr.Markdown(elem_id="video-status")
                clip_preview = gr.Image(label="preview: aligned crops (top), edited (bottom)", type="numpy",
                                        format="png", interactive=False, height=300, elem_id="video-preview")  # fmt: skip
                with gr.Row():
                    clip_out = gr.Video(label="edited", interactive=False, height=320, elem_id="video-out")
                    clip_files = gr.File(label="downloads: edited.mp4, comparison.mp4 (source | edited), report.json",
                                         file_count="multiple", interactive=False, elem_id="video-downloads")  # fmt: skip
        with gr.Row():
            downloads_btn = gr.Button("Prepare downloads", elem_id="prepare-downloads")
        files = gr.File(label="downloads: PNG (with every parameter), latent, video, report, history zip",
                        file_count="multiple", interactive=False, elem_id="downloads")  # fmt: skip

        view = [before, after, gallery, history_text]

        def start(s, seed, psi, class_idx, request):
            out = h.start(s, seed, psi, class_idx)
            h.open[request.session_hash] = out[0]
            return out

        def end(request):
            h.end(request.session_hash)

        # real classes, not the strings `from __future__ import annotations` makes: how Gradio knows what to pass
        start.__annotations__["request"] = end.__annotations__["request"] = gr.Request
        demo.load(safe(start), [state, seed, psi, class_idx], [state, *view, relevance_note], **device)
        demo.unload(end)
        seed_btn.click(safe(h.seed), [state, seed, psi, class_idx], [state, *view], **device)
        random_btn.click(safe(h.random_seed), [state, psi, class_idx], [state, seed, *view], **device)
        photo_btn.click(
            safe(lambda s, p, m, n, progress=tracked: h.photo(s, p, m, n)),
            [state, photo, method, photo_steps], [state, *view, photo_info], **device,
        )  # fmt: skip
        latent.upload(safe(h.latent), [state, latent], [state, *view], **device)
        png.upload(
            safe(h.png), [state, png, target, neutral, alpha, beta, prompt],
            [state, *view, target, neutral, alpha, beta, prompt], **device,
        )  # fmt: skip

        live = {"trigger_mode": "always_last", "show_progress": "hidden", **device}
        direction_in = [state, target, neutral, alpha, beta, auto_beta]
        direction_out = [state, after, channels, history_text]
        for trigger in (alpha.change, beta.change, auto_beta.change, target.submit, neutral.submit):
            trigger(safe(h.direction), direction_in, direction_out, **live)
        sweep_btn.click(safe(h.sweep), direction_in, [sweep], **device)
        for trigger in (strength.change, mapper_name.submit):
            trigger(safe(h.mapper), [state, mapper_name, strength], [state, after, mapper_info, history_text], **live)
        relevance_btn.click(safe(lambda progress=tracked: h.compute_relevance()), None, [relevance_note], **device)

        def run(s, *args, progress=bar):
            for outputs in h.optimize(s, *args, progress=progress):
                yield tuple(gr.skip() if x is KEEP else x for x in outputs)

        run_btn.click(
            readable_errors(run), [state, prompt, steps, l2, id_weight, space, layers, loss, opt_neutral],
            [state, after, opt_status, video, before, gallery, history_text], **device,
        )  # fmt: skip
        cancel_btn.click(h.cancel, [state], [opt_status], queue=False)

        style_view = [state, style_base, style_after, style_info]

        def shown(value):
            return gr.skip() if value is KEEP else value

        def picker(update):
            return gr.skip() if update is KEEP else gr.Dropdown(choices=update["choices"], value=update["value"])

        # a catalogue style downloads on first use: its progress bar shows
        style_name.change(safe(lambda s, spec, progress=tracked: h.style(s, spec)), [state, style_name], style_view,
                          **device)  # fmt: skip
        after.change(safe(lambda s: tuple(map(shown, h.follow_style(s)))), [state], style_view, **live)

        def upload_style(s, path):
            s, update = h.style_upload(s, path)
            return s, picker(update)

        style_file.upload(safe(upload_style), [state, style_file], [state, style_name], **device)

        def train(s, *args, progress=bar):
            for out, status, samples, update, path in h.adapt(s, *args, progress=progress):
                yield out, status, shown(samples), picker(update), shown(path)

        train_btn.click(
            readable_errors(train), [state, style_source, style_target, style_steps, style_layers],
            [state, train_status, style_samples, style_name, style_download], **device,
        )  # fmt: skip
        train_cancel.click(h.cancel_adapt, [state], [train_status], queue=False)

        clip_file.upload(safe(h.video_upload), [state, clip_file], [state, clip_info, clip_preview], **device)
        clip_in = [state, clip_edit, target, neutral, alpha, beta, auto_beta, mapper_name, strength, clip_method,
                   clip_align]  # fmt: skip

        def preview_clip(s, kind, target, neutral, alpha, beta, auto_beta, mapper, strength, method, align,
                         progress=tracked):  # fmt: skip
            return h.video_preview(s, kind, target, neutral, alpha, beta, auto_beta, mapper, strength, method, align)

        clip_preview_btn.click(safe(preview_clip), clip_in, [state, clip_preview, clip_status], **device)

        def render_clip(s, *args, progress=bar):
            for out, status, edited, downloads in h.video_render(s, *args, progress=progress):
                yield out, status, shown(edited), shown(downloads)

        clip_render_btn.click(readable_errors(render_clip), clip_in, [state, clip_status, clip_out, clip_files],
                              **device)  # fmt: skip
        clip_cancel.click(h.cancel_video, [state], [clip_status], queue=False)

        accept_btn.click(safe(h.accept), [state], [state, *view], **device)
        undo_btn.click(safe(h.undo), [state], [state, *view], **device)
        redo_btn.click(safe(h.redo), [state], [state, *view], **device)

        def restore(s, evt):
            return h.restore(s, evt.index)

        restore.__annotations__["evt"] = gr.SelectData

        gallery.select(safe(restore), [state], [state, *view], **device)
        downloads_btn.click(safe(h.downloads), [state], [files], **device)

    demo.queue(default_concurrency_limit=max(1, int(concurrency)))
    demo.styleclip_studio = studio  # for tests and benchmarks: the shared assets behind the page
    demo.styleclip_handlers = h
    demo.styleclip_root = root
    return demo


def remove_workdir(demo) -> None:
    """Delete every session folder of an app built by :func:`build_app` (call after it closes)."""
    shutil.rmtree(getattr(demo, "styleclip_root", ""), ignore_errors=True)
