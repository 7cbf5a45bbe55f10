"""Global directions (StyleCLIP's second method): one StyleSpace direction per text edit, for any image.

    Δt = normalise(t(target) − t(neutral))           text direction, StyleCLIP's 79 ImageNet templates averaged
    r  = fs3 · Δt                                     relevance of each style channel, in [-1, 1]
    r[|r| < β] = 0;  r /= max |r|                     keep the channels that matter (disentanglement β)
    Δs = r ⊙ std                                      in each channel's own scale
    s' = s + α · Δs                                   strength α, on one image or a batch

No optimisation per image: once the direction exists, an edit is one synthesis pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UsageError
from ..guidance.clip import ClipGuide
from ..latents import Codes
from ..nets.stylegan2 import Generator
from ..stylespace import StyleLayout, StyleStats
from .relevance import RelevanceMatrix

BETA_RANGE = (0.08, 0.3)  # the official tools' slider range
ALPHA_RANGE = (-10.0, 10.0)
DEFAULT_BETA = 0.15
DEFAULT_ALPHA = 4.0
# StyleCLIP's Inference.GetDt2 searches np.arange(0.1, 0.3, 0.01): 0.29 down to 0.10.
AUTO_BETAS = tuple(round(float(b), 2) for b in np.arange(0.1, 0.3, 0.01)[::-1])
MIN_CHANNELS = {"face": 20, "other": 100}


@dataclass
class GlobalDirection:
    """A StyleSpace edit direction: ``delta`` ``[C]`` over ``layout``, already in each channel's std units."""

    layout: StyleLayout
    delta: torch.Tensor
    relevance: torch.Tensor  # r = fs3 · Δt, [C]
    beta: float
    target: str
    neutral: str

    @property
    def mask(self) -> torch.Tensor:
        return self.delta != 0

    @property
    def channels_changed(self) -> int:
        return int(self.mask.sum())

    def per_layer(self) -> dict[str, int]:
        """Channels this direction moves, per style layer (layers it leaves alone are omitted)."""
        return {k: v for k, v in self.layout.per_layer(self.mask).items() if v}

    def apply(self, styles: dict[str, torch.Tensor], alpha: float | torch.Tensor) -> dict[str, torch.Tensor]:
        """``s + α·Δs`` for ``{layer: [N, C_l]}`` styles; ``alpha`` a number or ``[N]`` (one per image), useful in
        -10 … 10 (negative reverses the edit).

        Layers outside the direction are passed through untouched (the same tensors), so ``α = 0`` gives
        the original image exactly.
        """
        out = dict(styles)
        n = next(iter(styles.values())).shape[0]
        a = torch.as_tensor(alpha, dtype=torch.float32, device=self.delta.device).reshape(-1, 1)
        if a.shape[0] not in (1, n):
            raise UsageError(f"alpha must be one number or one per image ({n}), got {a.shape[0]}")
        for name, d in self.layout.unflatten(self.delta).items():
            if name in styles and bool((d != 0).any()):
                s = styles[name]
                out[name] = s + (a.to(s.device) * d.to(s.device)).to(s.dtype)
        return out

    def at(self, alpha: float) -> DirectionEdit:
        """This direction at strength ``alpha``, as an :class:`~styleclip.edits.base.Edit`."""
        return DirectionEdit(self, float(alpha))


@dataclass(frozen=True)
class DirectionEdit:
    """A global direction at one strength: ``s' = s + α·Δs`` on any codes (an :class:`~.base.Edit`)."""

    direction: GlobalDirection
    alpha: float
    space = "s"

    def apply(self, G: Generator, codes: Codes) -> Codes:
        return Codes(codes.ws, self.direction.apply(codes.style_codes(G), self.alpha))

    def describe(self) -> dict:
        d = self.direction
        return {
            "method": "directions",
            "target": d.target,
            "neutral": d.neutral,
            "alpha": self.alpha,
            "beta": d.beta,
            "channels_changed": d.channels_changed,
        }


def channel_relevance(matrix: RelevanceMatrix, text_direction: torch.Tensor) -> torch.Tensor:
    """``r = fs3 · Δt``: ``[C]``, each channel's cosine with the text direction ``[D]``."""
    dt = text_direction.float().cpu()
    if matrix.matrix.shape[1] != dt.shape[-1]:
        raise UsageError(
            f"the relevance matrix has {matrix.matrix.shape[1]}-dim rows but CLIP gives {dt.shape[-1]}-dim "
            "embeddings: it was made with another CLIP model"
        )
    return matrix.matrix.float() @ dt


def auto_beta(relevance: torch.Tensor, domain: str | None = None) -> float:
    """The largest β in 0.10 … 0.29 (steps of 0.01) that still moves more than the minimum number of
    channels (20 for faces, 100 otherwise), as StyleCLIP's inference code picks it; 0.10 when none does."""
    need = MIN_CHANNELS["face" if domain == "face" else "other"]
    magnitude = relevance.abs()
    for beta in AUTO_BETAS:
        if int((magnitude >= beta).sum()) > need:
            return beta
    return AUTO_BETAS[-1]


def style_direction(
    matrix: RelevanceMatrix,
    text_direction: torch.Tensor,
    stats: StyleStats,
    beta: float | None = DEFAULT_BETA,
    domain: str | None = None,
    target: str = "",
    neutral: str = "",
) -> GlobalDirection:
    """Threshold, normalise and scale the relevance into ``Δs`` (``beta=None``: :func:`auto_beta`)."""
    r = channel_relevance(matrix, text_direction)
    beta = auto_beta(r, domain) if beta is None else float(beta)
    if not 0 <= beta < 1:
        raise UsageError(f"beta must be in [0, 1) (useful: {BETA_RANGE[0]}-{BETA_RANGE[1]}), got {beta}")
    kept = torch.where(r.abs() >= beta, r, torch.zeros_like(r))
    top = kept.abs().max()
    if top == 0:
        raise UsageError(
            f"no style channel reaches relevance beta={beta} for this text (largest {r.abs().max():.3f}); "
            "lower --beta or describe the change differently"
        )
    _, std = stats.flat(matrix.layout)
    delta = kept / top * std.float()
    return GlobalDirection(matrix.layout, delta, r, beta, target, neutral)


def global_direction(
    guide: ClipGuide,
    target: str,
    neutral: str,
    matrix: RelevanceMatrix,
    stats: StyleStats,
    beta: float | None = DEFAULT_BETA,
    domain: str | None = None,
) -> GlobalDirection:
    """The StyleSpace direction for "neutral -> target" (e.g. "a dog" -> "a happy dog").

    Args:
        guide: the CLIP model the matrix was made with.
        matrix: channel relevance (:func:`~.relevance.relevance_matrix`, the gradient estimate, or StyleCLIP's
            published ``fs3``).
        stats: the generator's style statistics (the std scales each channel).
        beta: disentanglement threshold (0.08-0.3; higher = fewer channels, a more local edit); None picks one.
        domain: the generator's domain ('face' lowers the minimum channel count of the automatic β).
    """
    dt = guide.direction(target, neutral, templates="styleclip")  # GetDt's 79 templates
    return style_direction(matrix, dt, stats, beta, domain, target, neutral)
