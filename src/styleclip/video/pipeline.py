"""``edit_video``: a clip edited with words, frame by frame, and stitched back into the footage.

Stages, each resumable per frame (its outputs are written atomically under ``OUTDIR/work/``, so a crash loses at most
the frame under way and a rerun starts where the last one stopped):

1. ``detect``: the face's crop square in every frame (68 landmarks, the face nearest the previous frame's), or a
   fixed square for other domains; then smoothed over time (:mod:`styleclip.video.track`) into ``track.json``;
2. ``aligned``: every frame's aligned crop at the generator's resolution;
3. ``latents``: every crop inverted (e4e, ReStyle or HyperStyle, in batches; HyperStyle's weight offsets kept per
   frame);
3b. with ``pti``: one copy of the generator tuned on every frame's pivot jointly (STIT's recipe), saved as
   ``pti.safetensors`` (the file on disk marks the stage done);
3c. with a prompt (:class:`~styleclip.edits.shared_delta.SharedDeltaEdit`): one shared change optimised over a few
   key frames, saved as ``delta.npz``;
4. ``edited``: the same edit applied to every frame's codes (``NNNNNN.npz``), drawn (with the frame's offsets, or
   by the tuned generator);
5. composite: the edited crops pasted back through the inverse alignment with a feathered mask, written to
   ``edited.mp4`` at the source's frame rate and size with its sound, beside ``comparison.mp4`` (source | edited)
   and ``report.json`` (per-frame CLIP score and, for faces, identity; flicker: the frame-to-frame change of the
   edited crops against the source crops').

Frames without a face pass through unedited and are listed in the report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..edits.base import Edit
from ..edits.shared_delta import SharedDeltaEdit
from ..errors import UsageError
from ..latents import Codes
from ..nets.stylegan2 import Generator
from ..utils.files import atomic_save_arrays, atomic_write_text, make_folder
from . import frames as vio
from .stitch import crop, paste
from .track import CENTER_SIGMA, XY_SIGMA, Square, pick_face, smooth, square_from_landmarks

INVERSIONS = ("auto", "hyperstyle", "restyle", "e4e")  # per-frame projection would take hours: encoders only
OUTPUTS = ("edited.mp4", "comparison.mp4", "report.json", "work")
PTI_EPOCHS = 80  # STIT's README: --num_pti_steps 80, each a pass over every frame
PTI_LR = 3e-5  # STIT's --pti_learning_rate (Adam, betas 0.9 / 0.999)
PTI_L2 = 10.0  # STIT's --l2_lambda; LPIPS weighs 1


@dataclass
class VideoResult:
    """What :func:`edit_video` made: the paths, the frames left unedited (no face), and the measures."""

    edited: Path
    comparison: Path
    report: Path
    frames: int
    unedited: list[int] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def _name(index: int) -> str:
    return f"{index:06d}"


class _Stages:
    """``OUTDIR/work/<stage>/NNNNNN.*``, and ``settings.json``: what the saved stages were made with. A rerun with
    other settings would mix two edits in one clip, so it is refused (use ``--overwrite`` or another folder)."""

    def __init__(self, outdir: Path, settings: dict, ctx=None) -> None:
        from ..utils.distributed import Context

        self.ctx = ctx if ctx is not None else Context()
        self.work = outdir / "work"
        if self.work.is_symlink():
            raise UsageError(f"{self.work} is a link, and styleclip writes no output through a link: remove it")
        record = self.work / "settings.json"
        wanted = json.loads(json.dumps(settings, default=str))
        if record.is_file():
            try:
                was = json.loads(record.read_text())
            except ValueError:
                was = None
            if was != wanted:
                changed = sorted(k for k in wanted if not isinstance(was, dict) or was.get(k) != wanted[k])
                raise UsageError(
                    f"{self.work} holds an earlier run with other settings ({', '.join(changed) or 'unreadable'}): "
                    "add --overwrite to start again, or use another --outdir"
                )
        for stage in ("detect", "aligned", "latents", "offsets", "edited"):
            make_folder(self.work / stage)
        atomic_write_text(record, json.dumps(wanted, indent=1))

    def mine(self, frames: list[int]) -> list[int]:
        """This process's share of ``frames`` under torchrun (every ``world``-th), all of them alone."""
        return frames[self.ctx.rank :: self.ctx.world]

    def span(self, total: int) -> tuple[int, int]:
        """This process's contiguous run of frames ``[start, stop)``: detection follows the face from frame to frame."""
        per = -(-total // self.ctx.world)
        return min(self.ctx.rank * per, total), min((self.ctx.rank + 1) * per, total)

    def path(self, stage: str, index: int, suffix: str) -> Path:
        return self.work / stage / f"{_name(index)}{suffix}"


def edit_video(
    video: str | Path,
    G: Generator,
    edit: Edit | str,
    outdir: str | Path,
    *,
    method: str = "auto",
    encoder=None,
    hyperstyle=None,
    invert_steps: int | None = None,
    pti: bool = False,
    pti_steps: int = PTI_EPOCHS,
    lpips=None,
    batch_size: int = 8,
    align: str = "auto",
    center_sigma: float = CENTER_SIGMA,
    xy_sigma: float = XY_SIGMA,
    max_frames: int | None = vio.MAX_FRAMES,
    guide=None,
    prompt: str | None = None,
    identity=None,
    parser=None,
    stitch_tuning: bool = False,
    stitch_steps: int = 100,
    border_loss_threshold: float | None = None,
    progress: bool = True,
    callback: Callable[[str, int, int], None] | None = None,
    ctx=None,
) -> VideoResult:
    """Edit every frame of ``video`` with ``edit`` and stitch the edited face back into the footage.

    Args:
        video: an MP4/MOV/WebM/... file (frames at most 4K; at most ``max_frames`` frames, None = no limit).
        G: the generator (StyleGAN2 with an encoder for HyperStyle/ReStyle/e4e inversion).
        edit: a ready :class:`~styleclip.edits.base.Edit` (a global direction at a strength, a mapper, a
            :class:`~styleclip.edits.shared_delta.SharedDeltaEdit`), applied to every frame's codes alike, so that
            the edit holds still over time; or a text prompt (a shared-change edit with its defaults, optimised with
            ``guide``).
        outdir: ``edited.mp4``, ``comparison.mp4``, ``report.json`` and the resumable ``work/`` folder.
        method: the inversion: 'auto' (the most faithful encoder the catalogue knows), 'hyperstyle', 'restyle', 'e4e'.
        encoder, hyperstyle: loaded models or names/paths instead of the catalogue's.
        pti: after inversion, tune one copy of ``G`` on every frame's pivot jointly (STIT: frames in order, one
            Adam step per frame per epoch, lr 3e-5, 10·MSE + LPIPS at full resolution); it draws every edited frame.
            Not with HyperStyle, whose offsets already tune the weights per frame.
        pti_steps: PTI's epochs over the frames (80, STIT's README).
        lpips: PTI's perceptual distance: 'vgg' (default, as :func:`styleclip.invert`), 'alex', 'off', an
            LPIPS-VGG calibration file, or a loaded LPIPS.
        align: 'auto' (faces: landmarks per frame; other domains: the frame's centre square), 'face', 'center'.
        center_sigma, xy_sigma: the temporal smoothing of the crop squares, in frames (STIT's 1 and 3).
        guide, prompt: a CLIP model and the edit's text, for the per-frame CLIP score in the report (optional).
        identity: an ArcFace :class:`~styleclip.guidance.identity.IdentityLoss` for per-frame identity, or a function
            that loads one when the measures are taken (optional).
        parser: a face-parsing BiSeNet (a loaded :class:`~styleclip.video.masks.FaceParser`, a name such as
            ``face-parsing:bisenet`` or a path): STIT's parsed-face mask for stitching instead of the feathered square.
        stitch_tuning: STIT's stitching tuning (:mod:`styleclip.video.stitch_tuning`): per frame, a fresh copy of the
            drawing generator tuned ``stitch_steps`` Adam steps (lr 3e-4) so that the edited face matches the source
            crop on the border ring (the parser's, else the feathered square's ramp) and keeps the edit on the face;
            ``border_loss_threshold`` stops a frame early (STIT's README: 0.005, or 0.002 for exact backgrounds).
        ctx: the :class:`~styleclip.utils.distributed.Context` under ``torchrun`` (None: joined from the
            environment): the frames' detection, alignment, inversion and edit are shared out between the processes;
            PTI, the shared prompt change, the stitching and the report are process 0's.
        callback: ``callback(stage, done, total)`` after every frame; raising ``KeyboardInterrupt`` there stops the
            run between frames (rerun the same call to resume).

    Returns:
        A :class:`VideoResult`.
    """
    if method not in INVERSIONS:
        raise UsageError(f"video frames are inverted with {', '.join(INVERSIONS)}; got {method!r}")
    if align not in ("auto", "face", "center"):
        raise UsageError(f"--align must be auto, face or center for a video, got {align!r}")
    if min(center_sigma, xy_sigma) < 0:
        raise UsageError("the smoothing sigmas must be >= 0 (0: no smoothing)")
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if pti:
        from ..inversion.invert import PTI_WITH_HYPERSTYLE

        if method == "hyperstyle" or hyperstyle is not None:
            raise UsageError(PTI_WITH_HYPERSTYLE)
        if not (isinstance(pti_steps, int) and not isinstance(pti_steps, bool) and 1 <= pti_steps <= 100_000):
            raise UsageError(f"--pti-steps must be 1 to 100000 epochs, got {pti_steps!r}")
    if isinstance(edit, str):
        if guide is None:
            raise UsageError("a prompt edit is optimised with CLIP: pass guide= (a loaded CLIP model)")
        edit = SharedDeltaEdit(edit, guide)
    if isinstance(edit, SharedDeltaEdit) and prompt is None:
        prompt = edit.prompt
    info = vio.probe(video, max_frames)
    outdir = Path(outdir)
    face = align == "face" or (align == "auto" and G.meta.get("domain") == "face")
    from ..stylespace import generator_fingerprint

    settings = {
        "video": {"path": str(info.path.resolve()), "frames": info.frames, "size": list(info.size)},
        "generator": generator_fingerprint(G), "method": method, "encoder": (getattr(encoder, "source", None) or str(encoder)) if encoder else None,
        "hyperstyle": (getattr(hyperstyle, "name", None) or str(hyperstyle)) if hyperstyle else None, "invert_steps": invert_steps, "face": face,
        "center_sigma": center_sigma, "xy_sigma": xy_sigma, "edit": edit.describe(),
    }  # fmt: skip
    pti_settings = None
    if pti:  # only when asked: runs made without PTI keep their recorded settings
        pti_settings = {"epochs": pti_steps, "lr": PTI_LR, "l2_weight": PTI_L2, "lpips_weight": 1.0,
                        "lpips": _lpips_name(lpips), "noise_mode": "const"}  # fmt: skip
        settings["pti"] = pti_settings
    tuning = None
    if stitch_tuning:  # only when asked: runs made without it keep their recorded settings
        from .stitch_tuning import tuning_settings

        tuning = tuning_settings(stitch_steps, threshold=border_loss_threshold, parser=parser is not None)
        settings["stitch_tuning"] = tuning
    from ..utils.distributed import setup

    own_ctx = ctx is None
    ctx = setup(G.device) if own_ctx else ctx
    try:
        return _run(
            info, G, edit, outdir, settings, pti_settings, face, ctx, method=method, encoder=encoder,
            hyperstyle=hyperstyle, invert_steps=invert_steps, pti=pti, lpips=lpips, batch_size=batch_size,
            center_sigma=center_sigma, xy_sigma=xy_sigma, guide=guide, prompt=prompt, identity=identity,
            parser=parser, tuning=tuning, progress=progress and ctx.is_main, callback=callback,
        )  # fmt: skip
    finally:
        if own_ctx:
            ctx.close()


def _run(info, G, edit, outdir: Path, settings: dict, pti_settings, face: bool, ctx, *, method, encoder, hyperstyle,
         invert_steps, pti, lpips, batch_size, center_sigma, xy_sigma, guide, prompt, identity, parser, tuning,
         progress, callback) -> VideoResult:  # fmt: skip
    stages = _Stages(outdir, settings, ctx)
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}

    def timed(stage: str, fn):
        t = time.perf_counter()
        out = fn()
        seconds[stage] = round(time.perf_counter() - t, 2)
        return out

    squares = timed("detect", lambda: _detect(info, stages, face, center_sigma, xy_sigma, progress, callback))
    timed("align", lambda: _align(info, stages, squares, G.img_resolution, progress, callback))
    ctx.barrier()
    inversion = timed("invert", lambda: _invert(info, stages, squares, G, method, encoder, hyperstyle, invert_steps,
                                                batch_size, progress, callback, pti))  # fmt: skip
    ctx.barrier()
    drawer = G
    if pti:  # one generator over all frames: process 0 tunes it, the others read it from work/
        if ctx.is_main:
            drawer = timed("pti", lambda: _pti(stages, squares, G, pti_settings, lpips, progress, callback))
        ctx.barrier()
        if not ctx.is_main:
            drawer = _pti(stages, squares, G, pti_settings, lpips, False, None)
    keys = None
    if isinstance(edit, SharedDeltaEdit):  # one change for all frames: process 0 fits it, the others read it
        if ctx.is_main:
            keys = timed("prompt", lambda: _fit_shared(stages, squares, drawer, edit, progress, callback))
        ctx.barrier()
        if not ctx.is_main:
            keys = _fit_shared(stages, squares, drawer, edit, False, None)
    if parser is not None:  # before the edit: stitching tuning takes its border ring from the parsed source crop
        from .masks import FaceParser, load_face_parser

        if not isinstance(parser, FaceParser):
            parser = load_face_parser(parser, device=G.device)
    timed("edit", lambda: _edit(info, stages, squares, drawer, edit, batch_size, progress, callback, tuning, parser))
    ctx.barrier()
    unedited = [i for i, s in enumerate(squares) if s is None]
    if not ctx.is_main:  # the stitching, the videos and the report are process 0's
        return VideoResult(outdir / "edited.mp4", outdir / "comparison.mp4", outdir / "report.json", info.frames,
                           unedited, {})  # fmt: skip
    result = timed("composite", lambda: _composite(info, stages, squares, outdir, progress, callback, parser))
    if callable(identity) and not isinstance(identity, torch.nn.Module):
        identity = identity()  # loaded only now: a refused or interrupted run never waits for it
    metrics = timed("measure", lambda: _measure(stages, squares, G, guide, prompt, identity, batch_size))
    report = {
        "video": str(info.path),
        "frames": info.frames,
        "fps": info.fps,
        "size": list(info.size),
        "audio": result["audio"],
        "variable_frame_rate": info.variable,
        "edit": edit.describe(),
        "inversion": inversion,
        "pti": pti_settings,
        "key_frames": keys,
        "alignment": {"mode": "face" if face else "center", "center_sigma": center_sigma, "xy_sigma": xy_sigma},
        "mask": "face-parsing" if parser is not None else "feathered square",
        "stitch_tuning": tuning,
        "unedited_frames": unedited,
        "metrics": metrics,
        "seconds": {**seconds, "total": round(time.perf_counter() - t0, 2)},
        "outputs": ["edited.mp4", "comparison.mp4", "report.json"],
    }
    if info.variable:
        report["note"] = (f"the source's frames come at a variable rate; they were re-timed at its nominal "
                          f"{info.fps:g} fps")  # fmt: skip
    path = outdir / "report.json"
    atomic_write_text(path, json.dumps(report, indent=1, default=str))
    return VideoResult(outdir / "edited.mp4", outdir / "comparison.mp4", path, info.frames, unedited, metrics)


