"""Generator output <-> pictures on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from ..utils.files import atomic_write


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """``[N, C, H, W]`` in about ``[-1, 1]`` -> ``[N, H, W, C]`` uint8, exactly as NVIDIA's generate.py.

    ``(x * 127.5 + 128).clamp(0, 255)`` then truncation to integers, so that a seed gives the same
    pixels here as in every image published with the official script.
    """
    x = (img.detach().to(torch.float32).permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.cpu().numpy()


def to_pil(img: torch.Tensor) -> list[Image.Image]:
    """``[N, C, H, W]`` in ``[-1, 1]`` -> N PIL images (RGB, or L for one channel)."""
    arrays = to_uint8(img)
    return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arrays]


def save_png(image: Image.Image, path: str | Path, text: dict[str, str] | None = None) -> Path:
    """Write a PNG atomically; ``text`` goes into tEXt chunks (how to reproduce the image)."""
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, str(value))
    return atomic_write(Path(path), lambda tmp: image.save(tmp, format="PNG", pnginfo=info))
