"""Generator output -> CLIP input: sizes, statistics, gradients, and StyleCLIP's exact recipe."""

from __future__ import annotations

import pytest
import torch

from styleclip import UsageError
from styleclip.guidance.preprocess import OPENAI_MEAN, OPENAI_STD, styleclip_box_matrix, to_clip_input


@pytest.mark.parametrize("size", [32, 64, 128, 256, 512, 1024])
def test_styleclip_mode_equals_upsample_then_avgpool(size):
    # StyleCLIP's own code: nn.Upsample(scale_factor=7) then nn.AvgPool2d(size // 32).
    torch.manual_seed(0)
    img = torch.rand(1, 3, size, size) * 2 - 1
    if size <= 256:
        ref = torch.nn.AvgPool2d(size // 32)(torch.nn.Upsample(scale_factor=7)(img))
    else:  # the reference would need a 7x image (600 MB at 1024): compare on a crop of rows/cols
        up = torch.nn.Upsample(scale_factor=7)(img[:, :, : size // 8, : size // 8])
        ref = torch.nn.AvgPool2d(size // 32)(up)
    out = to_clip_input(img, mode="styleclip")
    assert out.shape == (1, 3, 224, 224)
    torch.testing.assert_close(out[..., : ref.shape[-2], : ref.shape[-1]], ref, rtol=0, atol=1e-5)


def test_box_matrix_rows_sum_to_one():
    for size in (32, 256, 1024):
        a = styleclip_box_matrix(size)
        torch.testing.assert_close(a.sum(1), torch.ones(224))


@pytest.mark.parametrize("size", [32, 100, 224, 512, 1024])
def test_clip_mode_size_statistics_and_gradients(size):
    img = torch.zeros(2, 3, size, size, requires_grad=True)  # mid-grey in [-1, 1]
    out = to_clip_input(img, resolution=224)
    assert out.shape == (2, 3, 224, 224)
    expected = (0.5 - torch.tensor(OPENAI_MEAN)) / torch.tensor(OPENAI_STD)
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), expected, rtol=0, atol=1e-5)
    out.sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0


def test_clip_mode_at_model_resolution_only_normalises():
    img = torch.rand(1, 3, 224, 224) * 2 - 1
    out = to_clip_input(img)
    back = (out * torch.tensor(OPENAI_STD).reshape(1, 3, 1, 1) + torch.tensor(OPENAI_MEAN).reshape(1, 3, 1, 1)) * 2 - 1
    torch.testing.assert_close(back, img, rtol=0, atol=1e-5)


def test_bad_input_is_a_clear_error():
    with pytest.raises(UsageError, match="square RGB"):
        to_clip_input(torch.zeros(1, 3, 32, 48))
    with pytest.raises(UsageError, match="mode"):
        to_clip_input(torch.zeros(1, 3, 32, 32), mode="fancy")
