"""Preservation outside the edited region: PSNR and LPIPS of the pixels an edit should not have touched.

HairCLIP (Wei et al., CVPR 2022) judges "irrelevant attribute preservation" of a hair edit on the non-hair pixels
only: both the input and the edited image are parsed, and a pixel counts when it is not hair in EITHER of them (its
``criteria/parse_related_loss/bg_loss.py`` keeps ``(non-hair of x) AND (non-hair of x_hat)``, the complement of the
union of both hair masks). Here the same rule covers any face region a prompt names:

- both images are parsed by the BiSeNet face parser (:mod:`styleclip.video.masks`, CelebAMask-HQ's 19 classes at
  512 x 512); the region is the union of the two masks, brought to the image's size (a pixel of the image counts as
  region when any parser pixel it covers does) and dilated by ``dilate`` pixels of a 1024 image (the parser's edge
  is a few pixels uncertain and an edit's change fades out across it; ``dilate=0`` is HairCLIP's exact rule);
- ``psnr_masked`` = ``10 log10(255^2 / MSE)`` with the MSE over the kept pixels and the three channels only, on the
  8-bit scale (as :func:`styleclip.evaluation.edits.psnr`);
- ``lpips_masked`` = LPIPS of the two images with the region set to the same mid-grey in both (LPIPS needs a whole
  image; what is blanked in both cannot differ, so only the kept pixels, and their context across the border, count).

A prompt's region comes from :func:`region_of` (keywords, or the user's explicit choice); ``None`` means no region is
known and the scores are whole-image ones.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError

# CelebAMask-HQ class ids in the order face-parsing.PyTorch's BiSeNet (styleclip.nets.bisenet.CLASSES) predicts them.
REGIONS: dict[str, tuple[int, ...]] = {
    "background": (0,),
    "skin": (1,),
    "brows": (2, 3),
    "eyes": (4, 5),
    "glasses": (6,),
    "ears": (7, 8, 9),  # both ears and earrings
    "nose": (10,),
    "mouth": (11, 12, 13),  # inner mouth and both lips
    "lips": (12, 13),
    "neck": (14, 15),  # neck and necklace
    "cloth": (16,),
    "hair": (17,),
    "hat": (18,),
    "face": (1, 2, 3, 4, 5, 6, 10, 11, 12, 13),  # skin and what lies on it: make-up, beards, wrinkles
}

WHOLE = ("whole", "none", "all", "image")  # an explicit choice of no region: score the whole image
DEFAULT_DILATE = 8.0  # pixels of a 1024 image (4 at the parser's 512)

# Keyword patterns per region, tried in this order; every region whose pattern matches is part of the answer. Word
# boundaries keep "chair" out of hair and "eyeglasses" out of eyes.
_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("hair", r"hair\w*|haircut|bald\w*|mohawk|afro|bangs|fringe|ponytails?|pigtails?|braids?|braided|buns?|"
             r"dreadlocks?|cornrows|mullet|quiff|pompadour|undercut|perm|curls?|curly|wavy|blond\w*|brunette|"
             r"redhead|ginger|bob ?cut|buzz ?cut|crew ?cut|bowl ?cut|side ?part|receding|updo"),
    ("glasses", r"glasses|eyeglasses|sunglasses|spectacles|goggles|monocle"),
    ("brows", r"eye ?brows?|brows?|unibrow"),
    ("eyes", r"eyes?|eyeshadow|eye ?liner|mascara|eyelash\w*|lashes|squint\w*|wink\w*|irises|iris|pupils?"),
    ("mouth", r"lipstick|lips?|smil\w*|grin\w*|mouth\w*|teeth|tooth|laugh\w*|frown\w*|pout\w*"),
    ("nose", r"nose|nostrils?"),
    ("ears", r"ears?|earrings?|elf ears"),
    ("hat", r"hat|hats|cap|caps|beanie|helmet|crown|tiara|turban|headscarf|hood|bandana"),
    ("neck", r"neck\w*|choker|scarf"),
    ("face", r"make ?-?up|beard\w*|mustache\w*|moustache\w*|goatee|stubble|sideburns|freckles?|wrinkl\w*|"
             r"blush\w*|tan|tanned|pale|skin|cheeks?|chin|jaw\w*|face paint|tattoo\w*|scars?|acne|clown"),
    ("background", r"background|backdrop|scenery"),
)  # fmt: skip
_PATTERNS = tuple((name, re.compile(rf"\b(?:{pattern})\b", re.IGNORECASE)) for name, pattern in _KEYWORDS)


def region_classes(region: str) -> tuple[int, ...]:
    """The parser class ids of a region name, or of several joined with ``+`` (``"hair+face"``)."""
    parts = [p.strip().lower() for p in str(region).split("+")]
    unknown = [p for p in parts if p not in REGIONS]
    if not parts or unknown:
        raise UsageError(f"unknown face region {region!r}; use one of {', '.join(REGIONS)} (or several joined by +)")
    return tuple(sorted({c for p in parts for c in REGIONS[p]}))


def region_of(text: str, explicit: str | None = None) -> str | None:
    """The face region a prompt edits: ``explicit`` when given (a :data:`REGIONS` name, several joined by ``+``,
    or ``"whole"`` for none), else the regions the prompt's words name (``"purple hair"`` -> ``"hair"``, ``"red
    lipstick"`` -> ``"mouth"``, ``"a beard and a mohawk"`` -> ``"face+hair"``); ``None`` when no word names one
    (score the whole image)."""
    if explicit is not None and str(explicit).strip():
        name = str(explicit).strip().lower()
        if name in WHOLE:
            return None
        region_classes(name)  # refuses an unknown name in one line
        return "+".join(sorted({p.strip() for p in name.split("+")}))
    found = sorted({name for name, pattern in _PATTERNS if pattern.search(str(text or ""))})
    if "face" in found:  # the face region holds these parts already
        found = [f for f in found if f not in ("brows", "eyes", "glasses", "mouth", "lips", "nose", "skin")]
    return "+".join(found) if found else None


def _check_pair(before: torch.Tensor, after: torch.Tensor) -> None:
    for name, x in (("before", before), ("after", after)):
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise UsageError(f"masked scores compare two images [1, 3, H, W] in [-1, 1]; {name} is {shape}")
    if before.shape != after.shape:
        raise UsageError(
            f"masked scores compare images of one size; before is {list(before.shape)} and after "
            f"{list(after.shape)} (resize one, or compare the edit with its own source)"
        )


def region_mask(labels: np.ndarray, classes: tuple[int, ...], size: tuple[int, int], dilate: float) -> torch.Tensor:
    """``[H, W]`` bool: the pixels of an ``size`` image in the region of any of the parsed maps ``labels``
    (``[K, h, w]`` class ids; their union), dilated by ``dilate`` pixels of a 1024 image."""
    m = torch.from_numpy(np.isin(np.asarray(labels), classes).any(0).astype(np.float32))[None, None]
    h, w = size
    if (h, w) != tuple(m.shape[-2:]):
        # Shrinking keeps a pixel when any parser pixel it covers is region (max); growing copies (nearest).
        if h <= m.shape[-2] and w <= m.shape[-1]:
            m = F.adaptive_max_pool2d(m, (h, w))
        else:
            m = F.interpolate(m, (h, w), mode="nearest")
    from ..video.masks import dilate as grow
    from ..video.masks import scaled_pixels

    return grow(m, scaled_pixels(dilate, max(h, w)))[0, 0] > 0


def _psnr(a: torch.Tensor, b: torch.Tensor, keep: torch.Tensor) -> float | None:
    """PSNR in dB over the ``keep`` pixels (all channels) on the 8-bit scale; None when nothing is kept."""
    n = int(keep.sum())
    if n == 0:
        return None
    diff = ((a.double() - b.double()) * 127.5)[0]  # [-1, 1] -> 8-bit units
    mse = float(diff.square().sum(0)[keep].sum()) / (3 * n)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@torch.no_grad()
def masked_scores(
    before: torch.Tensor,
    after: torch.Tensor,
    parser,
    region: str | None,
    lpips=None,
    dilate: float = DEFAULT_DILATE,
) -> dict[str, Any]:
    """PSNR and LPIPS of an edit outside the region it was meant to change (HairCLIP's practice).

    Args:
        before, after: the source and the edit, ``[1, 3, H, W]`` in ``[-1, 1]``, the same size.
        parser: a face parser (:func:`styleclip.video.masks.load_face_parser`): ``parser.labels(x)`` takes
            ``[N, 3, H, W]`` in ``[-1, 1]`` and returns class ids ``[N, h, w]`` (CelebAMask-HQ's classes).
        region: a :data:`REGIONS` name (several joined by ``+``), or None for the whole image (no parsing).
        lpips: an LPIPS module (``lpips(a, b) -> [N]``), or None (``lpips_masked`` is then None).
        dilate: how far the region grows, in pixels of a 1024 image (scaled to ``H``); 0 keeps the parsed edge.

    Returns:
        ``{"psnr_masked": dB over the pixels outside the region (inf when they are identical, None when the region
        covers everything), "lpips_masked": LPIPS with the region blanked in both, or None, "region_fraction": the
        share of pixels left out, "region": the region's name or None}``.
    """
    _check_pair(before, after)
    if dilate is None or not math.isfinite(dilate) or dilate < 0:
        raise UsageError(f"the region's dilation must be a number of pixels >= 0, got {dilate!r}")
    h, w = before.shape[-2:]
    if region is None:
        excluded = torch.zeros(h, w, dtype=torch.bool)
    else:
        classes = region_classes(region)
        if parser is None:
            raise UsageError(f"masking the {region} region needs a face parser (face-parsing:bisenet)")
        labels = parser.labels(torch.cat([before, after]).float())
        excluded = region_mask(labels, classes, (h, w), dilate)
    keep = ~excluded
    a, b = before.detach().float().cpu(), after.detach().float().cpu()
    scores: dict[str, Any] = {
        "psnr_masked": _psnr(a, b, keep),
        "lpips_masked": None,
        "region_fraction": float(excluded.float().mean()),
        "region": region,
    }
    if lpips is not None and bool(keep.any()):
        params = lpips.parameters() if isinstance(lpips, torch.nn.Module) else iter(())
        device = next((p.device for p in params), before.device)
        blank = excluded[None, None]
        a_m, b_m = a.masked_fill(blank, 0.0).to(device), b.masked_fill(blank, 0.0).to(device)
        scores["lpips_masked"] = float(lpips(b_m, a_m)[0])
    return scores


__all__ = ["DEFAULT_DILATE", "REGIONS", "masked_scores", "region_classes", "region_mask", "region_of"]
