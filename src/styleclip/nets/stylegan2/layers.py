"""StyleGAN2's layers. Parameter and buffer names are those of NVIDIA's stylegan2-ada-pytorch, so that
state dicts of official checkpoints load without renaming and tools written for them keep working."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ...utils.compiling import is_compiling
from .ops import (
    bias_act,
    conv2d_up,
    derived,
    fused_add_available,
    get_activation,
    modulated_conv2d,
    setup_filter,
    upsample2d,
    weight_square_sums,
)

NOISE_MODES = ("const", "random", "none")

# Positively homogeneous activations, applied in place on tensors this module allocated.
_HOMOGENEOUS = {
    "lrelu": lambda x: torch.nn.functional.leaky_relu(x, 0.2, inplace=True),
    "relu": lambda x: torch.relu_(x),
    "linear": lambda x: x,
}


class FullyConnectedLayer(nn.Module):
    """Equalised-learning-rate linear layer: ``act(x @ (weight * gain).T + bias * lr_multiplier)``."""

    def __init__(
        self,
        in_features: int,  # Input width.
        out_features: int,  # Output width.
        bias: bool = True,  # Learn an additive bias?
        activation: str = "linear",  # Activation after the bias.
        lr_multiplier: float = 1.0,  # Learning-rate multiplier the weights were trained with.
        bias_init: float = 0.0,  # Initial bias (1 for the style affines, so styles start at 1).
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, in_features] -> [N, out_features]``."""
        w = derived(self, f"weight-{x.dtype}", lambda: self.weight.to(x.dtype) * self.weight_gain, self.weight)
        b = self.bias
        if b is not None:
            b = derived(self, f"bias-{x.dtype}", lambda: self.bias.to(x.dtype) * self.bias_gain, self.bias)
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally up-sampling by 2), noise, bias, activation, clamp."""

    def __init__(
        self,
        in_channels: int,  # Input feature maps.
        out_channels: int,  # Output feature maps.
        w_dim: int,  # Width of the w vector that drives the style affine.
        resolution: int,  # Output resolution of this layer.
        kernel_size: int = 3,  # Convolution kernel size.
        up: int = 1,  # 2 = up-sample the input first (transposed conv + FIR).
        use_noise: bool = True,  # Add per-pixel noise?
        activation: str = "lrelu",  # Activation after the bias.
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # FIR taps for up-sampling.
        conv_clamp: float | None = None,  # Clamp outputs to +-X; None = off.
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.act_gain = get_activation(activation).gain
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self,
        x: torch.Tensor,
        styles: torch.Tensor,
        noise_mode: str = "const",
        fused: bool = True,
        gain: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``x: [N, in_channels, r/up, r/up]``, ``styles: [N, in_channels]`` -> ``[N, out_channels, r, r]``."""
        total_gain = self.act_gain * gain
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        # act(y + b) * g == act(g*y + g*b) for positively homogeneous activations, so there the gain rides on the
        # (small) weights, noise and bias instead of costing a pass over the activations.
        homogeneous = self.activation in _HOMOGENEOUS
        conv_gain = total_gain if homogeneous else 1.0
        nhwc = x.device.type == "cpu" and x.is_contiguous(memory_format=torch.channels_last)
        frozen = {"weight_sq": derived(self, "weight-sq", lambda: weight_square_sums(self.weight), self.weight)}
        if not fused:
            # only the activation-scaled path convolves with the shared kernel; the fused one scales its own copy,
            # so keeping this one there would hold a second copy of every kernel for nothing (the weights' size)
            frozen["weight_cast"] = derived(
                self, f"weight-{x.dtype}-{nhwc}", lambda: conv_ready(self.weight, x.dtype, self.up, nhwc), self.weight
            )
        noise = None
        if self.use_noise and noise_mode == "random":
            # draw where the generator lives (a CPU torch.Generator for a CUDA/MPS model, say), then move
            device = generator.device if generator is not None else x.device
            shape = [x.shape[0], 1, self.resolution, self.resolution]
            noise = torch.randn(shape, device=device, generator=generator).to(x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const" and self._conv_adds_noise(x, fused, nhwc):
            # one bf16 sample on the fused path: the convolution adds the constant noise itself (ops.conv2d_add)
            frozen["noise_full"] = derived(
                self, f"noise-{x.dtype}-{conv_gain}",
                lambda: full_noise(self.noise_const * self.noise_strength, conv_gain, self.out_channels, x.dtype),
                self.noise_const, self.noise_strength,
            )  # fmt: skip
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        if not homogeneous:
            x = modulated_conv2d(
                x, self.weight, styles, noise=noise, up=self.up, resample_filter=self.resample_filter, fused=fused,
                **frozen,
            )  # fmt: skip
            return bias_act(x, self.bias, act=self.activation, gain=total_gain, clamp=clamp)
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            resample_filter=self.resample_filter,
            fused=fused,
            gain=conv_gain,
            bias=self.bias,
            **frozen,
        )
        x = _HOMOGENEOUS[self.activation](x)
        if clamp is not None and clamp >= 0:
            # in place only without autograd: leaky_relu_ saved its output for the backward pass
            x = x.clamp(-clamp, clamp) if torch.is_grad_enabled() else x.clamp_(-clamp, clamp)
        return x

    def _conv_adds_noise(self, x: torch.Tensor, fused: bool, nhwc: bool) -> bool:
        """Whether this call's convolution can add the constant noise itself (frozen noise, one bf16 NHWC sample on
        the fused path, eager PyTorch with oneDNN's sum post-op)."""
        trained = torch.is_grad_enabled() and self.noise_strength.requires_grad
        one_sample = fused and nhwc and x.shape[0] == 1 and x.dtype == torch.bfloat16
        one_sample = one_sample and self.weight.shape[-1] > 1  # 1x1 kernels take a matrix product instead
        return one_sample and not trained and not is_compiling() and fused_add_available()

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"resolution={self.resolution}, up={self.up}"
        )


