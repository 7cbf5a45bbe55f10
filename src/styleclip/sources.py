"""What to edit, from what the user gave: seeds, the rows of a latent file, or a photo (inverted first).

"photo -> inversion -> edit" is composed here, above ``inversion/`` and ``edits/``, so that every command, the batch
runner and the UI turn their sources into codes the same way, and a photo inverted with pivotal tuning is drawn by
its tuned generator wherever it is edited. ``adapted=`` (a StyleGAN-NADA generator, see :mod:`styleclip.adapted`)
keeps the codes the base's (seeds mapped, photos inverted with ``G``) and has the adapted generator draw them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import UsageError
from .inversion.invert import Inversion, invert
from .latents import load_latent
from .nets.stylegan2 import Generator

Adapted = Generator | str | Path | None


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


def drawing_generator(G: Generator, adapted: Adapted) -> Generator:
    """``G`` itself, or the generator that draws ``G``'s codes in the style of ``adapted`` (a catalogue name such as
    ``nada:pixar``, a path, or a loaded generator; see :func:`styleclip.adapted.load_adapted`)."""
    if adapted is None:
        return G
    from .adapted import load_adapted

    return load_adapted(adapted, G)


@torch.no_grad()
def from_seeds(
    G: Generator,
    seeds: Sequence[int],
    truncation_psi: float = 0.7,
    class_idx: int | None = None,
    adapted: Adapted = None,
) -> Sources:
    """The W+ that ``seeds`` map to with ``G`` (as NVIDIA's generate.py draws z), at truncation ``truncation_psi``;
    drawn by ``adapted`` (composed with ``G``) when given."""
    seeds = list(seeds)
    c = G.label(class_idx, batch=len(seeds))
    ws = G.mapping_forward(G.z_from_seed(seeds), c, truncation_psi=truncation_psi)
    shown = ", ".join(map(str, seeds[:8])) + (f", ... ({len(seeds)} seeds)" if len(seeds) > 8 else "")
    return Sources(ws, [f"seed{s:04d}" for s in seeds], drawing_generator(G, adapted), f"seeds {shown}", seeds)


def from_latent_file(
    G: Generator, path: str | Path, adapted: Adapted = None, offsets: str | Path | None = None
) -> Sources:
    """Every row of a latent file (``.npy``/``.npz``/``.pt``, checked before it is read); drawn by ``adapted``
    when given, and with a HyperStyle inversion's ``offsets`` file (``offsets.safetensors``) applied."""
    ws = load_latent(path, G)
    draw = drawing_generator(G, adapted)
    if offsets is not None:
        from .inversion.hyperstyle import load_offsets

        if ws.shape[0] != 1:  # one photo's weights would draw every other row as another face
            raise UsageError(
                f"--offsets belong to one photo's latent, and {str(path)[:200]} holds {ws.shape[0]} rows: pass the "
                "latent.npy written beside them"
            )
        draw = apply_offsets(draw, load_offsets(offsets, G), adapted is not None)
    return Sources(ws, [f"row{k}" for k in range(ws.shape[0])], draw, str(path))


def apply_offsets(draw: Generator, offsets: dict[str, torch.Tensor], adapted: bool = False) -> Generator:
    """``draw`` with a photo's HyperStyle offsets applied; on an adapted generator only those from 128 px up
    (HyperStyle's recipe for generators fine-tuned to another domain: the coarse layers carry the new style)."""
    from .inversion.hyperstyle import ADAPTED_FROM_RESOLUTION, offset_generator

    return offset_generator(draw, offsets, ADAPTED_FROM_RESOLUTION if adapted else None)


def from_photo(G: Generator, photo: str | Path, adapted: Adapted = None, **invert_options: Any) -> Sources:
    """A photo, prepared and inverted into ``G`` by :func:`styleclip.invert` (``invert_options``: method, encoder,
    steps, pti, lpips, align, ...); its edits are drawn by ``inversion.generator`` (a tuned copy after PTI, the
    offset copy after HyperStyle), or by ``adapted`` composed with ``G`` (PTI is refused with it: it tunes ``G``'s
    weights, not the adapted ones; HyperStyle's offsets apply from 128 px up, as HyperStyle's recipe does)."""
    if adapted is not None and invert_options.get("pti"):
        from .adapted import PTI_REFUSAL

        raise UsageError(PTI_REFUSAL)
    draw = drawing_generator(G, adapted)  # an incompatible adapted generator is refused before the inversion
    inv = invert(photo, G, **invert_options)
    if adapted is None:
        draw = inv.generator
    elif inv.offsets is not None:
        draw = apply_offsets(draw, inv.offsets, adapted=True)
    return Sources(inv.ws, ["photo"], draw, str(photo), inversion=inv)
