"""What to edit, from what the user gave: seeds, the rows of a latent file, or a photo (inverted first).

"photo -> inversion -> edit" is composed here, above ``inversion/`` and ``edits/``, so that every command, the batch
runner and the UI turn their sources into codes the same way, and a photo inverted with pivotal tuning is drawn by
its tuned generator wherever it is edited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .inversion.invert import Inversion, invert
from .latents import load_latent
from .nets.stylegan2 import Generator


@dataclass
class Sources:
    """``ws``: W+ ``[K, num_ws, w_dim]``; ``names``: one per row ('seed0009', 'row0', 'photo'); ``generator``: the
    network that draws their edits (for a photo tuned by PTI, the tuned copy); ``note``: what they came from, for
    reports; ``seeds``: the seed of each row, when they came from seeds; ``inversion``: the photo's, if any."""

    ws: torch.Tensor
    names: list[str]
    generator: Generator
    note: str
    seeds: list[int] | None = None
    inversion: Inversion | None = None


@torch.no_grad()
def from_seeds(
    G: Generator, seeds: Sequence[int], truncation_psi: float = 0.7, class_idx: int | None = None
) -> Sources:
    """The W+ that ``seeds`` map to (as NVIDIA's generate.py draws z), at truncation ``truncation_psi``."""
    seeds = list(seeds)
    c = G.label(class_idx, batch=len(seeds))
    ws = G.mapping_forward(G.z_from_seed(seeds), c, truncation_psi=truncation_psi)
    shown = ", ".join(map(str, seeds[:8])) + (f", ... ({len(seeds)} seeds)" if len(seeds) > 8 else "")
    return Sources(ws, [f"seed{s:04d}" for s in seeds], G, f"seeds {shown}", seeds)


def from_latent_file(G: Generator, path: str | Path) -> Sources:
    """Every row of a latent file (``.npy``/``.npz``/``.pt``, checked before it is read)."""
    ws = load_latent(path, G)
    return Sources(ws, [f"row{k}" for k in range(ws.shape[0])], G, str(path))


def from_photo(G: Generator, photo: str | Path, **invert_options: Any) -> Sources:
    """A photo, prepared and inverted by :func:`styleclip.invert` (``invert_options``: method, encoder, steps, pti,
    lpips, align, ...); its edits are drawn by ``inversion.generator`` (a tuned copy after PTI)."""
    inv = invert(photo, G, **invert_options)
    return Sources(inv.ws, ["photo"], inv.generator, str(photo), inversion=inv)
