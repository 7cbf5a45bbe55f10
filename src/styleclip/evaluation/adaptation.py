"""How far an adapted generator (StyleGAN-NADA's) moved from its base, and towards what: scores of the same codes
drawn by both.

- ``directional``: ``cos(normalise(e(adapted) - e(base)), d)`` per sample, ``d`` NADA's text direction from the
  source to the target text (:func:`styleclip.guidance.directional.text_direction`; ``e``: unit CLIP image
  embeddings with NADA's preprocessing): 1 when the pictures changed exactly as the words did;
- ``clip_target`` (and ``clip_target_base`` for reference): cosine of the adapted (base) pictures with the target
  text;
- ``identity``: ArcFace cosine of base and adapted pictures, for faces when an identity judge is given.

The adapted generator shares its base's W space (NADA freezes the mapping network), so W+ codes are drawn by it
directly; StyleSpace codes carry the base's change ``Δs = codes.styles - base.styles(ws)`` over to the adapted
generator's own styles (:func:`styleclip.adapted.adapted_codes`).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ..adapted import check_compatible, draw_adapted
from ..errors import UsageError
from ..latents import Codes


def adaptation_prompts(adapted) -> tuple[str | None, str | None]:
    """``(source, target)`` texts the adapted generator records (``meta["adapted"]``), None where it records none."""
    info = (getattr(adapted, "meta", None) or {}).get("adapted") or {}
    source, target = info.get("source"), info.get("target")
    return (source if isinstance(source, str) and source else None,
            target if isinstance(target, str) and target else None)  # fmt: skip


@torch.no_grad()
def score_adaptation(
    guide,
    base_images: torch.Tensor,
    adapted_images: torch.Tensor,
    source: str | None,
    target: str | None,
    identity=None,
) -> dict[str, list[float | None]]:
    """Per-sample scores of pairs of pictures ``[N, 3, H, W]`` in ``[-1, 1]`` (the same codes by both generators).

    Returns ``{"directional", "clip_target", "clip_target_base", "identity": [N values or None]}``: a score
    whose text (or judge) is missing is None throughout.
    """
    from ..guidance.directional import image_features, text_direction

    n = base_images.shape[0]
    device = guide.device
    e_base = image_features(guide, base_images.to(device)).float()
    e_adapted = image_features(guide, adapted_images.to(device)).float()
    out: dict[str, list[float | None]] = {k: [None] * n for k in SCORES}
    if source and target:
        direction = text_direction(guide, source, target)[0].to(device)
        change = e_adapted - e_base
        norm = change.norm(dim=-1)
        # pictures that did not change have no direction: they score 0, as NADA's loss would count them
        cos = torch.where(norm > 0, (change @ direction) / norm.clamp_min(1e-12), torch.zeros_like(norm))
        out["directional"] = [float(x) for x in cos]
    if target:
        text = guide.encode_text(target)[0].to(device).float()
        out["clip_target"] = [float(x) for x in e_adapted @ text]
        out["clip_target_base"] = [float(x) for x in e_base @ text]
    if identity is not None:
        a, b = identity.embed(adapted_images.to(device)), identity.embed(base_images.to(device))
        out["identity"] = [float(x) for x in (a * b).sum(dim=-1)]
    return out


SCORES = ("directional", "clip_target", "clip_target_base", "identity")


def summarise(scores: dict[str, list[float | None]]) -> dict[str, Any]:
    """Mean and standard deviation of each score (``<score>_mean``, ``<score>_std``; None when not scored)."""
    out: dict[str, Any] = {}
    for key in SCORES:
        values = [v for v in scores.get(key, []) if v is not None]
        out[f"{key}_mean"] = statistics.fmean(values) if values else None
        out[f"{key}_std"] = statistics.pstdev(values) if values else None
    return out


@torch.no_grad()
def evaluate_adaptation(
    base,
    adapted,
    source: str | None = None,
    target: str | None = None,
    *,
    seeds: Iterable[int] = range(16),
    clip=None,
    identity=None,
    truncation_psi: float = 0.7,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Score ``adapted`` against ``base`` on the pictures of ``seeds`` (W from ``base``'s mapping, ψ
    ``truncation_psi``, drawn by both).

    Args:
        base, adapted: generators (:func:`styleclip.load_generator`; ``adapted`` may be composed with ``base`` by
            :func:`styleclip.load_adapted`), compatible (:func:`check_compatible`).
        source, target: the texts of the change (default: what ``adapted.meta["adapted"]`` records).
        clip: the judging CLIP model (a :class:`~styleclip.guidance.clip.ClipGuide`, or a name/path for
            :func:`styleclip.load_clip`; None: the default model).
        identity: an ArcFace judge (:func:`styleclip.guidance.identity.load_identity_loss`) for faces, or None.

    Returns: ``{"source", "target", "samples", "seeds", "<score>_mean", "<score>_std", "per_sample"}`` with the
    scores of :func:`score_adaptation` (``per_sample``: one dict per seed).
    """
    from ..guidance.clip import DEFAULT_CLIP, ClipGuide, load_clip
    from ..sources import from_seeds

    check_compatible(adapted, base)
    recorded = adaptation_prompts(adapted)
    source, target = source or recorded[0], target or recorded[1]
    if not target:
        raise UsageError("the adapted generator records no target text: give --target (and --source)")
    if not source:
        raise UsageError("the adapted generator records no source text: give --source (e.g. photo)")
    seeds = list(seeds)
    if not seeds:
        raise UsageError("give at least one seed, e.g. --seeds 0-15")
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    guide = clip if isinstance(clip, ClipGuide) else load_clip(clip or DEFAULT_CLIP, device=base.device)
    scores: dict[str, list[float | None]] = {k: [] for k in SCORES}
    for i in range(0, len(seeds), batch_size):
        ws = from_seeds(base, seeds[i : i + batch_size], truncation_psi).ws
        got = score_adaptation(
            guide, base.synthesize(ws), draw_adapted(base, adapted, Codes(ws)), source, target, identity
        )
        for key in SCORES:
            scores[key] += got[key]
    per_sample = [{"seed": s, **{k: scores[k][j] for k in SCORES}} for j, s in enumerate(seeds)]
    return {"source": source, "target": target, "samples": len(seeds), "seeds": seeds, "clip": guide.name,
            **summarise(scores), "per_sample": per_sample}  # fmt: skip


