"""Drawing images from seeds: z -> w -> image, as NVIDIA's generate.py does it."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from .errors import UsageError
from .nets.stylegan2 import Generator
from .nets.stylegan3 import Generator3, make_transform

MAX_SEEDS = 1_000_000
SEED_LIMIT = 2**32  # NumPy's RandomState takes seeds below this
# Truncation psi beyond this pushes every latent so far from the mean that pictures are noise or, at 1e308, black.
TRUNCATION_RANGE = (-5.0, 5.0)


@dataclass
class Sample:
    """One drawn image and the latent that drew it."""

    seed: int
    ws: torch.Tensor  # [1, num_ws, w_dim] float32, truncation applied
    image: torch.Tensor  # [1, C, H, W] float32, about [-1, 1]


def parse_seeds(text: str | int) -> list[int]:
    """``'0-7'``, ``'1,5,9'`` or ``'0-3,10'`` -> list of ints (ranges inclusive, as in NVIDIA's scripts).

    Every seed must lie in ``0 .. 2**32-1`` and there may be at most :data:`MAX_SEEDS` of them; an int is one seed.
    """
    out_of_range = f"seeds must be in 0 .. {SEED_LIMIT - 1} (NumPy's RandomState range)"
    if isinstance(text, int) and not isinstance(text, bool):
        if not 0 <= text < SEED_LIMIT:
            raise UsageError(out_of_range)
        return [text]
    if not isinstance(text, str):
        raise UsageError(f"seeds must be a text such as 0-7 or 1,5,9, got a {type(text).__name__}")
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("-"):
            raise UsageError(out_of_range)
        lo, sep, hi = part.partition("-")
        try:
            bounds = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise UsageError(f"bad seed list {text[:40]!r}: use e.g. 0-7 or 1,5,9") from None
        if bounds[1] < bounds[0]:
            raise UsageError(f"seed range {part[:40]!r} runs backwards")
        if bounds[0] < 0 or bounds[1] >= SEED_LIMIT:
            raise UsageError(out_of_range)
        if len(seeds) + bounds[1] - bounds[0] + 1 > MAX_SEEDS:
            raise UsageError(f"more than {MAX_SEEDS} seeds requested; split the job")
        seeds.extend(range(bounds[0], bounds[1] + 1))
    if not seeds:
        raise UsageError("no seeds given: use e.g. --seeds 0-7")
    return seeds


@torch.no_grad()
def sample(
    G: Generator,
    seeds: Sequence[int],
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    class_idx: int | None = None,
    noise_mode: str = "const",
    batch_size: int = 1,
    translate: Sequence[float] | None = None,
    rotate: float | None = None,
) -> Iterator[Sample]:
    """Yield one :class:`Sample` per seed, computed ``batch_size`` seeds at a time.

    ``z = np.random.RandomState(seed).randn(1, z_dim)``, mapped with truncation ``psi`` (default 1
    = none; 0.7 is the usual choice) and drawn with the checkpoint's constant noise by default.
    StyleGAN3 generators also take ``translate=(x, y)`` (fractions of the image side) and ``rotate``
    (degrees), as NVIDIA's ``gen_images.py --translate --rotate``.
    """
    if batch_size < 1:
        raise UsageError("batch size must be at least 1")
    extra = {}
    if translate is not None or rotate is not None:
        if not isinstance(G, Generator3):
            raise UsageError("translate and rotate need a StyleGAN3 generator (StyleGAN2 has no input transform)")
        try:
            extra["transform"] = make_transform(translate or (0.0, 0.0), rotate or 0.0).to(G.device)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    lo, hi = TRUNCATION_RANGE
    if not (math.isfinite(truncation_psi) and lo <= truncation_psi <= hi):
        raise UsageError(f"truncation psi must be a finite number in [{lo:g}, {hi:g}], got {truncation_psi}")
    seeds = list(seeds)
    for start in range(0, len(seeds), batch_size):
        chunk = seeds[start : start + batch_size]
        z = G.z_from_seed(chunk)
        c = G.label(class_idx, batch=len(chunk))
        ws = G.mapping_forward(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        images = G.synthesize(ws, noise_mode=noise_mode, **extra)
        for i, seed in enumerate(chunk):
            yield Sample(seed, ws[i : i + 1], images[i : i + 1])