def _bar(progress: bool, total: int, desc: str, done: int):
    return tqdm(total=total, initial=done, desc=desc, unit="frame", disable=not progress or None, leave=False)


# -- 1. where the face is ---------------------------------------------------------------------------------------


def _detect(info, stages: _Stages, face: bool, center_sigma, xy_sigma, progress, callback) -> list[Square | None]:
    track = stages.work / "track.json"
    settings = {"face": face, "center_sigma": center_sigma, "xy_sigma": xy_sigma, "frames": info.frames}
    if track.is_file():
        saved = json.loads(track.read_text())
        if saved.get("settings") == settings:
            return [Square.from_list(s) if s is not None else None for s in saved["squares"]]
    first, stop = stages.span(info.frames)
    start = first
    while start < stop and stages.path("detect", start, ".json").is_file():  # resumed: the frames done before
        start += 1
    previous = _saved_square(stages, start - 1) if start > first else None
    bar = _bar(progress and stages.ctx.is_main, stop - first, "faces" if face else "frames", start - first)
    for index, frame in vio.read_frames(info, start):
        if index >= stop:
            break
        if face:
            from ..io.align import detect_faces

            found = pick_face(detect_faces(Image.fromarray(frame)), previous)
            square = square_from_landmarks(found.landmarks) if found is not None else None
        else:
            h, w = frame.shape[:2]
            half = min(h, w) / 2
            square = Square(np.array([w / 2, h / 2]), np.array([half, 0.0]), np.array([0.0, half]))
        previous = square or previous
        atomic_write_text(stages.path("detect", index, ".json"), json.dumps(square.to_list() if square else None))
        bar.update(1)
        if callback is not None:
            callback("detect", index + 1 - first, stop - first)
    bar.close()
    stages.ctx.barrier()  # every process smooths all the frames' squares: the same numbers give the same track
    raw = [_saved_square(stages, i) for i in range(info.frames)]
    if face and not any(raw):
        raise UsageError(f"{info.path}: no face found in any frame; for other subjects use --align center")
    squares = smooth(raw, center_sigma, xy_sigma)
    if stages.ctx.is_main:
        text = json.dumps({"settings": settings, "squares": [s.to_list() if s else None for s in squares]})
        atomic_write_text(track, text)
    return squares


