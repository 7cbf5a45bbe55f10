"""Deterministic, framework-independent weights for reference comparisons.

Every tensor is drawn from ``np.random.RandomState(seed + crc32(name))``, so the same numbers can be
put into any implementation that uses NVIDIA's parameter names (ours, or the official code in a
local harness). ``tests/data/reference_*.npz`` hold the official implementation's outputs for
these weights; the tests rebuild the weights and compare.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np


def reference_value(name: str, shape: Iterable[int], seed: int = 0, lr_multiplier: float = 0.01) -> np.ndarray:
    """The reference value of the parameter or buffer ``name`` (float32)."""
    shape = tuple(int(s) for s in shape)
    rs = np.random.RandomState((seed + zlib.crc32(name.encode())) % (2**32))
    x = rs.standard_normal(shape).astype(np.float32)
    if name.endswith("magnitude_ema"):
        return np.float32(0.5) + np.abs(x)  # StyleGAN3's running mean square of a layer's input: positive
    if name.startswith("mapping.fc") and name.endswith(".weight"):
        return x * np.float32(0.5 / lr_multiplier)  # stored pre-divided by the lr multiplier
    if name.endswith("affine.bias"):
        return 1 + np.float32(0.3) * x
    if name.endswith(("noise_strength", ".bias")):
        return np.float32(0.3) * x
    if name.endswith("w_avg"):
        return np.float32(0.5) * x
    return x


def fill(named_tensors: dict, seed: int = 0, lr_multiplier: float = 0.01) -> None:
    """Overwrite every tensor in ``{name: torch.Tensor}`` except the FIR filters and StyleGAN3's user transform."""
    import torch

    with torch.no_grad():
        for name, t in named_tensors.items():
            if name.endswith(("resample_filter", "up_filter", "down_filter", "input.transform")):
                continue
            t.copy_(torch.from_numpy(np.asarray(reference_value(name, t.shape, seed, lr_multiplier))))


# The configurations the reference outputs cover: (file tag, Generator kwargs in the official form).
REFERENCE_CONFIGS = {
    "r32": dict(
        z_dim=64,
        w_dim=64,
        c_dim=0,
        img_resolution=32,
        img_channels=3,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=dict(channel_base=2048, channel_max=64),
    ),
    "r32_cond_clamp": dict(
        z_dim=64,
        w_dim=64,
        c_dim=5,
        img_resolution=32,
        img_channels=3,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=dict(channel_base=2048, channel_max=64, conv_clamp=1.0, num_fp16_res=2),
    ),
    "r64": dict(
        z_dim=64,
        w_dim=64,
        c_dim=0,
        img_resolution=64,
        img_channels=3,
        mapping_kwargs=dict(num_layers=4),
        synthesis_kwargs=dict(channel_base=4096, channel_max=64),
    ),
    "r128_resnet": dict(
        z_dim=64,
        w_dim=64,
        c_dim=0,
        img_resolution=128,
        img_channels=3,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=dict(channel_base=4096, channel_max=64, architecture="resnet"),
    ),
    "r256_orig": dict(
        z_dim=64,
        w_dim=64,
        c_dim=0,
        img_resolution=256,
        img_channels=3,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=dict(channel_base=4096, channel_max=64, architecture="orig"),
    ),
    "r512_afhq": dict(
        z_dim=512,
        w_dim=512,
        c_dim=0,
        img_resolution=512,
        img_channels=3,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256),
    ),
    "r1024_ffhq": dict(
        z_dim=512,
        w_dim=512,
        c_dim=0,
        img_resolution=1024,
        img_channels=3,
        mapping_kwargs=dict(num_layers=8),
        synthesis_kwargs=dict(channel_base=32768, channel_max=512),
    ),
}
# StyleGAN3 (training.networks_stylegan3.Generator keyword arguments: synthesis arguments flat).
REFERENCE_CONFIGS_SG3 = {
    "sg3_t32": dict(
        z_dim=32,
        w_dim=32,
        c_dim=0,
        img_resolution=32,
        img_channels=3,
        mapping_kwargs=dict(num_layers=2),
        channel_base=256,
        channel_max=16,
        magnitude_ema_beta=0.999,
    ),
    "sg3_r32": dict(
        z_dim=32,
        w_dim=32,
        c_dim=0,
        img_resolution=32,
        img_channels=3,
        mapping_kwargs=dict(num_layers=2),
        channel_base=512,
        channel_max=32,
        magnitude_ema_beta=0.999,
        conv_kernel=1,
        use_radial_filters=True,
    ),
    "sg3_t16_cond_clamp": dict(
        z_dim=16,
        w_dim=16,
        c_dim=3,
        img_resolution=16,
        img_channels=3,
        mapping_kwargs=dict(num_layers=3),
        channel_base=128,
        channel_max=8,
        num_layers=6,
        num_critical=1,
        margin_size=4,
        conv_clamp=0.5,
        magnitude_ema_beta=0.999,
    ),
    "sg3_r64": dict(
        z_dim=16,
        w_dim=16,
        c_dim=0,
        img_resolution=64,
        img_channels=3,
        mapping_kwargs=dict(num_layers=2),
        channel_base=256,
        channel_max=8,
        num_layers=8,
        magnitude_ema_beta=0.999,
        conv_kernel=1,
        use_radial_filters=True,
    ),
}
# The user transform of the second StyleGAN3 reference image: gen_images.py --translate=0.3,-0.2 --rotate=25
REFERENCE_TRANSLATE = (0.3, -0.2)
REFERENCE_ROTATE = 25.0
REFERENCE_SEEDS = (0, 1)
REFERENCE_PSI = 0.7


def image_slices(img: np.ndarray) -> dict[str, np.ndarray]:
    """Small fingerprints of a ``[N, C, H, W]`` image: two corners, a strided grid, and channel stats."""
    step = max(img.shape[-1] // 16, 1)
    return {
        "corner_tl": img[:, :, :6, :6],
        "corner_br": img[:, :, -6:, -6:],
        "grid": img[:, :, ::step, ::step],
        "mean": img.mean(axis=(2, 3)),
        "std": img.std(axis=(2, 3)),
    }
