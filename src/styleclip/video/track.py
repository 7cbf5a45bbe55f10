"""Where the face is in every frame, steadily: FFHQ's crop square per frame from the 68 landmarks, smoothed over time.

A crop square is ``(c, x, y)``: its centre and two half-side axes (``y`` is ``x`` turned by 90 degrees). Landmarks
jitter by a pixel or two from frame to frame, and a crop that jitters makes the edited face jitter after it is pasted
back. As STIT (Tzaban et al., SIGGRAPH Asia 2022) does, the centres and the axes of all frames are smoothed with a
Gaussian over time (``center_sigma``, ``xy_sigma`` frames), then ``y`` is made from the smoothed ``x`` again.
Frames without a face keep ``None``: they pass through unedited, and the report lists them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CENTER_SIGMA = 1.0  # frames; STIT's --center_sigma
XY_SIGMA = 3.0  # frames; STIT's --xy_sigma


@dataclass(frozen=True)
class Square:
    """One frame's crop square: centre ``c`` and half-side axes ``x`` (towards the face's right), ``y`` (down)."""

    c: np.ndarray
    x: np.ndarray
    y: np.ndarray

    @property
    def quad(self) -> np.ndarray:
        """``[4, 2]``: upper-left, lower-left, lower-right, upper-right (PIL's QUAD order)."""
        c, x, y = self.c, self.x, self.y
        return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])

    @property
    def side(self) -> float:
        return float(np.hypot(*self.x) * 2)

    def to_list(self) -> list[float]:
        return [float(v) for v in (*self.c, *self.x)]

    @classmethod
    def from_list(cls, values: Sequence[float]) -> Square:
        c, x = np.asarray(values[:2], dtype=np.float64), np.asarray(values[2:4], dtype=np.float64)
        return cls(c, x, np.flipud(x) * [-1, 1])


def square_from_landmarks(landmarks: np.ndarray) -> Square:
    """The FFHQ crop square of one face (the construction of :func:`styleclip.io.align.face_quad`)."""
    from ..io.align import face_quad

    quad, _ = face_quad(landmarks)
    c = quad.mean(0)
    x = (quad[3] - quad[0]) / 2  # upper-right minus upper-left: the full side along x
    return Square(c, x, np.flipud(x) * [-1, 1])


def _gaussian_1d(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 with edges reflected (``scipy.ndimage.gaussian_filter1d``'s default mode),
    truncated at 4 sigma as scipy truncates it."""
    if sigma <= 0 or len(values) < 2:
        return values.copy()
    radius = int(4.0 * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, [(radius, radius)] + [(0, 0)] * (values.ndim - 1), mode="symmetric")
    out = np.zeros_like(values, dtype=np.float64)
    for k, w in enumerate(kernel):
        out += w * padded[k : k + len(values)]
    return out


def smooth(squares: Sequence[Square | None], center_sigma: float = CENTER_SIGMA, xy_sigma: float = XY_SIGMA):
    """The squares of a clip smoothed over time; each run of consecutive frames with a face is smoothed on its own
    (a face that leaves and comes back is a new shot for the filter), ``None`` stays ``None``."""
    out: list[Square | None] = [None] * len(squares)
    start = 0
    while start < len(squares):
        if squares[start] is None:
            start += 1
            continue
        end = start
        while end < len(squares) and squares[end] is not None:
            end += 1
        run = squares[start:end]
        cs = _gaussian_1d(np.stack([s.c for s in run]), center_sigma)
        xs = _gaussian_1d(np.stack([s.x for s in run]), xy_sigma)
        for k, (c, x) in enumerate(zip(cs, xs, strict=True)):
            out[start + k] = Square(c, x, np.flipud(x) * [-1, 1])
        start = end
    return out


def pick_face(faces, previous: Square | None):
    """The face to follow: the one nearest the previous frame's, else the largest."""
    if not faces:
        return None
    if previous is not None:
        return min(faces, key=lambda f: float(np.hypot(*(square_from_landmarks(f.landmarks).c - previous.c))))
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
