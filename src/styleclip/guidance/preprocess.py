"""Generator output -> CLIP input, differentiably.

Generators emit ``[N, 3, H, W]`` in ``[-1, 1]`` at 32..1024 px; CLIP wants its own resolution (224 for
ViT-B/32) and its own mean/std. Two conventions are offered:

- ``"clip"`` (default): one antialiased bicubic resize straight to the model's resolution, then
  ``(x + 1) / 2`` and CLIP's mean/std, as CLIP saw its training images.
- ``"styleclip"``: StyleCLIP's exact recipe, for side-by-side comparisons: nearest-neighbour 7x
  up-sampling followed by ``AvgPool2d(H // 32)``, on the raw ``[-1, 1]`` values with no mean/std.
  That pipeline is a separable box filter, so it is computed as two small matrix products
  (``A @ x @ A.T``) instead of materialising a 7x image (600 MB at 1024 px).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import UsageError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
MODES = ("clip", "styleclip")


def styleclip_box_matrix(size: int, out: int = 224, upsample: int = 7) -> torch.Tensor:
    """``[out, size]`` matrix equal to nearest ``upsample``-x up-sampling then average pooling to ``out``.

    StyleCLIP pools with kernel ``size // 32``; the result has ``size * 7 // (size // 32)`` = 224 pixels
    for every power-of-two ``size`` from 32 to 1024.
    """
    kernel = size // 32
    if kernel < 1 or (size * upsample) // kernel != out:
        raise UsageError(f"StyleCLIP preprocessing needs a square image of 32..{32 * 224 // 7} px, got {size}")
    # up-sampled pixel j comes from source pixel j // upsample; output pixel i averages j in [i*k, (i+1)*k)
    j = torch.arange(out * kernel)
    rows = j // kernel
    cols = j // upsample
    a = torch.zeros(out, size, dtype=torch.float64)
    a.index_put_((rows, cols), torch.full_like(rows, 1.0 / kernel, dtype=torch.float64), accumulate=True)
    return a.float()


def to_clip_input(
    img: torch.Tensor,
    resolution: int = 224,
    mode: str = "clip",
    mean: Sequence[float] = OPENAI_MEAN,
    std: Sequence[float] = OPENAI_STD,
) -> torch.Tensor:
    """Map generator images to CLIP's input, keeping gradients.

    Args:
        img: ``[N, 3, H, W]`` in about ``[-1, 1]``, H = W (any size; ``"styleclip"`` needs 32..1024).
        resolution: the CLIP model's input side (224 for ViT-B/32 and ViT-L/14, 336 for ViT-L/14@336).
        mode: ``"clip"`` (resize + mean/std) or ``"styleclip"`` (StyleCLIP's box filter, no normalisation).
        mean, std: per-channel statistics for ``"clip"`` mode (OpenAI's by default).

    Returns:
        ``[N, 3, resolution, resolution]`` in ``img``'s dtype and device.
    """
    if img.ndim != 4 or img.shape[1] != 3 or img.shape[2] != img.shape[3]:
        raise UsageError(f"expected square RGB images [N, 3, H, H], got {list(img.shape)}")
    if mode not in MODES:
        raise UsageError(f"preprocessing mode must be one of {MODES}, got {mode!r}")
    if mode == "styleclip":
        if resolution != 224:
            raise UsageError("StyleCLIP preprocessing produces 224 px; use it with a 224 px CLIP model")
        a = styleclip_box_matrix(img.shape[-1]).to(device=img.device, dtype=img.dtype)
        return a @ img @ a.T
    x = img
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False, antialias=True)
    x = (x + 1) / 2
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).reshape(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).reshape(1, 3, 1, 1)
    return (x - m) / s
