"""Reconstruction quality measures: MS-SSIM as the field's common PyTorch implementation computes it, and PSNR."""

from __future__ import annotations

import math

import pytest
import torch

from styleclip.errors import UsageError
from styleclip.inversion.quality import ms_ssim, ms_ssim_scales, psnr

from hostile import refused_by


def test_ms_ssim_matches_the_reference_values():
    """Values of pytorch_msssim 1.0.0's ``ms_ssim(data_range=1, size_average=False)`` on the same pictures
    (computed once in float64 and written down here: the package is not a dependency)."""
    g = torch.Generator().manual_seed(0)
    expected = {
        (2, 3, 256, 256): (0.3, [0.9051440786686249, 0.9060648480695286]),
        (1, 3, 171, 199): (0.1, [0.9878968857170062]),
    }
    for shape, (noise, values) in expected.items():
        a = torch.rand(*shape, generator=g) * 2 - 1
        b = (a + noise * torch.randn(*shape, generator=g)).clamp(-1, 1)
        torch.testing.assert_close(ms_ssim(a, b), torch.tensor(values), atol=2e-6, rtol=0)


def test_ms_ssim_is_one_for_equal_pictures_and_falls_with_noise():
    a = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert float(ms_ssim(a, a)) == pytest.approx(1.0, abs=1e-6)
    values = [float(ms_ssim(a, (a + s * torch.randn_like(a)).clamp(-1, 1))) for s in (0.05, 0.2, 0.8)]
    assert values[0] > values[1] > values[2] >= 0


def test_small_pictures_use_the_scales_that_fit():
    assert [ms_ssim_scales(s) for s in (10, 11, 21, 32, 160, 161, 1024)] == [0, 1, 2, 2, 4, 5, 5]
    refused_by(
        lambda: ms_ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)), match="at least 11 px", error=UsageError
    )
    refused_by(
        lambda: ms_ssim(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 16, 16)), match="one shape", error=UsageError
    )


def test_psnr():
    a = torch.zeros(1, 3, 8, 8)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 0.2) == pytest.approx(10 * math.log10(4 / 0.04))
