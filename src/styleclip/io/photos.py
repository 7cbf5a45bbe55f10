"""A user's photo, as a picture the generator can be compared with: read robustly, cropped, as a tensor.

Whatever a camera or an editor produced - EXIF rotation, transparency, grayscale, 16-bit, CMYK, palette - comes
out as an upright 8-bit RGB image; a file that is not an image, is truncated, or would decompress to an absurd
size gets a one-line error that says what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UsageError

MAX_PIXELS = 120_000_000  # about 11000 x 11000: beyond any camera, short of a decompression bomb


def load_photo(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Read ``path`` as an upright RGB image (EXIF orientation applied, transparency on white)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give an image file")
    try:
        with Image.open(path) as probe:  # reads the header only: the size is known before any decoding
            w, h = probe.size
            if w * h > max_pixels:
                raise UsageError(
                    f"{path}: {w}x{h} is {w * h / 1e6:.0f} megapixels, more than the {max_pixels / 1e6:.0f} "
                    "styleclip accepts; downscale it first"
                )
            probe.load()
            img = ImageOps.exif_transpose(probe)
            img.load()
    except UsageError:
        raise
    except Image.DecompressionBombError:
        raise UsageError(f"{path}: the image would decompress to an unsafe size; downscale it first") from None
    except UnidentifiedImageError:
        raise UsageError(f"{path} is not an image styleclip can read (use JPEG, PNG, WebP, TIFF or BMP)") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated data, bad chunks, broken EXIF
        raise UsageError(f"{path}: the image is corrupt or truncated ({str(exc).splitlines()[0][:80]})") from None
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB: alpha composited on white, 16/32-bit and float scaled, CMYK converted."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        if img.mode == "F" and a.max() <= 1.0:
            peak = 1.0
        a = np.clip(a / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """The largest centred square, resized to ``size`` (antialiased)."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)


def crop_box(img: Image.Image, box: Sequence[int], size: int) -> Image.Image:
    """The user's ``(left, top, right, bottom)`` box, made square around its centre, resized to ``size``."""
    if len(box) != 4:
        raise UsageError("a box is four numbers: left,top,right,bottom")
    left, top, right, bottom = (int(v) for v in box)
    if right <= left or bottom <= top:
        raise UsageError(f"box {tuple(box)} is empty: right must exceed left and bottom exceed top")
    side = max(right - left, bottom - top)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    square = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
    # Parts of the square outside the photo are filled by PIL's crop with black; reflect is not worth it here.
    return img.crop(square).resize((size, size), Image.Resampling.LANCZOS)


def to_tensor(img: Image.Image, device: str | torch.device = "cpu") -> torch.Tensor:
    """RGB PIL image -> ``[1, 3, H, W]`` float32 in ``[-1, 1]`` (the generator's range)."""
    a = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32).copy())
    return (a.permute(2, 0, 1)[None] / 127.5 - 1).to(device)