def _saved_square(stages: _Stages, index: int) -> Square | None:
    value = json.loads(stages.path("detect", index, ".json").read_text())
    return Square.from_list(value) if value is not None else None


# -- 2. aligned crops -------------------------------------------------------------------------------------------


def _align(info, stages: _Stages, squares, size: int, progress, callback) -> None:
    todo = stages.mine([i for i, s in enumerate(squares) if s is not None])
    todo = [i for i in todo if not stages.path("aligned", i, ".png").is_file()]
    if not todo:
        return
    bar = _bar(progress, len(todo), "align", 0)
    wanted = set(todo)
    for index, frame in vio.read_frames(info, min(todo)):
        if index not in wanted:
            continue
        from ..io.images import save_png

        save_png(crop(Image.fromarray(frame), squares[index], size), stages.path("aligned", index, ".png"))
        bar.update(1)
        if callback is not None:
            callback("align", len(todo) - len(wanted) + 1, len(todo))
        wanted.discard(index)
        if not wanted:
            break
    bar.close()


def _crop_tensor(stages: _Stages, indices: list[int], device) -> torch.Tensor:
    from ..io.photos import to_tensor

    return torch.cat([to_tensor(Image.open(stages.path("aligned", i, ".png")).convert("RGB"), device) for i in indices])


