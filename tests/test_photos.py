"""Reading users' photos: every odd kind of file comes out upright RGB, or as a one-line error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from styleclip import UsageError
from styleclip.io.photos import center_crop, crop_box, load_photo, to_tensor


def _gradient(w: int = 40, h: int = 20) -> Image.Image:
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None]
    return Image.fromarray(a)


def test_exif_orientation_is_applied(tmp_path):
    img = _gradient()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    out = load_photo(tmp_path / "rotated.jpg")
    assert out.size == (20, 40) and out.mode == "RGB"


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "I;16", "CMYK", "P", "1"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    base = _gradient()
    if mode == "RGBA":
        img = base.convert("RGBA")
        img.putalpha(0)  # fully transparent: white
    elif mode == "LA":
        img = base.convert("LA")
    elif mode == "I;16":
        gray = np.asarray(base, np.uint16)[..., 0]  # 0..255 across the width
        img = Image.fromarray((gray * 257).astype(np.uint16))
    else:
        img = base.convert(mode)
    suffix = ".jpg" if mode == "CMYK" else ".png"
    if mode == "P":
        img.info["transparency"] = 0
    img.save(tmp_path / f"x{suffix}")
    out = load_photo(tmp_path / f"x{suffix}")
    assert out.mode == "RGB" and out.size == (40, 20)
    a = np.asarray(out)
    if mode == "RGBA":
        assert (a == 255).all()
    if mode == "I;16":  # 16-bit scaled down, not clipped to white
        assert a[..., 0].max() == 255 and a[..., 0].min() == 0 and 100 < a[..., 0].mean() < 160


def test_bad_files_give_clear_messages(tmp_path):
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(UsageError, match="not an image"):
        load_photo(tmp_path / "notes.jpg")
    _gradient(200, 200).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match="corrupt or truncated"):
        load_photo(tmp_path / "cut.png")
    with pytest.raises(UsageError, match="megapixels"):
        load_photo(tmp_path / "full.png", max_pixels=1000)
    with pytest.raises(UsageError, match="no such file"):
        load_photo(tmp_path / "missing.png")
    with pytest.raises(UsageError, match="folder"):
        load_photo(tmp_path)


def test_crops_and_tensor():
    img = _gradient(40, 20)
    assert center_crop(img, 16).size == (16, 16)
    assert crop_box(img, (0, 0, 10, 20), 8).size == (8, 8)
    with pytest.raises(UsageError, match="empty"):
        crop_box(img, (5, 5, 5, 9), 8)
    t = to_tensor(img)
    assert t.shape == (1, 3, 20, 40) and t.dtype == torch.float32
    assert t.min() >= -1 and t.max() <= 1 and t[0, 0, 0, -1] == 1
