"""Strength sweeps and the edit-versus-preservation curves they trace (e4e's distortion-editability trade-off).

Every method has one knob that trades how far an edit goes against how much of the source it keeps: α for global
directions, λ_L2 for latent optimisation (a weaker pull back to the source edits more), the strength of a mapper.
A benchmark runs each method at several values of its knob; every value gives one point per prompt:

- **edit score** ``e``: the judge's CLIP gain, ``cos(E(after), T(prompt)) − cos(E(before), T(prompt))``, averaged
  over the sources (0 for no edit);
- **preservation** ``p`` in [0, 1], higher keeps more: ArcFace identity (faces, when loaded), else ``1 − LPIPS``,
  else ``1 − RMSE`` of the pixels in [0, 1] (``RMSE = 10^(−PSNR/20)``).

The curve runs from the unedited source ``(p, e) = (1, 0)`` through the points in order of falling preservation.
Two numbers summarise it:

- **area** ``A = 1/(1 − p₀) · ∫_{p₀}^{1} e(p) dp``, the mean edit score over the preservation range down to the floor
  ``p₀`` (linear between points; below the least-preserving point the curve keeps that point's score, so a method
  that cannot go further is not credited with more). Higher is better: more edit for the same preservation.
- **edit score at fixed preservation** ``e(p*)``: the curve read at ``p*`` (linear between the two points around
  it); ``None`` when the method's strongest setting still preserves more than ``p*`` (it never went that far).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

from ..errors import UsageError

# The knob each method's sweep turns, and the values a benchmark tries by default (weak to strong edits).
KNOBS = {"optimize": "l2_weight", "directions": "alpha", "mapper": "strength"}
DEFAULT_SWEEPS: dict[str, tuple[float, ...]] = {
    # StyleCLIP's λ_L2 range (0.002-0.06 across its paper's figures), strongest pull first
    "optimize": (0.06, 0.03, 0.015, 0.008, 0.004, 0.002),
    # the global-direction GUI's useful positive range for faces at β 0.1-0.15
    "directions": (1.0, 2.0, 3.0, 4.0, 5.0, 6.0),
    # around the 0.1 the StyleCLIP mappers were trained with
    "mapper": (0.025, 0.05, 0.1, 0.15, 0.2),
}
MAX_SWEEP = 32


@dataclass(frozen=True)
class Axis:
    """A preservation measure: the score column it comes from, its floor ``p₀`` and fixed point ``p*``."""

    name: str
    label: str
    floor: float
    fixed: float


AXES = {
    "identity": Axis("identity", "ArcFace identity to the source", 0.4, 0.7),
    "lpips": Axis("lpips", "1 − LPIPS to the source", 0.6, 0.8),
    "pixels": Axis("pixels", "1 − RMSE to the source (pixels in [0, 1])", 0.75, 0.9),
}


def parse_sweeps(items: list[str] | None, methods: tuple[str, ...]) -> dict[str, tuple[float, ...]]:
    """``{method: values}`` from ``--sweep METHOD=V1,V2,...`` items (others keep :data:`DEFAULT_SWEEPS`)."""
    sweeps = {m: DEFAULT_SWEEPS[m] for m in methods}
    for item in items or []:
        method, sep, text = item.partition("=")
        method = method.strip()
        if not sep or method not in KNOBS:
            raise UsageError(f"--sweep {item!r}: write METHOD=V1,V2,... with METHOD one of {', '.join(KNOBS)}")
        if method not in methods:
            raise UsageError(f"--sweep {item!r}: {method} is not among --methods {','.join(methods)}")
        parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
        try:
            values = tuple(float(p) for p in parts)
        except ValueError:
            raise UsageError(f"--sweep {item!r}: the values must be numbers, e.g. {method}=1,2,4") from None
        if not values or len(values) > MAX_SWEEP:
            raise UsageError(f"--sweep {item!r}: give 1 to {MAX_SWEEP} values")
        if not all(math.isfinite(v) for v in values) or len(set(values)) != len(values):
            raise UsageError(f"--sweep {item!r}: the values must be finite and distinct")
        if method != "directions" and min(values) < 0:
            raise UsageError(f"--sweep {item!r}: {KNOBS[method]} cannot be negative")
        sweeps[method] = values
    return sweeps


def preservation(row: dict, axis: str) -> float | None:
    """A scored edit's preservation on ``axis`` (in [0, 1], higher keeps more), None where not scored."""
    if axis == "identity":
        v = row.get("identity")
        return None if v is None else min(max(float(v), 0.0), 1.0)
    if axis == "lpips":
        v = row.get("lpips")
        return None if v is None else min(max(1.0 - float(v), 0.0), 1.0)
    v = row.get("psnr")
    if v is None:
        return None
    return 1.0 if math.isinf(float(v)) else 1.0 - 10 ** (-float(v) / 20)