# -- 3. inversion ----------------------------------------------------------------------------------------------


def _invert(info, stages, squares, G, method, encoder, hyperstyle, steps, batch_size, progress, callback,
            pti=False) -> dict:  # fmt: skip
    from ..inversion.encoders import Encoder, encode, load_encoder
    from ..inversion.invert import choose_method, hyperstyle_and_encoder, inversions_for

    why = f"--method {method}"
    if method == "auto":
        method, why = choose_method(G, encoder, hyperstyle, pti)
        why = f"auto: {why}"
        if method == "project":
            raise UsageError("no encoder is known for this generator, and projecting every frame would take hours: "
                             "pass --encoder (e4e / ReStyle) or --hyperstyle")  # fmt: skip
    known = inversions_for(G)
    model = None
    if method == "hyperstyle":
        model, encoder = hyperstyle_and_encoder(G, hyperstyle, encoder, known)
    elif not isinstance(encoder, Encoder):
        name = encoder or known.get(method)
        if name is None:
            raise UsageError("no encoder is known for this generator: pass --encoder")
        encoder = load_encoder(name, device=G.device)
        method = encoder.kind if method == "encoder" else method
    todo = stages.mine([i for i, s in enumerate(squares) if s is not None])
    todo = [i for i in todo if not stages.path("latents", i, ".npy").is_file()]
    bar = _bar(progress, len(todo), f"invert ({method})", 0)
    for k in range(0, len(todo), batch_size):
        chunk = todo[k : k + batch_size]
        photos = _crop_tensor(stages, chunk, G.device)
        with torch.no_grad():
            if model is not None:
                from ..inversion.hyperstyle import N_ITERS, hyperstyle_invert, save_offsets
                from ..stylespace import generator_fingerprint

                result = hyperstyle_invert(model, encoder, G, photos, n_iters=steps or N_ITERS)
                ws = result.ws
                for j, i in enumerate(chunk):  # the offsets before the latent: a latent marks its frame done
                    mine = {name: d[j : j + 1] for name, d in result.offsets[-1].items()}
                    save_offsets(stages.path("offsets", i, ".safetensors"), mine, generator_fingerprint(G))
            else:
                ws = encode(encoder, G, photos, steps=steps)[-1]
        for j, i in enumerate(chunk):
            atomic_save_arrays(stages.path("latents", i, ".npy"), ws[j : j + 1].cpu().numpy())
        bar.update(len(chunk))
        if callback is not None:
            callback("invert", k + len(chunk), len(todo))
    bar.close()
    return {"method": method, "why": why, "steps": steps}


