"""The losses every edit method uses, each a small module whose docstring gives its formula.

Embeddings are unit vectors from :class:`~styleclip.guidance.clip.ClipGuide` (``[N, D]``); latents are
W ``[N, w_dim]``, W+ ``[N, num_ws, w_dim]`` or StyleSpace dicts ``{layer: [N, C]}``. Every loss
returns one value per sample, ``[N]``, so batched edits keep their terms apart.
"""

from __future__ import annotations

import torch
from torch import nn


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class ClipLoss(nn.Module):
    """StyleCLIP's CLIP loss: ``1 - logit_scale * cos(E(image), t) / 100``.

    With OpenAI's CLIP (``logit_scale`` = 100) this is the cosine distance; other models are scaled as
    StyleCLIP scales them, so weights tuned there carry over.
    """

    def __init__(self, logit_scale: float = 100.0) -> None:
        super().__init__()
        self.logit_scale = float(logit_scale)

    def forward(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """``image_emb: [N, D]``, ``text_emb: [D]`` or ``[N, D]`` -> ``[N]``."""
        cos = (_unit(image_emb) * _unit(text_emb).expand_as(image_emb)).sum(-1)
        return 1 - self.logit_scale * cos / 100


class CosineLoss(nn.Module):
    """Plain cosine distance ``1 - cos(E(image), t)``, in ``[0, 2]``."""

    def forward(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """``image_emb: [N, D]``, ``text_emb: [D]`` or ``[N, D]`` -> ``[N]``."""
        return 1 - (_unit(image_emb) * _unit(text_emb).expand_as(image_emb)).sum(-1)


class DirectionalClipLoss(nn.Module):
    """``1 - (δ · Δt) / max(‖δ‖, τ)`` with ``δ = E(edited) - E(source)``: the image must move the way the text
    moves, i.e. ``1 - cos(δ, Δt)`` once the edit has moved at all.

    Keeps edits local: changing the whole picture towards the target text scores worse than changing
    only what separates the target from the neutral description. ``Δt`` comes from
    :meth:`ClipGuide.direction`. The floor ``τ`` (default 0.01) keeps the gradient finite at the start, where
    the edited image is still the source: without it the first steps' gradients are 1e5 times the later ones
    and saturate Adam's moment estimates for the whole run.
    """

    def __init__(self, min_norm: float = 1e-2) -> None:
        super().__init__()
        self.min_norm = float(min_norm)

    def forward(self, edited_emb: torch.Tensor, source_emb: torch.Tensor, text_direction: torch.Tensor) -> torch.Tensor:
        """``edited_emb, source_emb: [N, D]``, ``text_direction: [D]`` -> ``[N]``."""
        delta = edited_emb - source_emb
        delta = delta / delta.norm(dim=-1, keepdim=True).clamp_min(self.min_norm)
        return 1 - (delta * _unit(text_direction).expand_as(delta)).sum(-1)


class LatentL2Loss(nn.Module):
    """``‖w - w_s‖²`` summed over all coordinates of W ``[N, w_dim]`` or W+ ``[N, num_ws, w_dim]``."""

    def forward(self, w: torch.Tensor, w_source: torch.Tensor) -> torch.Tensor:
        return (w - w_source).square().flatten(1).sum(-1)


class StyleL2Loss(nn.Module):
    """StyleSpace analogue of :class:`LatentL2Loss`: ``Σ_layers ‖s_l - s_l,source‖²``."""

    def forward(self, styles: dict[str, torch.Tensor], styles_source: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum((styles[k] - styles_source[k]).square().sum(-1) for k in styles)
