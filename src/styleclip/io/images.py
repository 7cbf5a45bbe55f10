"""Generator output <-> pictures on disk."""

from __future__ import annotations

from collections.abc import Callable
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


def compare_image(images: list[Image.Image], labels: list[str], gap: int | None = None) -> Image.Image:
    """Side by side, each with its label on a strip above it (e.g. ``["before", "after: a happy dog"]``).

    The label's font scales with the image height so that it reads the same at 32 and 1024 px; labels
    too long for their column are shortened with an ellipsis.
    """
    from PIL import ImageDraw, ImageFont

    if len(images) != len(labels) or not images:
        raise ValueError("compare_image needs one label per image")
    h = max(im.height for im in images)
    font_size = max(8, h // 24)
    try:
        font = ImageFont.load_default(size=font_size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        font = ImageFont.load_default()
    gap = max(2, h // 64) if gap is None else gap
    strip = font_size + 2 * max(2, font_size // 3)
    width = sum(im.width for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, h + strip), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for im, label in zip(images, labels, strict=True):
        canvas.paste(im.convert("RGB"), (x, strip))
        text = fit_label(label, lambda t: draw.textlength(t, font=font), im.width - 4)
        draw.text((x + 2, (strip - font_size) // 2), text, fill="black", font=font)
        x += im.width + gap
    return canvas


def fit_label(label: str, measure: Callable[[str], float], width: float) -> str:
    """``label`` on one line, shortened with an ellipsis to at most ``width`` as ``measure`` (pixels) finds.

    Measures O(log n) strings, none much longer than what fits: a 100,000-character prompt is as quick as a short
    one (cutting a character at a time measured every prefix, quadratic in the prompt's length).
    """
    text = " ".join(label.split())  # one line: a newline or tab in a prompt is a space on the label
    n = len(text)

    def fits(k: int) -> bool:
        return measure(text if k == n else text[:k] + "…") <= width

    if n <= _PROBE and fits(n):  # the common case: one measurement
        return text
    # the longest prefix that fits with its ellipsis: grow a bound by doubling, then halve the interval
    lo, k = 0, 1
    while k < n and fits(k):
        lo, k = k, 2 * k
    hi = min(k, n)
    if hi == n and lo < n and n > _PROBE and fits(n):
        return text
    while hi - lo > 1:  # fits(lo) (or lo == 0), not fits(hi)
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    if lo == 0:
        return "…" if measure("…") <= width else ""
    return text[:lo].rstrip() + "…"


_PROBE = 4096  # labels up to this length are measured whole first: the common case is one measurement


def image_grid(rows: list[list[Image.Image]], labels: list[str]) -> Image.Image:
    """Rows of equal-size images under one strip of column labels (e.g. an α sweep per source image)."""
    if not rows or any(len(r) != len(labels) for r in rows):
        raise ValueError("image_grid needs one label per column and at least one row")
    header = compare_image(rows[0], labels)
    strip = header.height - rows[0][0].height
    gap = header.width - sum(im.width for im in rows[0])
    gap = gap // max(len(labels) - 1, 1)
    h = rows[0][0].height
    canvas = Image.new("RGB", (header.width, strip + len(rows) * h + (len(rows) - 1) * gap), "white")
    canvas.paste(header, (0, 0))
    for r, row in enumerate(rows[1:], start=1):
        x = 0
        for im in row:
            canvas.paste(im.convert("RGB"), (x, strip + r * (h + gap)))
            x += im.width + gap
    return canvas