# -- 3b. pivotal tuning over every frame -------------------------------------------------------------------------


def _lpips_name(lpips) -> str:
    if lpips is None or isinstance(lpips, (str, Path)):
        return str(lpips or "vgg")
    return f"a loaded {type(lpips).__name__}"


def _pti(stages: _Stages, squares, G: Generator, settings: dict, lpips, progress, callback) -> Generator:
    """STIT's PTI: one copy of ``G``'s synthesis network tuned on every frame's (fixed) pivot, the frames visited in
    order with one Adam step each per epoch, loss 10·MSE + LPIPS on the full-resolution crop in ``[-1, 1]``. The
    tuned generator is written to ``work/pti.safetensors``; finding it there, a rerun skips the stage (a stop during
    tuning starts it again)."""
    import copy

    import torch.nn.functional as F

    from ..hub.generators import load_generator, save_generator
    from ..inversion.invert import distance_model
    from ..latents import load_latent
    from ..stylespace import generator_fingerprint

    path = stages.work / "pti.safetensors"
    if path.is_file():
        return load_generator(path, device=G.device).eval().requires_grad_(False)
    model, distance = distance_model(lpips, G.device, needed=lpips != "off")
    if model is not None:
        model = copy.copy(model)  # the caller's model keeps its own size limit
        model.max_size = None  # STIT compares at the generator's full resolution
        model.requires_grad_(False)
    frames = [i for i, s in enumerate(squares) if s is not None]
    pivots = [load_latent(stages.path("latents", i, ".npy"), G).to(G.device) for i in frames]
    tuned = copy.deepcopy(G).train()
    tuned.requires_grad_(False)
    tuned.synthesis.requires_grad_(True)  # the pivots are fixed and the mapping is never run: only synthesis moves
    opt = torch.optim.Adam(tuned.synthesis.parameters(), lr=settings["lr"], betas=(0.9, 0.999))
    total = settings["epochs"] * len(frames)
    bar = tqdm(total=total, desc="pivotal tuning (all frames)", unit="step", disable=not progress or None,
               leave=False)  # fmt: skip
    done = 0
    try:
        for _ in range(settings["epochs"]):
            for i, pivot in zip(frames, pivots, strict=True):
                target = _crop_tensor(stages, [i], G.device)  # read per step: memory stays bounded on long clips
                img = tuned.synthesize(pivot, modulation="fused", noise_mode="const")
                loss = settings["l2_weight"] * F.mse_loss(img, target)
                if model is not None:
                    loss = loss + settings["lpips_weight"] * model(img, target).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                done += 1
                bar.update(1)
                if callback is not None:
                    callback("pti", done, total)
    finally:
        bar.close()
    tuned = tuned.eval().requires_grad_(False)
    # a new network: the base's cached fingerprint must not carry over; the recipe goes with the weights
    tuned.meta = {k: v for k, v in G.meta.items() if k != "fingerprint"} | {
        "pti": {**settings, "distance": distance, "frames": len(frames), "base": generator_fingerprint(G)}
    }
    save_generator(tuned, path)
    return tuned


