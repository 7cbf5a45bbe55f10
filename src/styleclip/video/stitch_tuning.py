"""STIT's stitching tuning: one frame's generator fine-tuned so that its edited face meets the footage without a seam.

An edited crop pasted back into its frame differs from the footage around the face (the edit, and the inversion's own
error, reach into hair, neck and background), and a blend mask only spreads that difference into a soft band. STIT
("Stitch it in Time", ``edit_video_stitching_tuning.py``) removes it per frame: a fresh copy of the (PTI-tuned or
plain) generator is trained for 100 Adam steps (lr 3e-4, noise 'const', the edited codes fixed) so that the picture
it draws from the EDITED codes

- matches the ORIGINAL aligned crop on the border region (the ring around the face where the paste blends), and
- stays close to the untuned edit on the content region (the face), with weight 0.01,

each term a masked MSE ``sum(((a - b) * m)^2) / sum(m)`` summed over the colour channels (STIT's normalisation: the
mask counts once, the error three times). The copy is thrown away after the frame: frames never share a tuning.
An optional early stop ends the frame once the border loss is below ``threshold`` (STIT's
``--border_loss_threshold``; its README: 0.005 for plain backgrounds, 0.002 for exact ones), checked before each
update, as STIT does.

Masks (:func:`tuning_masks`):

- with a face parser, STIT's own (:func:`styleclip.video.masks.stitch_masks` of the parsed ORIGINAL crop): border =
  the ring between the face and its dilation (plus face at the crop's edge), content = face minus ring, and the
  tuned crop is pasted with the parser's feathered blend mask;
- without one (or where the parser finds no face), the feathered square that :func:`styleclip.video.stitch.paste`
  blends with (:func:`~styleclip.video.stitch.feather_mask`): border = its ramp, the pixels it blends partly
  (``0 < mask < 1``), where a difference from the footage would show as a seam; content = the plateau where the
  edit is pasted whole (``mask == 1``). The outer margin (``mask == 0``) is never pasted, so it is left out of both:
  the alignment's black padding there is nothing to match.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UsageError
from ..latents import Codes
from .stitch import FEATHER, MARGIN, feather_mask

STEPS = 100  # STIT's --num_steps
LR = 3e-4  # STIT's stitching_tuning_lr (Adam, default betas)
CONTENT_WEIGHT = 0.01  # STIT's --content_loss_lambda
MAX_STEPS = 10_000


@dataclass
class TuningMasks:
    """The masks of one crop, each ``[S, S]`` float32 in ``[0, 1]``: ``border`` (pulled towards the source crop),
    ``content`` (kept near the edit), ``blend`` (what to paste the tuned crop with, for
    :func:`styleclip.video.stitch.paste`), and ``kind``: 'face-parsing' or 'feathered square'."""

    border: np.ndarray
    content: np.ndarray
    blend: np.ndarray
    kind: str


def square_masks(size: int, feather: float = FEATHER, margin: float = MARGIN) -> TuningMasks:
    """The masks without a face parser, from the feathered square :func:`~styleclip.video.stitch.paste` blends with:
    border = its ramp (``0 < mask < 1``), content = its plateau (``mask == 1``), blend = the mask itself."""
    if size < 1:
        raise UsageError(f"the crop size must be positive, got {size}")
    blend = feather_mask(size, feather, margin)
    border = ((blend > 0) & (blend < 1)).astype(np.float32)
    content = (blend >= 1).astype(np.float32)
    return TuningMasks(border, content, blend, "feathered square")


def tuning_masks(source_crop, size: int | None = None, parser=None, outer: float | None = None) -> TuningMasks:
    """The border, content and blend masks for one frame.

    Args:
        source_crop: the ORIGINAL aligned crop (PIL, ``[S, S, 3]`` uint8 or ``[1, 3, S, S]`` in ``[-1, 1]``): what
            the parser labels (never the edit, so that an edit which grows hair cannot move the mask).
        size: the crop side ``S`` (default: the crop's own).
        parser: a loaded :class:`~styleclip.video.masks.FaceParser` (anything with ``labels(crop) -> [H, H]``), or
            None for the feathered square (:func:`square_masks`).
        outer: the face mask's dilation in pixels of a 1024 crop (STIT's ``--outer_mask_dilation``, default 50).

    Returns:
        :class:`TuningMasks`; the feathered square's where the parser finds no face (the frame is still edited and
        stitched, as :func:`styleclip.video.pipeline.edit_video` pastes such a frame).
    """
    from PIL import Image

    if size is None:
        if isinstance(source_crop, Image.Image):
            size = source_crop.size[0]
        elif isinstance(source_crop, torch.Tensor):
            size = int(source_crop.shape[-1])  # [1, 3, S, S]
        else:
            size = int(np.asarray(source_crop).shape[0])  # [S, S, 3]
    if parser is None:
        return square_masks(size)
    from .masks import OUTER_DILATION, stitch_masks

    labels = parser.labels(source_crop)
    masks = stitch_masks(labels, size, OUTER_DILATION if outer is None else outer)
    if masks.foreground.max() <= 0 or masks.border.sum() <= 0:
        return square_masks(size)
    return TuningMasks(masks.border, masks.content, masks.blend, "face-parsing")


def _check_settings(steps: int, lr: float, threshold: float | None) -> None:
    """One-line refusals of the tuning's settings (named as the video command's options)."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or not 1 <= steps <= MAX_STEPS:
        raise UsageError(f"--stitch-steps must be a whole number from 1 to {MAX_STEPS}, got {steps!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or not 0 < lr <= 1:
        raise UsageError(f"the stitching tuning's learning rate must be above 0 and at most 1, got {lr!r}")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < math.inf
    ):
        raise UsageError(f"--border-loss-threshold must be a number >= 0 (0: off), got {threshold!r}")