def choose_axis(rows: list[dict], asked: str = "auto") -> str:
    """The preservation axis: ``asked``, or the first of identity, LPIPS, pixels every scored edit has."""
    done = [r for r in rows if r.get("state") == "done"]
    if asked != "auto":
        if asked not in AXES:
            raise UsageError(f"--preservation {asked!r}: use auto, {', '.join(AXES)}")
        if done and any(preservation(r, asked) is None for r in done):
            need = {"identity": "an ArcFace model (--identity)", "lpips": "LPIPS (--lpips vgg)"}.get(asked, "")
            raise UsageError(f"--preservation {asked}: the edits have no {asked} scores; load {need}")
        return asked
    for name in AXES:
        if done and all(preservation(r, name) is not None for r in done):
            return name
    return "pixels"


def curve_area(points: list[tuple[float, float]], floor: float) -> float:
    """``A``: the mean edit score over preservation ``[floor, 1]`` (see the module docstring)."""
    pts = _curve(points)
    span = 1.0 - floor
    if span <= 0:
        raise UsageError("the preservation floor must be below 1")
    area = 0.0
    for (p1, e1), (p0, e0) in itertools.pairwise(pts):  # p1 > p0: walking down from full preservation
        lo, hi = max(p0, floor), min(p1, 1.0)
        if hi <= lo:
            continue
        area += (hi - lo) * (_at(p1, e1, p0, e0, hi) + _at(p1, e1, p0, e0, lo)) / 2
    p_last, e_last = pts[-1]
    if p_last > floor:
        area += (p_last - floor) * e_last
    return area / span


def value_at(points: list[tuple[float, float]], p: float) -> float | None:
    """``e(p*)``: the edit score where the curve crosses preservation ``p`` (None: it never gets that low)."""
    pts = _curve(points)
    for (p1, e1), (p0, e0) in itertools.pairwise(pts):
        if p0 <= p <= p1:
            return _at(p1, e1, p0, e0, p)
    return None


def _curve(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The unedited anchor ``(1, 0)`` then ``points`` by falling preservation (ties: the mean)."""
    by_p: dict[float, list[float]] = {}
    for p, e in points:
        if p is not None and e is not None and math.isfinite(p) and math.isfinite(e):
            by_p.setdefault(min(float(p), 1.0), []).append(float(e))
    pts = [(p, sum(es) / len(es)) for p, es in by_p.items()]
    pts.sort(key=lambda pe: -pe[0])
    if not pts or pts[0][0] < 1.0:
        pts.insert(0, (1.0, 0.0))
    return pts


def _at(p1: float, e1: float, p0: float, e0: float, p: float) -> float:
    if p1 == p0:
        return e1
    return e0 + (e1 - e0) * (p - p0) / (p1 - p0)


__all__ = ["AXES", "DEFAULT_SWEEPS", "KNOBS", "Axis", "choose_axis", "curve_area", "parse_sweeps", "preservation",
           "value_at"]  # fmt: skip
