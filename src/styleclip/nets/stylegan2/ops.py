"""The arithmetic of StyleGAN2 in plain PyTorch: activations, FIR resampling, modulated convolution.

Nothing here is compiled. Every operation is a stock ``torch.nn.functional`` call, so the same code
runs on CPU, CUDA and Apple MPS, and autograd differentiates all of it.

Conventions follow NVIDIA's stylegan2-ada-pytorch (so that its weights give the same image):
filters are normalised to unit DC gain, up-sampling multiplies the filter by ``up**2`` to keep
the signal magnitude, and activation gains are applied after the bias.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...errors import UsageError
from ...utils.compiling import is_compiling


@dataclass(frozen=True)
class Activation:
    fn: Callable[[torch.Tensor], torch.Tensor]
    gain: float  # Default gain that keeps unit variance for a unit-variance input.


_SQRT2 = math.sqrt(2.0)

ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x: x, 1.0),
    "relu": Activation(F.relu, _SQRT2),
    "lrelu": Activation(lambda x: F.leaky_relu(x, 0.2), _SQRT2),
    "tanh": Activation(torch.tanh, 1.0),
    "sigmoid": Activation(torch.sigmoid, 1.0),
    "elu": Activation(F.elu, 1.0),
    "selu": Activation(F.selu, 1.0),
    "softplus": Activation(F.softplus, 1.0),
    "swish": Activation(lambda x: torch.sigmoid(x) * x, _SQRT2),
}


def get_activation(name: str) -> Activation:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise UsageError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}") from None


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    act: str = "linear",
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """``clamp(act(x + bias) * gain)`` with the bias broadcast along dim 1.

    Args:
        x: ``[N, C, ...]``.
        bias: ``[C]`` or None.
        act: name in :data:`ACTIVATIONS`.
        gain: output scale; None = the activation's default gain.
        clamp: clamp the result to ``[-clamp, clamp]``; None = no clamping.
    """
    spec = get_activation(act)
    if bias is not None:
        x = x + bias.reshape([1, -1] + [1] * (x.ndim - 2)).to(x.dtype)
    x = spec.fn(x)
    gain = spec.gain if gain is None else gain
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit root-mean-square (the mapping network's input normalisation)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def setup_filter(taps: Sequence[float] | torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """A 2D FIR filter ``[fh, fw]`` (float32) from 1D or 2D taps, normalised to unit DC gain, times ``gain``."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim == 1:
        f = torch.outer(f, f)
    if f.ndim != 2 or f.numel() == 0:
        raise UsageError(f"a resample filter needs 1D or 2D taps, got shape {list(f.shape)}")
    return f / f.sum() * gain