# -- 3c. one shared change for a prompt --------------------------------------------------------------------------


def key_frames(squares, count: int) -> list[int]:
    """``count`` frames evenly spaced among those with a face (the first and the last included)."""
    faces = [i for i, s in enumerate(squares) if s is not None]
    if not faces:
        return []
    picks = np.linspace(0, len(faces) - 1, min(count, len(faces))).round().astype(int)
    return sorted({faces[k] for k in picks})


def _fit_shared(stages: _Stages, squares, G: Generator, edit: SharedDeltaEdit, progress, callback) -> list[int]:
    """The prompt's one change, optimised over the key frames' pivots (drawn by ``G``: the tuned one after PTI) and
    saved as ``work/delta.npz``; a rerun loads it."""
    from ..latents import load_latent

    keys = key_frames(squares, edit.key_frames)
    path = stages.work / "delta.npz"
    if path.is_file():
        with np.load(path) as arrays:
            edit.load(dict(arrays), G)
        return keys
    ws = torch.cat([load_latent(stages.path("latents", i, ".npy"), G) for i in keys]).to(G.device)
    step = (lambda done, total: callback("prompt", done, total)) if callback is not None else None
    edit.fit(G, ws, progress=progress, callback=step)
    atomic_save_arrays(path, edit.arrays())
    return keys


