"""How close a reconstruction is to its photo, in the measures inversion papers report: PSNR, MS-SSIM, LPIPS and
(faces) ArcFace identity similarity.

MS-SSIM is Wang, Simoncelli and Bovik's (2003) as the field computes it: an 11-tap Gaussian window (σ 1.5) applied
without padding, ``K1 = 0.01``, ``K2 = 0.03``, five scales weighted ``(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)``
with 2x average pooling between them, the contrast-structure term at the first four scales and the full SSIM at
the last, negative terms clipped to 0, per colour channel, then averaged over the channels. Pictures too small for five scales (under 161 px) use as many as fit, with
the weights renormalised to sum to 1, and say so through :func:`ms_ssim_scales`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import UsageError

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW, SIGMA, K1, K2 = 11, 1.5, 0.01, 0.03


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two ``[-1, 1]`` pictures (peak-to-peak 2); ``inf`` for equal ones."""
    mse = float(F.mse_loss(a.float(), b.float()))
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


def _gaussian(device: torch.device) -> torch.Tensor:
    x = torch.arange(WINDOW, dtype=torch.float64) - WINDOW // 2
    g = torch.exp(-(x**2) / (2 * SIGMA**2))
    return (g / g.sum()).to(device)


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    x = F.conv2d(x, g.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, g: torch.Tensor, data_range: float) -> tuple[torch.Tensor, ...]:
    """Per-channel mean SSIM and mean contrast-structure ``[N, C]``."""
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    c = x.shape[1]
    # the five local moments in one grouped blur: fewer, larger convolutions run far faster than five small ones
    mu_x, mu_y, xx, yy, xy = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), g).split(c, dim=1)
    var_x = xx - mu_x**2
    var_y = yy - mu_y**2
    cov = xy - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    ssim = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs
    return ssim.flatten(2).mean(-1), cs.flatten(2).mean(-1)


def ms_ssim_scales(side: int) -> int:
    """How many of the five scales a ``side``-px picture allows (each needs at least the 11-px window)."""
    scales = 0
    while scales < len(MS_SSIM_WEIGHTS) and side >= WINDOW:
        scales += 1
        side = (side + 1) // 2  # odd sides are padded before pooling
    return scales


def ms_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MS-SSIM ``[N]`` in ``[0, 1]`` (1 = identical) of pictures ``[N, C, H, W]`` in ``[-1, 1]``."""
    if a.shape != b.shape or a.ndim != 4:
        raise UsageError(
            f"MS-SSIM compares two pictures of one shape [N, C, H, W], got {list(a.shape)}, {list(b.shape)}"
        )
    scales = ms_ssim_scales(min(a.shape[-2:]))
    if scales == 0:
        raise UsageError(f"MS-SSIM needs pictures of at least {WINDOW} px")
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64)
    if scales < len(MS_SSIM_WEIGHTS):  # the published five sum to 1.0001, and are used as published
        weights = weights / weights.sum()
    # float32: float64 convolutions have no fast path on CPUs (twice the time), for differences below 1e-6
    x, y = (a.float() + 1) / 2, (b.float() + 1) / 2  # data range 1
    g = _gaussian(a.device).float()
    terms = []
    for scale in range(scales):
        ssim, cs = _ssim_terms(x, y, g, 1.0)
        terms.append((ssim if scale == scales - 1 else cs).clamp(min=0))
        if scale < scales - 1:
            pad = [x.shape[-2] % 2, x.shape[-1] % 2]  # odd sides: pooled as the common PyTorch MS-SSIM pools
            x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
    stacked = torch.stack(terms, dim=0)  # [scales, N, C]
    return torch.prod(stacked ** weights.reshape(-1, 1, 1).to(stacked), dim=0).mean(dim=1).float()