def fir_filter(
    x: torch.Tensor,
    f: torch.Tensor,
    padding: Sequence[int],
    bias: torch.Tensor | None = None,
    add: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pad (negative = crop) and convolve each channel with the 2D filter ``f``, then add ``bias``.

    Args:
        x: ``[N, C, H, W]``.
        f: ``[fh, fw]`` filter from :func:`setup_filter`.
        padding: ``(x0, x1, y0, y1)`` like :func:`torch.nn.functional.pad`.
        bias: ``[C]`` added to the result inside the same convolution (free), or None.
        add: a tensor of the output's shape added to it (see :func:`conv2d_add`), or None.

    Returns:
        ``[N, C, H + y0 + y1 - fh + 1, W + x0 + x1 - fw + 1]``, in ``x``'s memory format.

    One depthwise convolution: an order of magnitude faster to differentiate than filtering a
    ``[N*C, 1, H, W]`` reshape, which is what ports of the reference op do.
    """
    channels = x.shape[1]
    x0, x1, y0, y1 = padding
    # A true convolution flips the filter; F.conv2d correlates.
    weight = f.flip([0, 1]).to(x.dtype)[None, None].expand(channels, 1, *f.shape)
    if bias is not None:
        bias = bias.to(x.dtype)
    if x0 == x1 >= 0 and y0 == y1 >= 0:
        return conv2d_add(x, weight.contiguous(), bias, (y0, x0), channels, add)  # no padded copy
    return conv2d_add(F.pad(x, [x0, x1, y0, y1]), weight.contiguous(), bias, (0, 0), channels, add)


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """Zero-insertion up-sampling by ``up`` followed by the FIR filter (gain ``up**2``).

    ``[N, C, H, W] -> [N, C, H*up, W*up]``; the same sample grid as NVIDIA's ``upsample2d``.
    Written as one depthwise transposed convolution, which is exactly zero insertion + filtering.
    """
    fh, fw = f.shape
    channels = x.shape[1]
    # Zero insertion + pad (fw+up-1)//2 before, (fw-up)//2 after, then a valid convolution with f,
    # is a stride-`up` transposed convolution with the same taps and this padding.
    pad_y = fh - 1 - (fh + up - 1) // 2
    pad_x = fw - 1 - (fw + up - 1) // 2
    weight = (f * up * up).to(x.dtype)[None, None].expand(channels, 1, fh, fw)
    y = F.conv_transpose2d(x, weight, stride=up, padding=(max(pad_y, 0), max(pad_x, 0)), groups=channels)
    # Short filters need a negative padding (zeros in front); every length may leave a ragged tail.
    front_y, front_x = max(-pad_y, 0), max(-pad_x, 0)
    want_h, want_w = x.shape[2] * up, x.shape[3] * up
    tail_y = want_h - front_y - y.shape[2]
    tail_x = want_w - front_x - y.shape[3]
    if front_y or front_x or tail_y or tail_x:
        y = F.pad(y, [front_x, tail_x, front_y, tail_y])
    return y


def conv2d_up(
    x: torch.Tensor,
    weight: torch.Tensor,
    f: torch.Tensor,
    groups: int = 1,
    up: int = 2,
    bias: torch.Tensor | None = None,
    add: torch.Tensor | None = None,
) -> torch.Tensor:
    """Transposed convolution with stride ``up`` followed by the FIR low-pass (gain ``up**2``).

    Args:
        x: ``[N, G*I, H, W]``.
        weight: ``[G*O, I, kh, kw]`` (``groups`` = G).
        f: ``[fh, fw]`` filter.
        bias: ``[G*O]`` added after the filter (inside the filter's convolution), or None.
        add: a tensor of the output's shape added after the filter (see :func:`conv2d_add`), or None.

    Returns:
        ``[N, G*O, H*up, W*up]``, the output of a ``kh x kw`` convolution with padding ``kh // 2``
        applied to the up-sampled input, as NVIDIA's ``conv2d_resample(up=2, flip_weight=False)``.
    """
    out_ch, in_per_group, kh, kw = weight.shape
    fh, fw = f.shape
    # Padding of the up-sampled image, distributed as the reference op does it.
    px0 = kw // 2 + (fw + up - 1) // 2 - (kw - 1)
    px1 = kw // 2 + (fw - up) // 2 - (kw - up)
    py0 = kh // 2 + (fh + up - 1) // 2 - (kh - 1)
    py1 = kh // 2 + (fh - up) // 2 - (kh - up)
    pxt = max(min(-px0, -px1), 0)
    pyt = max(min(-py0, -py1), 0)
    if groups == 1:
        w = weight.transpose(0, 1)
    else:
        w = weight.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
        w = w.reshape(groups * in_per_group, out_ch // groups, kh, kw)
    x = F.conv_transpose2d(x, w, stride=up, padding=(pyt, pxt), groups=groups)
    return fir_filter(x, (f * up * up), (px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt), bias=bias, add=add)


def conv2d_add(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    padding: tuple[int, int],
    groups: int,
    add: torch.Tensor | None,
) -> torch.Tensor:
    """``conv2d(x, weight, bias, padding, groups=groups) + add`` (stride 1); ``add``: the output's shape, or None.

    Where oneDNN can (bf16 NHWC on a CPU), the sum is a post-op of the convolution: one pass over the output
    instead of two. PyTorch's own bf16 element-wise kernels run at a third of the fp32 speed per element on CPUs, so
    a separate pass for the noise costs more than the 32-channel convolution it follows at 1024 px.
    """
    if add is None:
        return F.conv2d(x, weight, bias, padding=padding, groups=groups)
    if _fused_add_applies(x, weight, add):
        return _ConvAdd.apply(x, weight, bias, add, padding, groups)
    return F.conv2d(x, weight, bias, padding=padding, groups=groups).add_(add)


@functools.lru_cache(maxsize=1)
def fused_add_available() -> bool:
    """Whether this PyTorch exposes oneDNN's convolution with a sum post-op (x86 and Arm builds with oneDNN)."""
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        return torch.backends.mkldnn.is_available() and hasattr(ops._convolution_pointwise, "binary")
    except (AttributeError, RuntimeError):
        return False


def _fused_add_applies(x: torch.Tensor, weight: torch.Tensor, add: torch.Tensor) -> bool:
    return (
        not is_compiling()  # a compiled graph fuses the sum itself, and would break around this function
        and x.device.type == "cpu"
        and x.dtype == torch.bfloat16
        and weight.dtype == x.dtype == add.dtype
        and is_channels_last(x)
        and is_channels_last(add)
        and not add.requires_grad
        and fused_add_available()
    )


class _ConvAdd(torch.autograd.Function):
    """oneDNN's fused convolution + sum, differentiable through ATen's own convolution backward."""

    @staticmethod
    def forward(ctx, x, weight, bias, add, padding, groups):
        ctx.save_for_backward(x, weight)
        ctx.has_bias, ctx.padding, ctx.groups = bias is not None, list(padding), groups
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, add, weight, bias, list(padding), [1, 1], [1, 1], groups, "add", None, None, [], None
        )

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad, x, weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1], ctx.padding, [1, 1], False, [0, 0],
            ctx.groups, mask,
        )  # fmt: skip
        return gx, gw, gb, None, None, None