# -- 4. the edit -----------------------------------------------------------------------------------------------


def _frame_generator(stages: _Stages, G: Generator, index: int, cache: dict) -> Generator:
    """``G``, or ``G`` with the frame's HyperStyle offsets (one working copy, rewritten in place per frame)."""
    path = stages.path("offsets", index, ".safetensors")
    if not path.is_file():
        return G
    from ..inversion.hyperstyle import OffsetDrawer, load_offsets

    if "drawer" not in cache:
        cache["drawer"] = OffsetDrawer(G)
    return cache["drawer"].set(load_offsets(path, G))


def _edit(info, stages, squares, G, edit: Edit, batch_size, progress, callback, tuning=None, parser=None) -> None:
    from ..io.images import save_png, to_pil
    from ..latents import load_latent

    todo = stages.mine([i for i, s in enumerate(squares) if s is not None])
    todo = [i for i in todo if not stages.path("edited", i, ".png").is_file()]
    bar = _bar(progress, len(todo), "edit", 0)
    cache: dict = {}
    with torch.no_grad():
        for n, i in enumerate(todo):
            ws = load_latent(stages.path("latents", i, ".npy"), G).to(G.device)
            edited = edit.apply(G, Codes(ws))
            drawer = _frame_generator(stages, G, i, cache)
            img = edited.image(drawer, noise_mode="const")
            if tuning is not None:  # STIT: the crop saved (and pasted) is the tuned generator's picture of the edit
                from .stitch_tuning import stitching_tuning, tuning_masks

                source = _crop_tensor(stages, [i], G.device)
                # parsed as _composite parses it (the PNG), so that the border ring and the paste mask agree
                masks = tuning_masks(Image.open(stages.path("aligned", i, ".png")).convert("RGB"), parser=parser)
                step = (lambda done, total: callback("tune", done, total)) if callback is not None else None
                img = stitching_tuning(drawer, edited, source, img, masks.border, masks.content,
                                       steps=tuning["steps"], lr=tuning["lr"],
                                       threshold=tuning["border_loss_threshold"], callback=step)  # fmt: skip
            atomic_save_arrays(stages.path("edited", i, ".npz"), edited.arrays())  # before the PNG that marks it done
            save_png(to_pil(img)[0], stages.path("edited", i, ".png"))
            bar.update(1)
            if callback is not None:
                callback("edit", n + 1, len(todo))
    bar.close()


