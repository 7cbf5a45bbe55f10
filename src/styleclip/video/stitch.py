"""Edited face crops back into their frames: the crop square's inverse mapping and a feathered mask.

The crop of side ``S`` maps its pixel ``(u, v)`` to the frame point ``c + x (2u/S - 1) + y (2v/S - 1)`` (the square's
centre and half-side axes, :class:`~styleclip.video.track.Square`). Pasting inverts that affine map for every frame
pixel and blends the edited crop in through a mask that is 1 inside the face's region and falls to 0 over
``feather`` of the side at the square's border, so that the seam never shows as an edge; or, given a face parser,
through STIT's mask (:mod:`styleclip.video.masks`): the parsed face dilated and feathered, so that the background
around the face stays the footage's own.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import UsageError
from .track import Square

FEATHER = 0.1  # of the crop's side: the width over which the edited crop fades into the frame
MARGIN = 0.05  # of the crop's side: left out at the crop's border (the alignment's padding lives there)


def crop(frame: Image.Image, square: Square, size: int) -> Image.Image:
    """The aligned ``size`` x ``size`` crop of ``frame`` (FFHQ's alignment along the square)."""
    from ..io.align import align_quad

    return align_quad(frame, square.quad, square.side, size, supersample=2)


def _frame_to_crop(square: Square, size: int) -> tuple[float, ...]:
    """PIL's AFFINE coefficients ``(a, b, c, d, e, f)``: crop ``(u, v) = (a px + b py + c, d px + e py + f)``."""
    axes = np.stack([square.x, square.y], axis=1) * 2 / size  # frame offset per crop pixel along u, v
    inv = np.linalg.inv(axes)
    # the frame point of the crop's (0, 0) corner; the alignment reads the quad in pixel-centre coordinates (+0.5)
    origin = square.c - square.x - square.y + 0.5
    shift = -inv @ origin
    return (inv[0, 0], inv[0, 1], shift[0], inv[1, 0], inv[1, 1], shift[1])


def feather_mask(size: int, feather: float = FEATHER, margin: float = MARGIN) -> np.ndarray:
    """``[size, size]`` float32: 1 in the middle, a smooth (cosine) fall to 0 over ``feather`` of the side, and 0 in
    the outer ``margin``."""
    t = (np.arange(size, dtype=np.float64) + 0.5) / size
    edge = np.minimum(t, 1 - t)  # distance to the nearer border, in sides
    ramp = np.clip((edge - margin) / max(feather, 1e-6), 0, 1)
    ramp = 0.5 - 0.5 * np.cos(np.pi * ramp)
    return np.outer(ramp, ramp).astype(np.float32)


def paste(frame: np.ndarray, edited: np.ndarray, square: Square, mask: np.ndarray | None = None) -> np.ndarray:
    """``frame`` (``[H, W, 3]`` uint8) with ``edited`` (the ``[S, S, 3]`` uint8 edited crop of ``square``) blended in
    through ``mask`` (``[S, S]`` in ``[0, 1]``: default :func:`feather_mask`; a face-parsing mask from
    :func:`styleclip.video.masks.parsing_mask`). Returns a new ``[H, W, 3]`` uint8."""
    h, w = frame.shape[:2]
    size = edited.shape[0]
    if mask is None:
        mask = feather_mask(size)
    else:
        mask = np.asarray(mask, dtype=np.float32)
        if mask.shape != edited.shape[:2]:
            raise UsageError(f"the paste mask is {list(mask.shape)}, the edited crop {list(edited.shape[:2])}")
        mask = np.clip(np.nan_to_num(mask, nan=0.0), 0, 1)
    coeffs = _frame_to_crop(square, size)
    warped = Image.fromarray(edited).transform((w, h), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
    alpha = Image.fromarray(mask, mode="F").transform((w, h), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
    a = np.asarray(alpha, dtype=np.float32)[..., None]
    out = frame.astype(np.float32) * (1 - a) + np.asarray(warped, dtype=np.float32) * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