def full_noise(noise: torch.Tensor, gain: float, channels: int, dtype: torch.dtype) -> torch.Tensor:
    """``gain * noise`` (``[H, W]``) as ``[1, channels, H, W]`` NHWC in ``dtype``: what a convolution can add itself."""
    h, w = noise.shape[-2:]
    full = (noise.detach().reshape(1, 1, h, w) * gain).to(dtype).expand(1, channels, h, w)
    return full.contiguous(memory_format=torch.channels_last)


def conv_ready(weight: torch.Tensor, dtype: torch.dtype, up: int, nhwc: bool) -> torch.Tensor:
    """``weight`` ``[O, I, kh, kw]`` in ``dtype``, laid out as oneDNN wants it for NHWC activations (``nhwc``).

    Otherwise each convolution, forward and backward, reorders the kernel itself: 1-2 ms per 512x512 kernel, 40 per
    step at 1024 px. An up-sampling layer convolves with the transposed kernel, so that is the one made NHWC-dense.
    """
    w = weight.to(dtype)
    if not nhwc:
        return w
    if up == 1:
        return w.contiguous(memory_format=torch.channels_last)
    return w.transpose(0, 1).contiguous(memory_format=torch.channels_last).transpose(0, 1)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to image channels, without demodulation."""

    def __init__(
        self,
        in_channels: int,  # Input feature maps.
        out_channels: int,  # Image channels.
        w_dim: int,  # Width of the w vector that drives the style affine.
        kernel_size: int = 1,  # Convolution kernel size.
        conv_clamp: float | None = None,  # Clamp outputs to +-X; None = off.
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, styles: torch.Tensor, fused: bool = True) -> torch.Tensor:
        """``x: [N, in_channels, r, r]``, ``styles: [N, in_channels]`` (the raw affine output) -> ``[N, C, r, r]``."""
        x = modulated_conv2d(x, self.weight, styles * self.weight_gain, demodulate=False, fused=fused, bias=self.bias)
        if self.conv_clamp is not None:
            x = x.clamp(-self.conv_clamp, self.conv_clamp)
        return x


class Conv2dLayer(nn.Module):
    """Plain equalised-lr convolution; the generator uses it only as the 1x1 up-sampling skip of 'resnet'."""

    def __init__(
        self,
        in_channels: int,  # Input feature maps.
        out_channels: int,  # Output feature maps.
        kernel_size: int,  # Kernel size.
        bias: bool = True,  # Learn an additive bias?
        activation: str = "linear",  # Activation after the bias.
        up: int = 1,  # 2 = up-sample by 2 with the FIR filter.
        resample_filter: Sequence[float] = (1, 3, 3, 1),  # FIR taps.
        conv_clamp: float | None = None,  # Clamp outputs to +-X; None = off.
    ) -> None:
        super().__init__()
        self.activation = activation
        self.up = up
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = get_activation(activation).gain
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        if self.up == 1:
            x = torch.nn.functional.conv2d(x, w, padding=w.shape[-1] // 2)
        elif w.shape[-1] == 1:
            # A 1x1 kernel commutes with the per-channel filter: convolve at the low resolution.
            x = upsample2d(torch.nn.functional.conv2d(x, w), self.resample_filter, up=self.up)
        else:
            x = conv2d_up(x, w, self.resample_filter, up=self.up)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)
