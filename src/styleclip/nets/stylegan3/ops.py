"""StyleGAN3's arithmetic in stock PyTorch: modulated convolution with full padding, filtered leaky ReLU.

NVIDIA's filtered leaky ReLU is a custom CUDA kernel; its definition (and the reference path NVIDIA
uses on the CPU) is bias -> zero-insertion up-sampling + FIR (gain ``up**2``) -> leaky ReLU * gain ->
clamp -> FIR + decimation. Here each step is one ``torch.nn.functional`` call: the up-sampling is a
strided depthwise transposed convolution (zero insertion and filtering in one), the down-sampling a
strided depthwise convolution (only the kept samples are computed), separable filters as two 1D passes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..stylegan2.ops import demodulation_coefficients


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    input_gain: torch.Tensor | None = None,
    fused: bool = True,
) -> torch.Tensor:
    """StyleGAN3's modulated convolution with padding ``k - 1`` (the 'full' convolution).

    Args:
        x: ``[N, I, H, W]`` activations.
        weight: ``[O, I, k, k]`` shared kernel.
        styles: ``[N, I]`` per-sample input-channel scales (the affine outputs).
        demodulate: normalise each output channel's per-sample kernel to unit norm.
        input_gain: scalar tensor multiplying the input channels after demodulation (``magnitude_ema**-0.5``).
        fused: True scales per-sample weights and runs one grouped convolution; False scales the activations
            around one shared convolution (no weight gradient in backward: cheaper when optimising latents).

    Returns:
        ``[N, O, H + k - 1, W + k - 1]``.
    """
    batch, in_ch, height, width = x.shape
    out_ch, _, kh, kw = weight.shape
    dcoefs = None
    if demodulate:
        # Both scales cancel in the demodulation; NVIDIA normalises first to keep float16 in range.
        weight = weight * weight.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt()
        dcoefs = demodulation_coefficients(weight, styles)  # [N, O]
    if input_gain is not None:
        styles = styles * input_gain
    if kh == 1 and kw == 1:
        return _modulated_matmul(x, weight[:, :, 0, 0], styles, dcoefs, fused)
    if fused:
        w = weight[None] * styles[:, None, :, None, None]
        if dcoefs is not None:
            w = w * dcoefs[:, :, None, None, None]
        w = w.reshape(batch * out_ch, in_ch, kh, kw).to(x.dtype)
        y = F.conv2d(x.reshape(1, batch * in_ch, height, width), w, padding=(kh - 1, kw - 1), groups=batch)
        return y.reshape(batch, out_ch, *y.shape[2:])
    y = F.conv2d(x * styles.to(x.dtype)[:, :, None, None], weight.to(x.dtype), padding=(kh - 1, kw - 1))
    return y * dcoefs.to(y.dtype)[:, :, None, None] if dcoefs is not None else y


def _modulated_matmul(
    x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, dcoefs: torch.Tensor | None, fused: bool
) -> torch.Tensor:
    # 1x1 kernels (config R, ToRGB) as matrix products: convolution libraries handle them badly.
    batch, in_ch, height, width = x.shape
    flat = x.reshape(batch, in_ch, height * width)
    if fused:
        w = weight[None] * styles[:, None, :]
        if dcoefs is not None:
            w = w * dcoefs[:, :, None]
        y = torch.bmm(w.to(x.dtype), flat)
    else:
        y = torch.matmul(weight.to(x.dtype), flat * styles.to(x.dtype)[:, :, None])
        if dcoefs is not None:
            y = y * dcoefs.to(y.dtype)[:, :, None]
    return y.reshape(batch, -1, height, width)


def upsample_fir(
    x: torch.Tensor, f: torch.Tensor | None, up: int, padding: tuple[int, int, int, int], gain: float = 1.0
) -> torch.Tensor:
    """Zero-insertion up-sampling by ``up``, padding (negative = crop), then convolution with ``f`` (gain ``up**2``).

    Args:
        x: ``[N, C, H, W]``.
        f: ``[K]`` separable taps, or None (identity).
        up: up-sampling factor.
        padding: ``(x0, x1, y0, y1)`` on the up-sampled image, as NVIDIA's ``upfirdn2d``.
        gain: extra scale folded into the taps (when ``f`` is given).

    Returns:
        ``[N, C, H*up + y0 + y1 - K + 1, W*up + x0 + x1 - K + 1]``.
    """
    x0, x1, y0, y1 = padding
    if f is None and up == 1:
        return F.pad(x, [x0, x1, y0, y1])
    if f is None:
        f = torch.ones([1], device=x.device)
    taps = f.shape[0]
    channels = x.shape[1]
    # A transposed convolution with stride `up` is zero insertion followed by the full convolution with
    # the (unflipped) taps; the full result starts K - 1 samples before the padded signal's first output.
    f = (f * (up * math.sqrt(gain))).to(x.dtype)
    x = F.conv_transpose2d(x, f.reshape(1, 1, taps, 1).expand(channels, 1, taps, 1), stride=(up, 1), groups=channels)
    x = F.conv_transpose2d(x, f.reshape(1, 1, 1, taps).expand(channels, 1, 1, taps), stride=(1, up), groups=channels)
    return F.pad(x, [x0 - taps + 1, x1 + up - taps, y0 - taps + 1, y1 + up - taps])


def downsample_fir(x: torch.Tensor, f: torch.Tensor | None, down: int) -> torch.Tensor:
    """Convolution with ``f`` (no padding), keeping every ``down``-th sample.

    Args:
        x: ``[N, C, H, W]``.
        f: ``[K]`` separable or ``[K, K]`` radial taps, or None (identity).

    Returns:
        ``[N, C, (H - K) // down + 1, (W - K) // down + 1]``.
    """
    if f is None:
        return x[:, :, ::down, ::down] if down > 1 else x
    channels = x.shape[1]
    f = f.flip(list(range(f.ndim))).to(x.dtype)  # a true convolution: F.conv2d correlates
    if f.ndim == 2:
        return F.conv2d(x, f[None, None].expand(channels, 1, *f.shape), stride=down, groups=channels)
    taps = f.shape[0]
    x = F.conv2d(x, f.reshape(1, 1, taps, 1).expand(channels, 1, taps, 1), stride=(down, 1), groups=channels)
    return F.conv2d(x, f.reshape(1, 1, 1, taps).expand(channels, 1, 1, taps), stride=(1, down), groups=channels)


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None,
    fd: torch.Tensor | None,
    bias: torch.Tensor,
    up: int,
    down: int,
    padding: tuple[int, int, int, int],
    gain: float,
    slope: float,
    clamp: float | None,
) -> torch.Tensor:
    """``downsample(clamp(lrelu(upsample(x + bias)) * gain))``: NVIDIA's ``filtered_lrelu`` in plain PyTorch.

    Args:
        x: ``[N, C, H, W]``.
        fu, fd: up- and down-sampling taps (``[K]``; ``fd`` may be ``[K, K]``), None = identity.
        bias: ``[C]``, added before up-sampling.
        up, down: resampling factors.
        padding: ``(x0, x1, y0, y1)`` of the up-sampled image.
        gain: scale after the activation; slope: negative slope (1 = linear); clamp: bound, None = off.
    """
    if x.dtype == torch.bfloat16 and x.device.type == "cpu":
        # PyTorch's depthwise transposed convolution (the up-sampling) runs 6-10x slower in bf16 than in fp32 on
        # CPUs, so the resampling runs in fp32 between casts of the small tensors before and after it; the
        # modulated convolutions, where the arithmetic is, stay bf16.
        y = filtered_lrelu(x.float(), fu, fd, bias, up, down, padding, gain, slope, clamp)
        return y.to(torch.bfloat16)
    x = x + bias.to(x.dtype)[None, :, None, None]
    if fu is not None:
        # lrelu(g * y) == g * lrelu(y) for g > 0: the gain rides on the taps instead of costing a pass.
        x, gain = upsample_fir(x, fu, up, padding, gain=gain), 1.0
    else:
        x = upsample_fir(x, fu, up, padding)
    # The up-sampled tensor is ours: work in place (clamp only without autograd, which keeps lrelu's output).
    if slope != 1:
        x = F.leaky_relu(x, slope, inplace=True)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp) if torch.is_grad_enabled() else x.clamp_(-clamp, clamp)
    return downsample_fir(x, fd, down)
