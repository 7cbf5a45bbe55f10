"""Differentiable augmentations for more robust CLIP guidance: random crops and cutouts, seeded.

Scoring several random views of an image, rather than the image alone, keeps an optimiser from
satisfying CLIP with adversarial pixel patterns (the trick of CLIP-guided diffusion and StyleGAN-NADA).
The views are cut from the image with plain slicing and resizing, so gradients flow back to it.
"""

from __future__ import annotations

import torch

from ..errors import UsageError


def random_views(
    img: torch.Tensor,
    n: int = 8,
    seed: int = 0,
    min_scale: float = 0.6,
    cutout: float = 0.0,
) -> torch.Tensor:
    """``n`` random square crops of every image, each at least ``min_scale`` of the side, with optional cutout.

    Args:
        img: ``[N, C, H, H]``.
        n: views per image.
        seed: the same seed gives the same crops (reproducible optimisation).
        min_scale: smallest crop side as a fraction of the image side, in ``(0, 1]``.
        cutout: side of a zeroed square (the image's mean is used) as a fraction of the crop; 0 = none.

    Returns:
        ``[N * n, C, H, H]``: views of image 0 first, each resized back to ``H`` (bilinear, antialiased).
    """
    if not 0 < min_scale <= 1 or not 0 <= cutout < 1 or n < 1:
        raise UsageError("views need n >= 1, 0 < min_scale <= 1 and 0 <= cutout < 1")
    size = img.shape[-1]
    gen = torch.Generator().manual_seed(seed)
    views = []
    for i in range(img.shape[0]):
        for _ in range(n):
            side = max(1, int(size * (min_scale + (1 - min_scale) * torch.rand((), generator=gen).item())))
            top = int(torch.randint(0, size - side + 1, (), generator=gen))
            left = int(torch.randint(0, size - side + 1, (), generator=gen))
            view = img[i : i + 1, :, top : top + side, left : left + side]
            if side != size:
                view = torch.nn.functional.interpolate(view, size=(size, size), mode="bilinear", antialias=True)
            if cutout > 0:
                hole = max(1, int(size * cutout))
                y = int(torch.randint(0, size - hole + 1, (), generator=gen))
                x = int(torch.randint(0, size - hole + 1, (), generator=gen))
                mask = torch.ones_like(view)
                mask[..., y : y + hole, x : x + hole] = 0
                view = view * mask + view.mean(dim=(2, 3), keepdim=True) * (1 - mask)
            views.append(view)
    return torch.cat(views)
