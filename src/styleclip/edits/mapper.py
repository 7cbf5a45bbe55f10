"""Applying a latent mapper (StyleCLIP's third method) as an :class:`~styleclip.edits.base.Edit`.

A mapper was trained for one prompt and predicts a W+ residual: ``w' = w + s·M(w)``, one forward pass per image.
Its network is :mod:`styleclip.nets.mapper`, its files :mod:`styleclip.hub.mappers`, its training
:mod:`styleclip.training.mapper`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from ..latents import Codes
from ..nets.mapper import LatentMapper
from ..nets.stylegan2 import Generator


@dataclass(frozen=True)
class MapperEdit:
    """``mapper`` at ``strength`` (None = the mapper's own, 0.1 as StyleCLIP; NVIDIA's ADA generators need ~1.5)."""

    mapper: LatentMapper
    strength: float | None = None
    space = "w+"

    def apply(self, G: Generator, codes: Codes) -> Codes:
        if codes.styles is not None:
            raise UsageError(
                "a mapper edits W+, and this picture carries a StyleSpace edit: apply the mapper before the global "
                "direction, or restore a step without one"
            )
        return Codes(self.mapper.edit(codes.ws.to(next(self.mapper.parameters()).device), self.strength))

    def describe(self) -> dict:
        meta = self.mapper.meta
        strength = self.mapper.config.strength if self.strength is None else float(self.strength)
        return {"method": "mapper", "mapper": meta.get("source"), "prompt": meta.get("prompt"), "strength": strength}
