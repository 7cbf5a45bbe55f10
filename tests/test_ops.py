"""The resampling primitives against straightforward definitions (zero insertion, padding, convolution)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from styleclip.nets.stylegan2.ops import conv2d_add, conv2d_up, modulated_conv2d, setup_filter, upsample2d


def naive_upfirdn(
    x: torch.Tensor, f: torch.Tensor, up: int, pad: tuple[int, int, int, int], gain: float
) -> torch.Tensor:
    """Zero insertion, padding (negative = crop) and a true convolution with ``f * gain``, channel by channel."""
    n, c, h, w = x.shape
    u = torch.zeros(n, c, h * up, w * up, dtype=x.dtype)
    u[:, :, ::up, ::up] = x
    u = F.pad(u, list(pad))
    k = (f * gain).flip([0, 1])
    out = []
    for ch in range(c):
        out.append(F.conv2d(u[:, ch : ch + 1], k[None, None]))
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("taps", [[1, 3, 3, 1], [1, 2, 1], [1, 1], [1, 4, 6, 4, 1]])
def test_upsample2d_matches_zero_insertion_then_filter(taps):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    f = setup_filter(taps).double()
    fw = f.shape[0]
    ref = naive_upfirdn(x, f, 2, ((fw + 1) // 2, (fw - 2) // 2, (fw + 1) // 2, (fw - 2) // 2), 4)
    out = upsample2d(x, f)
    assert out.shape == (2, 3, 10, 14)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_conv2d_up_is_upsample_then_convolve():
    # The reference op's definition: zero-insert, pad the up-sampled image once (3 before, 2 after),
    # filter with the FIR (gain 4), then a valid *convolution* (flipped kernel) with the 3x3 weights.
    torch.manual_seed(1)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    w = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    ref = F.conv2d(naive_upfirdn(x, f, 2, (3, 2, 3, 2), 4), w.flip([2, 3]))
    out = conv2d_up(x, w, f)
    assert out.shape == ref.shape == (2, 5, 12, 12)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    # grouped form (one group per sample) agrees with the plain one
    wg = torch.randn(2 * 5, 4, 3, 3, dtype=torch.float64)
    grouped = conv2d_up(x.reshape(1, 8, 6, 6), wg, f, groups=2).reshape(2, 5, 12, 12)
    for n in range(2):
        torch.testing.assert_close(grouped[n : n + 1], conv2d_up(x[n : n + 1], wg[n * 5 : (n + 1) * 5], f))


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
def test_fused_and_activation_modulation_agree(up, demodulate):
    torch.manual_seed(2)
    x = torch.randn(3, 8, 5, 5, dtype=torch.float64)
    w = torch.randn(6, 8, 3, 3, dtype=torch.float64)
    s = torch.randn(3, 8, dtype=torch.float64)
    noise = torch.randn(1, 1, 5 * up, 5 * up, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    a = modulated_conv2d(x, w, s, noise=noise, up=up, resample_filter=f, demodulate=demodulate, fused=True)
    b = modulated_conv2d(x, w, s, noise=noise, up=up, resample_filter=f, demodulate=demodulate, fused=False)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_demodulation_gives_unit_norm_weights():
    # Per sample and output channel, the effective kernel (weight * style * dcoef) has unit L2 norm.
    torch.manual_seed(3)
    w = torch.randn(6, 8, 3, 3, dtype=torch.float64)
    s = torch.randn(2, 8, dtype=torch.float64)
    from styleclip.nets.stylegan2.ops import demodulation_coefficients

    d = demodulation_coefficients(w, s)
    eff = w[None] * s[:, None, :, None, None] * d[:, :, None, None, None]
    norms = eff.square().sum(dim=[2, 3, 4]).sqrt()
    torch.testing.assert_close(norms, torch.ones_like(norms), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("groups", "kernel", "padding"), [(1, 3, (1, 1)), (8, 4, (1, 1)), (8, 4, (0, 0))])
def test_conv2d_add_is_a_convolution_plus_the_tensor_with_gradients(dtype, groups, kernel, padding):
    torch.manual_seed(0)
    x = torch.randn(1, 8, 12, 12).to(dtype).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    w = (torch.randn(8, 8 // groups, kernel, kernel) * 0.2).to(dtype).requires_grad_(True)
    b = torch.randn(8).to(dtype).requires_grad_(True)
    size = 12 + 2 * padding[0] - kernel + 1
    add = torch.randn(1, 8, size, size).to(dtype).contiguous(memory_format=torch.channels_last)
    y = conv2d_add(x, w, b, padding, groups, add)  # bf16 NHWC on a CPU: oneDNN's fused sum, where available
    ref = torch.nn.functional.conv2d(x.double(), w.double(), b.double(), padding=padding, groups=groups) + add.double()
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert y.dtype == dtype and y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y.double(), ref, atol=tol * 4, rtol=tol)
    g = torch.randn_like(ref)
    got = torch.autograd.grad(y, (x, w, b), g.to(dtype))
    want = torch.autograd.grad(ref, (x, w, b), g)
    for a, c in zip(got, want, strict=True):
        assert float((a.double() - c).norm() / c.norm()) < tol


def test_noise_the_convolution_would_not_add_is_refused():
    # noise_full is only added by the one-sample fused convolution; anywhere else it would silently vanish
    from styleclip import UsageError

    full = torch.zeros(1, 4, 8, 8)
    for batch, fused, k in ((2, True, 3), (1, False, 3), (1, True, 1)):
        x, w, s = torch.randn(batch, 4, 8, 8), torch.randn(4, 4, k, k), torch.rand(batch, 4) + 0.5
        with pytest.raises(UsageError, match="noise_full"):
            modulated_conv2d(x, w, s, fused=fused, noise_full=full)
    x, w, s = torch.randn(1, 4, 8, 8), torch.randn(4, 4, 3, 3), torch.rand(1, 4) + 0.5
    torch.testing.assert_close(modulated_conv2d(x, w, s, noise_full=full + 1), modulated_conv2d(x, w, s) + 1)