# -- 5. stitching and the videos -------------------------------------------------------------------------------


def _composite(info, stages, squares, outdir: Path, progress, callback, parser=None) -> dict:
    from ..io.video import VideoWriter

    w, h = info.size
    size = (w - w % 2, h - h % 2)  # H.264 in yuv420p needs even sides: an odd last row or column is dropped
    bar = _bar(progress, info.frames, "stitch", 0)
    with VideoWriter(outdir / "edited.mp4", fps=info.fps) as out, VideoWriter(outdir / "comparison.mp4",
                                                                               fps=info.fps) as both:  # fmt: skip
        for index, frame in vio.read_frames(info):
            square = squares[index]
            result = frame
            if square is not None:
                edited = np.asarray(Image.open(stages.path("edited", index, ".png")).convert("RGB"))
                mask = None
                if parser is not None:  # STIT's mask: parsed on the source crop, never on the edit
                    from .masks import parsing_mask

                    source = Image.open(stages.path("aligned", index, ".png")).convert("RGB")
                    mask = parsing_mask(parser, source)
                    mask = mask if mask.max() > 0 else None  # no face parsed: the feathered square, not no edit
                result = paste(frame, edited, square, mask=mask)
            out.append(np.ascontiguousarray(result[: size[1], : size[0]]))
            both.append(np.ascontiguousarray(np.concatenate([frame, result], axis=1)[: size[1], : 2 * size[0]]))
            bar.update(1)
            if callback is not None:
                callback("stitch", index + 1, info.frames)
    bar.close()
    audio = vio.add_audio(outdir / "edited.mp4", info)
    vio.add_audio(outdir / "comparison.mp4", info)
    return {"audio": audio}


# -- 6. how steady and how strong ------------------------------------------------------------------------------


def _measure(stages, squares, G, guide, prompt, identity, batch_size) -> dict:
    """Flicker: the mean absolute change (0-255 levels) between consecutive edited crops, beside the same for the
    source's crops (the footage's own motion); per-frame CLIP score of the edited crops against ``prompt`` and, for
    faces, ArcFace identity between each source crop and its edit."""
    from ..io.photos import to_tensor

    frames = [i for i, s in enumerate(squares) if s is not None]
    change_src, change_edit, clip_scores, ident = [], [], [], []
    prev = None
    for k in range(0, len(frames), batch_size):
        chunk = frames[k : k + batch_size]
        src = [
            np.asarray(Image.open(stages.path("aligned", i, ".png")).convert("RGB"), dtype=np.float32) for i in chunk
        ]
        out = [np.asarray(Image.open(stages.path("edited", i, ".png")).convert("RGB"), dtype=np.float32) for i in chunk]
        for i, s, e in zip(chunk, src, out, strict=True):
            if prev is not None and prev[0] == i - 1:
                change_src.append(float(np.abs(s - prev[1]).mean()))
                change_edit.append(float(np.abs(e - prev[2]).mean()))
            prev = (i, s, e)
        with torch.no_grad():
            if guide is not None and prompt:
                edited = torch.cat([to_tensor(Image.fromarray(o.astype(np.uint8)), guide.device) for o in out])
                emb = guide.encode_image(edited)
                text = guide.encode_text(prompt).to(emb.device)
                clip_scores += (emb @ text.T).squeeze(1).tolist()
            if identity is not None:
                a = torch.cat([to_tensor(Image.fromarray(x.astype(np.uint8)), "cpu") for x in src])
                b = torch.cat([to_tensor(Image.fromarray(x.astype(np.uint8)), "cpu") for x in out])
                dev = next(identity.parameters()).device
                ident += (identity.embed(a.to(dev)) * identity.embed(b.to(dev))).sum(-1).tolist()

    def mean(values):
        return round(float(np.mean(values)), 4) if values else None

    metrics = {
        "flicker": {"edited": mean(change_edit), "source": mean(change_src)},
        "clip_score": {"mean": mean(clip_scores), "per_frame": [round(v, 4) for v in clip_scores]}
        if clip_scores
        else None,
        "identity": {"mean": mean(ident), "per_frame": [round(v, 4) for v in ident]} if ident else None,
    }
    return metrics