def tuning_settings(steps: int = STEPS, lr: float = LR, threshold: float | None = None, parser: bool = False) -> dict:
    """The tuning's settings, checked (one-line refusals named as the video command's options), as a record for a
    run's settings and report: ``{"steps", "lr", "content_weight", "border_loss_threshold", "noise_mode", "mask"}``
    (``mask``: 'face-parsing' with a parser, else 'feathered square')."""
    _check_settings(steps, lr, threshold)
    return {
        "steps": int(steps), "lr": float(lr), "content_weight": CONTENT_WEIGHT,
        "border_loss_threshold": float(threshold) if threshold else None, "noise_mode": "const",
        "mask": "face-parsing" if parser else "feathered square",
    }  # fmt: skip


def _as_mask(mask, size: int, name: str, device) -> torch.Tensor:
    try:
        m = torch.tensor(np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask, np.float32))
    except (TypeError, ValueError):
        raise UsageError(f"the {name} mask must be an [S, S] array of numbers in [0, 1]") from None
    if m.shape != (size, size):
        raise UsageError(f"the {name} mask is {list(m.shape)}, the crop {size} x {size}: give an [S, S] mask")
    return torch.nan_to_num(m, nan=0.0).clamp(0, 1).to(device)


def _as_crop(x: torch.Tensor, size: int, name: str, device) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.shape != (1, 3, size, size):
        shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise UsageError(f"the {name} crop must be a [1, 3, {size}, {size}] tensor in [-1, 1], got {shape}")
    x = x.detach().to(device, torch.float32).clone()  # a plain tensor, even if the caller's was made in inference mode
    if not bool(torch.isfinite(x).all()):
        raise UsageError(f"the {name} crop holds NaN or infinite values")
    return x


