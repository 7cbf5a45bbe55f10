"""Preservation outside the edited region (HairCLIP's practice): PSNR and LPIPS of the pixels a prompt should not
change, with the region parsed in both images by a face parser (a random BiSeNet in the published layout, and a
parser by colour whose masks are known exactly)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from styleclip.errors import UsageError
from styleclip.evaluation.edits import psnr
from styleclip.evaluation.masked import REGIONS, masked_scores, region_classes, region_of
from styleclip.nets.bisenet import CLASSES
from styleclip.video.masks import load_face_parser

from conftest import tiny_lpips_model
from hostile import refused_by
from test_video_masks import face_crop, random_state

pytestmark = pytest.mark.usefixtures("one_thread")


class ColourParser:
    """Labels a pixel hair (17) where its red channel is above 0.5 and skin (1) elsewhere, at 512 x 512 (as
    BiSeNet answers), nearest resizing: the region of any picture is known exactly."""

    def __init__(self) -> None:
        self.calls = 0

    def labels(self, x: torch.Tensor) -> np.ndarray:
        self.calls += 1
        x = F.interpolate(x, (512, 512), mode="nearest")
        return np.where((x[:, 0] > 0.5).numpy(), 17, 1).astype(np.uint8)


def picture(size: int = 64, seed: int = 0) -> torch.Tensor:
    """``[1, 3, S, S]`` in [-1, 1]: texture with no red above 0.5, and a red square (the 'hair') at the top."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, size, size, generator=g) * 1.2 - 1
    x[:, 0, : size // 4, size // 4 : 3 * size // 4] = 0.9
    return on_8_bits(x)


def on_8_bits(x: torch.Tensor) -> torch.Tensor:
    """What a PNG holds: values on the 8-bit grid."""
    return ((x + 1) * 127.5).round().clamp(0, 255) / 127.5 - 1


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()


def test_an_edit_inside_the_region_is_perfect_outside_it():
    before = picture()
    after = before.clone()
    after[:, 1:, :16, 16:48] += 0.3  # the 'hair' changes colour; nothing else does
    after[:, 0, 20:30, 20:30] = 0.8  # and grows: the new hair is in the union of both masks
    after = on_8_bits(after)
    parser = ColourParser()
    scores = masked_scores(before, after, parser, "hair", lpips=tiny_lpips_model(), dilate=0)
    assert parser.calls == 1  # both images in one batch
    assert scores["psnr_masked"] == math.inf
    assert scores["lpips_masked"] == 0.0
    assert scores["region_fraction"] == pytest.approx((16 * 32 + 100) / 64**2)
    assert scores["region"] == "hair"
    whole = masked_scores(before, after, parser, None, lpips=tiny_lpips_model())
    assert math.isfinite(whole["psnr_masked"])
    assert whole["psnr_masked"] == pytest.approx(psnr(to_uint8(after), to_uint8(before)), rel=1e-6)
    assert whole["lpips_masked"] > 0 and whole["region_fraction"] == 0.0 and whole["region"] is None


def test_the_psnr_is_over_the_kept_pixels_only():
    before = picture()
    after = before.clone()
    after[:, 2, 40:50, 10:20] += 0.1  # outside the region: 100 pixels, one channel
    scores = masked_scores(before, after, ColourParser(), "hair", dilate=0)
    kept = 64 * 64 - 16 * 32
    mse = float(((after - before)[:, 2, 40:50, 10:20].double() * 127.5).square().sum()) / (3 * kept)
    assert scores["psnr_masked"] == pytest.approx(10 * math.log10(255**2 / mse), rel=1e-6)
    assert scores["lpips_masked"] is None  # no LPIPS model given
    # the same change over the whole image is spread over more pixels: a higher PSNR
    assert masked_scores(before, after, None, None)["psnr_masked"] > scores["psnr_masked"]


def test_dilation_grows_the_region_with_the_resolution():
    small, large = picture(64), picture(128)
    f0 = masked_scores(small, small, ColourParser(), "hair", dilate=0)["region_fraction"]
    f_small = masked_scores(small, small, ColourParser(), "hair", dilate=32)["region_fraction"]  # 2 px at 64
    f_large = masked_scores(large, large, ColourParser(), "hair", dilate=32)["region_fraction"]  # 4 px at 128
    assert f0 == pytest.approx(16 * 32 / 64**2)
    assert f_small == pytest.approx((16 + 2) * (32 + 4) / 64**2)  # the square's top edge is the image's
    assert f_large == pytest.approx(f_small)  # the same share of the picture at any size
    assert masked_scores(small, small, ColourParser(), "hair")["psnr_masked"] == math.inf


def test_with_a_bisenet_parser_changes_inside_the_parsed_region_leave_psnr_infinite(tmp_path):
    path = tmp_path / "79999_iter.pth"
    torch.save(random_state(), path)
    parser = load_face_parser(path)
    crop = face_crop(64)
    before = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1
    labels = parser.labels(before)[0]
    # a region the random parser gives a fair share of this crop
    region = next(
        name for name, ids in REGIONS.items() if 0.02 < np.isin(labels, ids).mean() < 0.6 and name != "background"
    )
    inside = torch.from_numpy(np.isin(labels, REGIONS[region]).astype(np.float32))[None, None]
    inside = -F.adaptive_max_pool2d(-inside, (64, 64))[0, 0] > 0  # image pixels wholly inside the parsed region
    assert inside.sum() > 10
    after = before.clone()
    after[:, :, inside] = -after[:, :, inside]
    scores = masked_scores(before, after, parser, region, lpips=tiny_lpips_model())
    assert scores["psnr_masked"] == math.inf
    assert 0 < scores["region_fraction"] < 1
    whole = masked_scores(before, after, parser, None)
    assert math.isfinite(whole["psnr_masked"])


def test_region_keywords():
    assert region_of("purple hair") == "hair"
    assert region_of("A Mohawk hairstyle") == "hair"
    assert region_of("bald") == "hair"
    assert region_of("bobcut") == "hair" and region_of("a bowl cut") == "hair"
    assert region_of("a red-haired woman") == "hair"
    assert region_of("red lipstick") == "mouth"
    assert region_of("a smiling face") == "mouth"
    assert region_of("a beard and a smile") == "face"  # the face region holds the mouth
    assert region_of("smile") == "mouth"
    assert region_of("blue eyes") == "eyes"
    assert region_of("eyeglasses") == "glasses"
    assert region_of("thick eyebrows") == "brows"
    assert region_of("a beard") == "face"
    assert region_of("a beard and a mohawk") == "face+hair"
    assert region_of("a person sitting on a chair") is None  # no hair in "chair"
    assert region_of("that old man") is None  # no hat in "that"; age is a whole-image edit
    assert region_of("surprised") is None
    assert region_of("purple hair", explicit="mouth") == "mouth"
    assert region_of("purple hair", explicit="whole") is None
    assert region_of("x", explicit="Hair + face") == "face+hair"
    assert region_classes("hair+hat") == (17, 18)
    assert region_classes("mouth") == tuple(CLASSES.index(c) for c in ("mouth", "u_lip", "l_lip"))
    assert set(REGIONS["hair"]) == {CLASSES.index("hair")}
    for ids in REGIONS.values():
        assert all(0 <= i < len(CLASSES) for i in ids)


def test_bad_inputs_are_refused_in_one_line():
    x = picture(64)
    refused_by(lambda: masked_scores(x, picture(32), ColourParser(), "hair"), match="one size", error=UsageError)
    refused_by(lambda: masked_scores(x[0], x, ColourParser(), "hair"), match=r"\[1, 3, H, W\]", error=UsageError)
    refused_by(lambda: masked_scores(torch.cat([x, x]), torch.cat([x, x]), ColourParser(), "hair"), match="1, 3")
    refused_by(lambda: masked_scores(x, x, ColourParser(), "hairdo"), match="unknown face region", error=UsageError)
    refused_by(lambda: masked_scores(x, x, None, "hair"), match="face parser", error=UsageError)
    refused_by(lambda: masked_scores(x, x, ColourParser(), "hair", dilate=-1), match="dilation", error=UsageError)
    refused_by(lambda: region_of("hair", explicit="scalp"), match="unknown face region", error=UsageError)