@torch.no_grad()
def evaluate_styles(root: str | Path, guide, identity=None, batch_size: int = 16) -> list[dict[str, Any]]:
    """One row per adapted generator of a batch folder ``root`` (``styles/<style>/jobs/<job>/``): the scores of
    :func:`score_adaptation` over every edit it drew, each paired with the generator's own ``after.png`` of the
    same job (``jobs/<job>/``). [] when the batch drew no styles."""
    from .edits import _json, _tensor

    root = Path(root)
    rows = []
    for style in sorted(p for p in (root / "styles").glob("*") if p.is_dir()):
        pairs, info = [], {}
        for report in sorted((style / "jobs").glob("*/report.json")):
            data = _json(report)
            base = root / "jobs" / report.parent.name / "after.png"
            if not data or not isinstance(data.get("adapted"), dict) or not base.is_file():
                continue
            info = info or data["adapted"]
            if (report.parent / "after.png").is_file():
                pairs.append((base, report.parent / "after.png"))
        if not pairs:
            continue
        source, target = info.get("source"), info.get("target")
        scores: dict[str, list[float | None]] = {k: [] for k in SCORES}
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i : i + batch_size]
            base_img = torch.cat([_tensor(b, guide.device) for b, _ in chunk])
            adapted_img = torch.cat([_tensor(a, guide.device) for _, a in chunk])
            got = score_adaptation(guide, base_img, adapted_img, source, target, identity)
            for key in SCORES:
                scores[key] += got[key]
        rows.append({"style": style.name, "adapted": info.get("name"), "source": source, "target": target,
                     "pairs": len(pairs), **summarise(scores)})  # fmt: skip
    return rows


__all__ = [
    "SCORES",
    "adaptation_prompts",
    "evaluate_adaptation",
    "evaluate_styles",
    "score_adaptation",
    "summarise",
]