def derived(module: torch.nn.Module, name: str, make: Callable[[], torch.Tensor], *sources: torch.Tensor):
    """``make()``, remembered on ``module`` while the ``sources`` (its parameters) stay the same tensors with the
    same contents: casts and reductions of frozen weights then cost nothing after the first pass, instead of a
    pass over every weight on each forward and backward (tens of MB per step at 512 px). Weights being trained
    (``requires_grad`` with autograd on) are never cached: the graph needs the fresh product."""
    if is_compiling() or (torch.is_grad_enabled() and any(s.requires_grad for s in sources)):
        return make()  # a compiled graph folds the casts into its kernels itself
    key = tuple((s.data_ptr(), s._version, s.dtype, s.device) for s in sources)
    cache = module.__dict__.setdefault("_derived", {})
    hit = cache.get(name)
    if hit is not None and hit[0] == key:
        return hit[1]
    value = make()
    cache[name] = (key, value)
    return value


def weight_square_sums(weight: torch.Tensor) -> torch.Tensor:
    """``sum_k weight[o, i, k]**2`` as float32 ``[O, I]`` (what demodulation needs of the kernel)."""
    return weight.float().square().sum(dim=[2, 3])


def demodulation_coefficients(
    weight: torch.Tensor, styles: torch.Tensor, w_sq: torch.Tensor | None = None
) -> torch.Tensor:
    """``rsqrt(sum_{i,k} (weight[o, i, k] * styles[n, i])**2 + 1e-8)`` as ``[N, O]``.

    One ``[N, I] x [I, O]`` product instead of materialising the ``[N, O, I, kh, kw]`` weights; ``w_sq``:
    :func:`weight_square_sums` of ``weight``, when the caller keeps it.
    """
    w_sq = weight_square_sums(weight) if w_sq is None else w_sq  # [O, I]
    return (styles.float().square() @ w_sq.t() + 1e-8).rsqrt()


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    fused: bool = True,
    gain: float = 1.0,
    bias: torch.Tensor | None = None,
    weight_sq: torch.Tensor | None = None,
    weight_cast: torch.Tensor | None = None,
    noise_full: torch.Tensor | None = None,
) -> torch.Tensor:
    """StyleGAN2's modulated (and demodulated) convolution with 'same' padding, noise and bias.

    Computes ``gain * (modconv(x) + noise + bias)``, where ``modconv`` scales the kernel's input
    channels by ``styles`` and (with ``demodulate``) each output channel's per-sample kernel to unit norm.

    Args:
        x: ``[N, I, H, W]`` activations.
        weight: ``[O, I, kh, kw]`` shared kernel.
        styles: ``[N, I]`` per-sample input-channel scales.
        noise: broadcastable to ``[N, O, H*up, W*up]`` (e.g. ``[H*up, W*up]``), or None.
        up: 1, or 2 for the up-sampling layers (needs ``resample_filter``).
        demodulate: normalise each output channel's per-sample weights to unit norm.
        fused: True scales the weights per sample and runs one grouped convolution; False scales
            the activations around one shared convolution. Both compute the same function; the
            second needs no weight gradient, so its backward pass costs one convolution, not two.
            1x1 kernels take a (cheap) matrix product either way.
        gain: overall output scale, folded into weights and coefficients (no pass over the output).
        bias: ``[O]``, added inside the convolution where the algebra allows (free), or None.
        weight_sq, weight_cast: :func:`weight_square_sums` of ``weight`` and ``weight`` in ``x``'s dtype, when the
            caller keeps them (frozen weights: see :func:`derived`).
        noise_full: ``gain * noise`` as ``[1, O, H*up, W*up]`` in ``x``'s dtype and memory format, kept by the caller
            for one sample on the fused path with a kernel larger than 1x1, where the convolution adds it in the same
            pass (:func:`conv2d_add`); pass it instead of ``noise``.

    Returns:
        ``[N, O, H*up, W*up]``, a fresh tensor (callers may modify it in place).
    """
    batch = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    if styles.shape != (batch, in_ch):
        raise UsageError(f"styles must be [{batch}, {in_ch}], got {list(styles.shape)}")
    if noise_full is not None and not (batch == 1 and fused and (kh, kw, up) != (1, 1, 1)):
        # any other path would silently leave the noise out
        raise UsageError("noise_full is for one sample on the fused path with a kernel larger than 1x1: pass noise")

    if x.dtype == torch.float16 and demodulate:
        # fp16 would overflow in the unnormalised products; demodulation cancels these scales.
        weight = weight * (1 / math.sqrt(in_ch * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
        weight_sq = weight_cast = None  # kept for the weights as they were

    dcoefs = demodulation_coefficients(weight, styles, weight_sq) if demodulate else None
    if kh == 1 and kw == 1 and up == 1:
        return modulated_matmul(x, weight, styles, dcoefs, gain, noise, bias, fused)
    scale = dcoefs * gain if dcoefs is not None else torch.full((batch, out_ch), gain, device=x.device)

    if fused:
        w = weight[None] * styles.reshape(batch, 1, -1, 1, 1).to(weight.dtype)  # [N, O, I, kh, kw]
        w = (w * scale.reshape(batch, -1, 1, 1, 1).to(w.dtype)).reshape(batch * out_ch, in_ch, kh, kw).to(x.dtype)
        b = (bias * gain).to(x.dtype).repeat(batch) if bias is not None else None
        if batch > 1:  # one group per sample (a reshape of a single sample would lose NHWC strides)
            memory_format = torch.channels_last if is_channels_last(x) else torch.contiguous_format
            x = x.reshape(1, batch * in_ch, *x.shape[2:]).contiguous(memory_format=memory_format)
        add = noise_full
        if up == 1:
            x = conv2d_add(x, w, b, (kh // 2, kw // 2), batch, add)
        else:
            x = conv2d_up(x, w, resample_filter, groups=batch, up=up, bias=b, add=add)
        if batch > 1:
            x = x.reshape(batch, out_ch, *x.shape[2:])
        if noise is not None and add is None:
            x = x.add_(noise.to(x.dtype), alpha=gain)
        return x

    xs = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
    w = weight_cast if weight_cast is not None and weight_cast.dtype == x.dtype else weight.to(x.dtype)
    # With one sample and no gradient to the scale, bias / scale rides inside the convolution:
    # (conv + b/s) * s = conv * s + b. (A bias that needs a gradient sends oneDNN's backward down a
    # path several times slower, so then it is added separately.)
    cheap = batch == 1 and not (torch.is_grad_enabled() and scale.requires_grad)
    inner_bias = (bias / scale[0]).to(x.dtype) * gain if bias is not None and cheap else None
    y = (
        F.conv2d(xs, w, inner_bias, padding=kh // 2)
        if up == 1
        else conv2d_up(xs, w, resample_filter, up=up, bias=inner_bias)
    )
    scale = scale.to(y.dtype).reshape(batch, -1, 1, 1)
    # one pass for scale and noise together
    y = torch.addcmul(noise.to(y.dtype) * gain, y, scale) if noise is not None else y * scale
    if bias is not None and inner_bias is None:
        y = y.add_((bias * gain).to(y.dtype).reshape(1, -1, 1, 1))
    return y


_MATMUL_ROWS = 4096  # pixels per product in the chunked 1x1 modulated convolution


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` is a 4D tensor stored NHWC (one channel is ambiguous and counts as not)."""
    return x.ndim == 4 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last)


def modulated_matmul(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    dcoefs: torch.Tensor | None,
    gain: float = 1.0,
    noise: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    fused: bool = True,
) -> torch.Tensor:
    """1x1 modulated convolution as a matrix product over the pixels (``gain * (modconv + noise + bias)``).

    ``x: [N, I, H, W]`` (NCHW or NHWC: the result keeps the layout), ``weight: [O, I, 1, 1]``, ``styles: [N, I]``,
    ``dcoefs: [N, O]`` demodulation coefficients or None, ``noise`` broadcastable to ``[N, O, H, W]``, ``bias: [O]``;
    returns ``[N, O, H, W]``. Shared by StyleGAN2 (ToRGB) and StyleGAN3 (config R, ToRGB).

    Convolution libraries handle 1x1 kernels with few output channels (ToRGB: 3) badly - tens of
    times slower than the arithmetic needs at 1024 px; a matmul is not. ``fused`` multiplies per-sample
    weights (no extra pass; for inference); otherwise the activations are scaled and one shared
    weight is used, so the backward pass needs no ``[I, HW] x [HW, O]`` weight-gradient product
    (which costs more than the whole layer on a CPU).
    """
    batch, in_ch, h, w_ = x.shape
    channels_last = is_channels_last(x)
    b = (bias * gain).to(x.dtype) if bias is not None else None
    if fused:
        w = weight[:, :, 0, 0][None] * styles[:, None, :].to(weight.dtype)  # [N, O, I]
        if dcoefs is not None:
            w = w * dcoefs[:, :, None].to(w.dtype)
        w = (w * gain if gain != 1 else w).to(x.dtype)
        if channels_last:
            pixels = x.permute(0, 2, 3, 1).reshape(batch, h * w_, in_ch)
            chunks = h * w_ // _MATMUL_ROWS if batch == 1 and w.requires_grad and h * w_ % _MATMUL_ROWS == 0 else 1
            if chunks > 1:
                # The weight gradient is then a batch of short products, summed, rather than one [I, HW] x [HW, O]
                # product with a million-long inner dimension, which oneDNN runs 2.5x slower.
                y = torch.bmm(pixels.view(chunks, _MATMUL_ROWS, in_ch), w.transpose(1, 2).expand(chunks, -1, -1))
            else:
                y = torch.matmul(pixels, w.transpose(1, 2))
            y = y.reshape(batch, h, w_, -1).permute(0, 3, 1, 2)
        else:
            y = torch.bmm(w, x.reshape(batch, in_ch, h * w_)).reshape(batch, -1, h, w_)
        if b is not None:
            y = y.add_(b.reshape(1, -1, 1, 1))
    else:
        w = weight[:, :, 0, 0] * gain if gain != 1 else weight[:, :, 0, 0]
        w = w.to(x.dtype)
        if channels_last:
            xs = x.permute(0, 2, 3, 1) * styles.to(x.dtype)[:, None, None, :]  # [N, H, W, I]
            if dcoefs is None:
                y = F.linear(xs, w, b).permute(0, 3, 1, 2)
            else:  # per-sample output scales cannot share the matmul's bias
                y = (F.linear(xs, w) * dcoefs.to(x.dtype)[:, None, None, :]).permute(0, 3, 1, 2)
                if b is not None:
                    y = y.add_(b.reshape(1, -1, 1, 1))
        elif dcoefs is not None:
            xs = x * styles.to(x.dtype)[:, :, None, None]
            y = torch.matmul(w, xs.reshape(batch, in_ch, h * w_)).reshape(batch, -1, h, w_)
            y = y * dcoefs.to(y.dtype)[:, :, None, None]
            if b is not None:
                y = y.add_(b.reshape(1, -1, 1, 1))
        else:
            xs = x * styles.to(x.dtype)[:, :, None, None]
            y = torch.matmul(w, xs.reshape(batch, in_ch, h * w_)).reshape(batch, -1, h, w_)
            if b is not None:
                y = y.add_(b.reshape(1, -1, 1, 1))
    if noise is not None:
        y = y.add_(noise.to(y.dtype), alpha=gain)
    return y