def _working_copy(G: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``G`` without the original's caches of derived weights (they belong to the original's tensors,
    and copying them would only cost memory) or compiled graphs; only its synthesis weights take gradients."""
    memo: dict[int, object] = {}
    for module in G.modules():
        cache = module.__dict__.get("_derived")
        if cache is not None:
            memo[id(cache)] = {}
        compiled = module.__dict__.get("_compiled")
        if compiled is not None:
            memo[id(compiled)] = None
    work = copy.deepcopy(G, memo)
    work.eval().requires_grad_(False)  # eval: the mapping's running W average must not move (it is never run anyway)
    work.synthesis.requires_grad_(True)
    return work


def _masked(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    return ((a - b) * m).square().sum() / total


def stitching_tuning(
    G,
    codes: Codes,
    source_crop: torch.Tensor,
    edited_crop: torch.Tensor,
    border,
    content,
    steps: int = STEPS,
    lr: float = LR,
    threshold: float | None = None,
    content_weight: float = CONTENT_WEIGHT,
    callback: Callable[[int, int], None] | None = None,
    stats: dict | None = None,
) -> torch.Tensor:
    """STIT's stitching tuning of one frame: the picture of the edited ``codes`` drawn by a copy of ``G`` trained to
    match the source crop on ``border`` and the untuned edit on ``content``.

    Args:
        G: the generator that drew the edit (the PTI-tuned one, or a frame's HyperStyle working copy); never changed:
            a fresh copy is tuned (its synthesis weights only; the codes stay fixed) and thrown away.
        codes: the frame's edited codes (batch 1; W+ or edited StyleSpace).
        source_crop: the ORIGINAL aligned crop ``[1, 3, S, S]`` in ``[-1, 1]``, ``S = G.img_resolution``.
        edited_crop: the untuned edit ``[1, 3, S, S]`` (``codes.image(G, noise_mode='const')``).
        border, content: ``[S, S]`` masks in ``[0, 1]`` (array or tensor), as :func:`tuning_masks` gives.
        steps: Adam steps (STIT's 100); lr: its learning rate (3e-4).
        threshold: stop once the border loss is below it (checked before each update); None or 0: off.
        content_weight: the content term's weight (STIT's 0.01).
        callback: ``callback(done, total)`` after every step; raising ``KeyboardInterrupt`` there stops the tuning
            (``G`` is untouched).
        stats: if given, filled with ``steps`` (updates made), ``border_loss`` (first and last) and ``stopped_early``.

    Returns:
        The tuned picture ``[1, 3, S, S]`` float32 in about ``[-1, 1]``, on ``G``'s device, without gradients. With
        an empty border mask there is nothing to stitch: the edit is returned as it is.
    """
    _check_settings(steps, lr, threshold)
    if not (isinstance(content_weight, (int, float)) and math.isfinite(content_weight) and content_weight >= 0):
        raise UsageError(f"the content loss weight must be a number >= 0, got {content_weight!r}")
    if not isinstance(codes, Codes) or codes.ws.shape[0] != 1:
        raise UsageError("stitching tuning takes one frame's codes (a Codes of batch 1)")
    size = G.img_resolution
    device = G.device
    source = _as_crop(source_crop, size, "source", device)
    edited = _as_crop(edited_crop, size, "edited", device)
    b = _as_mask(border, size, "border", device)
    c = _as_mask(content, size, "content", device)
    b_sum, c_sum = b.sum(), c.sum()
    record = stats if stats is not None else {}
    record.update(steps=0, border_loss=None, stopped_early=False)
    if float(b_sum) <= 0:
        return edited
    fixed = Codes(
        codes.ws.detach().to(device, torch.float32).clone(),
        {k: v.detach().to(device, torch.float32).clone() for k, v in codes.styles.items()} if codes.styles else None,
    )
    # the edit's own codes, drawn in fp32 with the checkpoint's fixed noise (STIT: force_fp32, noise 'const'); with
    # batch 1 the fused modulation is the path whose weights take gradients cheaply
    draw = dict(noise_mode="const", force_fp32=True, precision="fp32", modulation="fused")
    work = _working_copy(G)
    opt = torch.optim.Adam(work.synthesis.parameters(), lr=float(lr))
    first = last = None
    img = None
    with torch.enable_grad():  # the pipeline draws its edits under no_grad
        for step in range(steps):
            img = fixed.image(work, **draw)
            border_loss = _masked(img, source, b, b_sum)
            last = border_loss.item()
            first = last if first is None else first
            if threshold and last < threshold:
                record["stopped_early"] = True
                break
            loss = border_loss
            if content_weight and float(c_sum) > 0:
                loss = loss + content_weight * _masked(img, edited, c, c_sum)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            img = None  # drawn before this update: no longer the tuned picture
            record["steps"] = step + 1
            if callback is not None:
                callback(step + 1, steps)
    with torch.no_grad():
        out = img.detach() if img is not None else fixed.image(work, **draw)
        if img is None:  # the picture after the last update: its border loss is the one the frame ends with
            last = float(_masked(out, source, b, b_sum))
    record["border_loss"] = {"first": first, "last": last}
    return out
