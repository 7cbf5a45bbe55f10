"""StyleGAN-NADA's CLIP losses: the change between two pictures should follow the change between two texts.

The text direction is NADA's: each prompt is written into the 79 ImageNet templates NADA ships (the same list as
StyleCLIP's), every embedding is normalised, the per-template differences ``target - source`` are averaged and the
mean is normalised (:func:`text_direction`). The image direction is the difference of the normalised CLIP
embeddings of the adapted and the frozen generator's pictures of the same latent, normalised; the directional loss
is ``1 - cos`` between the two, averaged over the batch. NADA's optional terms are here too: the global CLIP loss
``1 - logit/100`` against ``"a {target}"``, the patch loss (one random 510-px crop per picture, scored against the
15 part templates' directions), and the manifold-angle loss. Several CLIP models combine as a weighted sum
(:class:`CombinedClipLoss`), each with its own text direction in its own embedding space.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError
from .clip import ClipGuide
from .templates import templates as template_set

# NADA's part templates, in its order (three lack the final period, and "the {}s fangs." is as published).
PART_TEMPLATES = (
    "the paw of a {}.", "the nose of a {}.", "the eye of the {}.", "the ears of a {}.", "an eye of a {}.",
    "the tongue of a {}.", "the fur of the {}.", "colorful {} fur.", "a snout of a {}.", "the teeth of the {}.",
    "the {}s fangs.", "a claw of the {}.", "the face of the {}", "a neck of a {}", "the head of the {}",
)  # fmt: skip
PATCH_SIZE = 510  # NADA's patch side for the patch loss; pictures must be larger
# The same preprocessing as NADA's (to [0, 1], bicubic resize of the shorter side to 224, centre crop, CLIP's
# mean/std): for the square pictures of a generator that is styleclip's "clip" mode.
PREPROCESS = "clip"


@torch.no_grad()
def template_features(guide: ClipGuide, text: str, templates: str = "styleclip") -> torch.Tensor:
    """``[T, D]``: the unit CLIP embedding of ``text`` written into each of the ``T`` templates (79 for NADA's)."""
    if not text or not text.strip():
        raise UsageError("empty prompt: describe the domain, e.g. --source photo --target sketch")
    prompts = [tpl(text) for tpl in template_set(templates)]
    return _encode_texts(guide, prompts)


@torch.no_grad()
def _encode_texts(guide: ClipGuide, prompts: Sequence[str]) -> torch.Tensor:
    tokens = guide.tokenizer(list(prompts), context_length=guide.context_length).to(guide.device)
    with guide._autocast():
        emb = guide.model.encode_text(tokens)
    emb = emb.float()
    return emb / emb.norm(dim=-1, keepdim=True)


def text_direction(guide: ClipGuide, source: str, target: str, templates: str = "styleclip") -> torch.Tensor:
    """NADA's text direction ``[1, D]``: ``normalise(mean_t(e(t(target)) - e(t(source))))`` over the templates."""
    delta = (template_features(guide, target, templates) - template_features(guide, source, templates)).mean(0)
    norm = delta.norm()
    if not norm > 1e-8:
        raise UsageError(f"{source!r} and {target!r} mean the same to CLIP; describe the change of domain")
    return (delta / norm).unsqueeze(0)


def image_features(guide: ClipGuide, img: torch.Tensor) -> torch.Tensor:
    """``[N, D]`` unit CLIP embeddings of generator pictures ``[N, 3, H, W]`` in ``[-1, 1]`` (differentiable)."""
    return guide.encode_image(img, preprocess=PREPROCESS)


class DirectionalClipLoss(torch.nn.Module):
    """NADA's ``CLIPLoss`` for one CLIP model: ``forward(frozen_img, adapted_img)`` -> scalar loss.

    ``weights``: ``direction`` (1 by default), ``global``, ``patch``, ``manifold`` (0 = off), as NADA's
    ``lambda_*``. Images are ``[B, 3, H, W]`` in ``[-1, 1]``, the same latents drawn by both generators.
    """

    def __init__(
        self,
        guide: ClipGuide,
        source: str,
        target: str,
        direction: float = 1.0,
        global_: float = 0.0,
        patch: float = 0.0,
        manifold: float = 0.0,
        direction_vector: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if min(direction, global_, patch, manifold) < 0 or not any((direction, global_, patch, manifold)):
            raise UsageError("the CLIP loss weights must be >= 0 and at least one of them positive")
        self.guide, self.source, self.target = guide, source, target
        self.weights = {"direction": direction, "global": global_, "patch": patch, "manifold": manifold}
        # computed once, as NADA caches it (an image-guided run passes its own direction instead)
        self.direction = (
            direction_vector.reshape(1, -1).float().to(guide.device)
            if direction_vector is not None
            else text_direction(guide, source, target)
        )
        self._part_directions: torch.Tensor | None = None
        self._cos_text: torch.Tensor | None = None

    def forward(
        self, frozen_img: torch.Tensor, adapted_img: torch.Tensor, rng: np.random.RandomState | None = None
    ) -> torch.Tensor:
        """The weighted sum of the active terms, in NADA's order (global, patch, direction, manifold)."""
        total = adapted_img.new_zeros((), dtype=torch.float32)
        if self.weights["global"]:
            total = total + self.weights["global"] * self.global_loss(adapted_img, f"a {self.target}")
        if self.weights["patch"]:
            total = total + self.weights["patch"] * self.patch_loss(frozen_img, adapted_img, rng)
        if self.weights["direction"]:
            total = total + self.weights["direction"] * self.directional_loss(frozen_img, adapted_img)
        if self.weights["manifold"]:
            total = total + self.weights["manifold"] * self.manifold_loss(frozen_img, adapted_img)
        return total

    def directional_loss(self, frozen_img: torch.Tensor, adapted_img: torch.Tensor) -> torch.Tensor:
        """``mean_b(1 - cos(normalise(e(adapted_b) - e(frozen_b)), text direction))``."""
        source = image_features(self.guide, frozen_img)
        target = image_features(self.guide, adapted_img)
        edit = target - source
        if edit.sum() == 0:  # the two generators are still equal (the first step): NADA nudges the picture
            target = image_features(self.guide, adapted_img + 1e-6)
            edit = target - source
        edit = edit / edit.norm(dim=-1, keepdim=True)
        return (1 - F.cosine_similarity(edit, self.direction, dim=1)).mean()

    def global_loss(self, img: torch.Tensor, text: str) -> torch.Tensor:
        """``mean(1 - logit/100)``: CLIP's logit of ``img`` against the bare ``text``, as NADA scores it."""
        emb = image_features(self.guide, img)
        text_emb = self.guide.encode_text(text).to(emb.device)
        logits = self.guide.logit_scale * emb @ text_emb.T
        return (1 - logits / 100).mean()

    def patch_loss(
        self, frozen_img: torch.Tensor, adapted_img: torch.Tensor, rng: np.random.RandomState | None = None
    ) -> torch.Tensor:
        """NADA's patch-directional loss: one random 510-px crop per picture (the same place in both pictures);
        the crops' direction is scored against the 15 part templates' directions, weighted by a softmax."""
        b, _, h, w = adapted_img.shape
        if min(h, w) <= PATCH_SIZE:
            raise UsageError(f"the patch loss crops {PATCH_SIZE}-px patches: it needs pictures larger than that")
        if self._part_directions is None:
            self._part_directions = torch.cat(
                [text_direction(self.guide, p.format(self.source), p.format(self.target)) for p in PART_TEMPLATES]
            )
        rng = rng if rng is not None else np.random.RandomState()
        half = PATCH_SIZE // 2
        xs = rng.randint(half, w - half, size=b)
        ys = rng.randint(half, h - half, size=b)

        def crops(img: torch.Tensor) -> torch.Tensor:
            return torch.cat(
                [
                    img[i : i + 1, :, y - half : y + half, x - half : x + half]
                    for i, (x, y) in enumerate(zip(xs, ys, strict=True))
                ]
            )

        edit = image_features(self.guide, crops(adapted_img)) - image_features(self.guide, crops(frozen_img))
        edit = edit / edit.norm(dim=-1, keepdim=True)
        dirs = self._part_directions.to(edit.device)
        distances = 1 - F.cosine_similarity(edit.unsqueeze(1), dirs.unsqueeze(0), dim=2)  # [B, 15]
        return (distances * torch.softmax(edit @ dirs.T, dim=-1)).mean()

    def manifold_loss(self, frozen_img: torch.Tensor, adapted_img: torch.Tensor) -> torch.Tensor:
        """``mean_b |cos(e(adapted_b), e(frozen_b)) - cos(t(target), t(source))|`` (NADA's angle loss), with the
        prompts' template-averaged embeddings."""
        if self._cos_text is None:  # once, as NADA caches the prompts' features: 158 text passes otherwise
            src_text = _mean_direction(template_features(self.guide, self.source))
            tgt_text = _mean_direction(template_features(self.guide, self.target))
            self._cos_text = (tgt_text * src_text).sum()
        cos_text = self._cos_text
        cos_img = (image_features(self.guide, adapted_img) * image_features(self.guide, frozen_img)).sum(-1)
        return (cos_img.clamp(-1, 1) - cos_text).abs().mean()


def _mean_direction(features: torch.Tensor) -> torch.Tensor:
    mean = features.mean(0)
    return mean / mean.norm()


class CombinedClipLoss(torch.nn.Module):
    """``sum_m weight_m * loss_m(frozen, adapted)`` over one :class:`DirectionalClipLoss` per CLIP model."""

    def __init__(self, losses: Sequence[DirectionalClipLoss], weights: Sequence[float]) -> None:
        super().__init__()
        if len(losses) != len(weights) or not losses:
            raise UsageError("give one weight per CLIP model (--clip-weights), and at least one model")
        self.losses = torch.nn.ModuleList(losses)
        self.weights = [float(w) for w in weights]

    def forward(
        self, frozen_img: torch.Tensor, adapted_img: torch.Tensor, rng: np.random.RandomState | None = None
    ) -> torch.Tensor:
        terms = [w * loss(frozen_img, adapted_img, rng) for loss, w in zip(self.losses, self.weights, strict=True)]
        return torch.stack(terms).sum()

    def global_loss(self, img: torch.Tensor, text: str) -> torch.Tensor:
        """The weighted global CLIP loss of ``img`` against ``text`` (NADA's adaptive layer selection uses it)."""
        terms = [w * loss.global_loss(img, text) for loss, w in zip(self.losses, self.weights, strict=True)]
        return torch.stack(terms).sum()
