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

from ...utils.compiling import is_compiling
from ..stylegan2.ops import demodulation_coefficients, is_channels_last, modulated_matmul


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
        return modulated_matmul(x, weight, styles, dcoefs, fused=fused)
    if fused:
        w = weight[None] * styles[:, None, :, None, None]
        if dcoefs is not None:
            w = w * dcoefs[:, :, None, None, None]
        w = w.reshape(batch * out_ch, in_ch, kh, kw).to(x.dtype)
        if batch == 1:  # reshaping one NHWC sample would give it strides that no longer read as NHWC
            return F.conv2d(x, w, padding=(kh - 1, kw - 1))
        memory_format = torch.channels_last if is_channels_last(x) else torch.contiguous_format
        x = x.reshape(1, batch * in_ch, height, width).contiguous(memory_format=memory_format)
        y = F.conv2d(x, w, padding=(kh - 1, kw - 1), groups=batch)
        return y.reshape(batch, out_ch, *y.shape[2:])
    y = F.conv2d(x * styles.to(x.dtype)[:, :, None, None], weight.to(x.dtype), padding=(kh - 1, kw - 1))
    return y * dcoefs.to(y.dtype)[:, :, None, None] if dcoefs is not None else y


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
    f = (f * (up * math.sqrt(gain))).to(x.dtype)
    x = _upsample_fir_1d(x, f, up, y0, y1, dim=2)
    return _upsample_fir_1d(x, f, up, x0, x1, dim=3)


def _upsample_fir_1d(x: torch.Tensor, f: torch.Tensor, up: int, lo: int, hi: int, dim: int) -> torch.Tensor:
    """:func:`upsample_fir` along one dimension (2: height, 3: width) with the scaled taps ``f``."""
    taps, channels = f.shape[0], x.shape[1]
    # A transposed convolution with stride `up` is zero insertion followed by the full convolution with
    # the (unflipped) taps; the full result starts K - 1 samples before the padded signal's first output.
    # Its `padding` crops both ends by `crop` and `output_padding` extends the far end, so the window wanted
    # comes straight out of the convolution when they fit (they do for NVIDIA's layer schedules), without
    # a padding pass over the largest tensor of the layer, forward and backward.
    crop, extend = taps - 1 - lo, up - 1 + hi - lo
    fits = crop >= 0 and 0 <= extend < up
    kernel = [1, 1]
    kernel[dim - 2] = taps
    stride, padding, output_padding = [1, 1], [0, 0], [0, 0]
    stride[dim - 2] = up
    if fits:
        padding[dim - 2], output_padding[dim - 2] = crop, extend
    weight = f.reshape(1, 1, *kernel).expand(channels, 1, *kernel)
    x = F.conv_transpose2d(x, weight, stride=stride, padding=padding, output_padding=output_padding, groups=channels)
    if fits:
        return x
    pad = [-crop, hi + up - taps]
    return F.pad(x, pad if dim == 3 else [0, 0, *pad])


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
    x = leaky_relu_clamp(x, slope, gain, clamp)
    return downsample_fir(x, fd, down)


def leaky_relu_clamp(x: torch.Tensor, slope: float, gain: float, clamp: float | None) -> torch.Tensor:
    """``clamp(leaky_relu(x, slope) * gain, -clamp, clamp)`` in place on ``x`` (a fresh tensor of the caller's).

    Args:
        x: ``[N, C, H, W]`` pre-activations, any layout (NHWC stays NHWC), not a leaf.
        slope: negative slope, > 0 (1 = linear); gain: scale after the activation, > 0; clamp: bound, None = off.

    Returns:
        ``x`` itself, modified, with autograd's history when it had one.

    Autograd's own graph of these three steps costs five passes over the layer's largest tensor in backward
    (the clamp's two comparisons, their 'and', its 'where', the activation's derivative), so on the CPU one
    function does the backward in one pass from the saved output; the clamp is tested in forward and masks
    the gradient only when it cut something off (a trained generator's activations stay far inside it).
    """
    if not torch.is_grad_enabled() or not x.requires_grad:
        x = _leaky_relu_(x, slope, gain)
        return x.clamp_(-clamp, clamp) if clamp is not None else x
    if x.device.type == "cpu" and not is_compiling():
        return _LeakyReluClamp.apply(x, slope, gain, clamp)
    # elsewhere without a host round trip per layer (a device-to-host copy of the clamp test would stall the
    # device); in place only where autograd keeps what it needs
    if slope != 1:
        x = F.leaky_relu(x, slope, inplace=True)
    if gain != 1:
        x = x * gain
    return x.clamp(-clamp, clamp) if clamp is not None else x


def _leaky_relu_(x: torch.Tensor, slope: float, gain: float) -> torch.Tensor:
    if slope != 1:
        x = F.leaky_relu(x, slope, inplace=True)
    return x.mul_(gain) if gain != 1 else x


class _LeakyReluClamp(torch.autograd.Function):
    """:func:`leaky_relu_clamp` with a one-pass backward (see there)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float, gain: float, clamp: float | None) -> torch.Tensor:
        y = _leaky_relu_(x, slope, gain)
        clipped = False
        if clamp is not None:
            # over the dense storage in its own order: aminmax would first copy an NHWC tensor to NCHW
            flat = y.permute(0, 2, 3, 1) if is_channels_last(y) else y
            lo, hi = torch.aminmax(flat.reshape(-1) if flat.is_contiguous() else flat)
            clipped = bool(lo < -clamp) or bool(hi > clamp)
            if clipped:
                y = y.clamp_(-clamp, clamp)
        ctx.mark_dirty(x)
        ctx.save_for_backward(y)
        ctx.slope, ctx.gain, ctx.clamp, ctx.clipped = slope, gain, clamp, clipped
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (y,) = ctx.saved_tensors
        # The output has the input's sign (slope and gain are positive), which is all the derivative needs.
        g = torch.ops.aten.leaky_relu_backward(grad, y, ctx.slope, True) if ctx.slope != 1 else grad
        if ctx.gain != 1:
            g = g * ctx.gain
        if ctx.clipped:
            g = g.masked_fill(y.abs() >= ctx.clamp, 0)
        return g, None, None, None
