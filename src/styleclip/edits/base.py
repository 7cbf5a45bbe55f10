"""The one interface edit methods share, so that the CLI, the web UI and batch jobs can stack any of them.

An :class:`Edit` is a text edit made ready to apply (a global direction at a strength, a trained mapper at a
strength): it turns :class:`~styleclip.latents.Codes` into edited codes in one synthesis-free step, and
describes itself as plain JSON for reports and PNG metadata. Latent optimisation produces codes directly
(its result is the edit), so it returns codes rather than an :class:`Edit`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ..latents import Codes
from ..nets.stylegan2 import Generator


@runtime_checkable
class Edit(Protocol):
    """A text edit ready to apply to any codes of its generator. ``space``: the codes it changes, ``"w+"`` (it
    needs codes without a StyleSpace edit) or ``"s"`` (it starts from :meth:`Codes.style_codes`)."""

    space: str

    def apply(self, G: Generator, codes: Codes) -> Codes:
        """The edited codes (same batch size); never changes ``codes`` in place."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-ready settings: ``{"method": ..., ...}``, enough to repeat the edit."""
        ...
