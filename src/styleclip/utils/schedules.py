"""Learning-rate schedules shared by every optimisation loop (edits, projection)."""

from __future__ import annotations

import math


def learning_rate(t: float, lr: float, rampup: float = 0.05, rampdown: float = 0.25) -> float:
    """StyleCLIP's schedule at progress ``t`` in [0, 1): linear ramp-up over the first ``rampup``, cosine
    ramp-down over the last ``rampdown`` (NVIDIA's projector schedule)."""
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if rampup > 0:
        ramp *= min(1.0, t / rampup)
    return lr * ramp
