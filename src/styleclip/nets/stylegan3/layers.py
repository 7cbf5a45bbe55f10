"""StyleGAN3's layers: the Fourier-feature input and the alias-free modulated layer.

Parameter and buffer names are those of NVIDIA's ``training/networks_stylegan3.py`` (``affine``,
``weight``, ``bias``, ``magnitude_ema``, ``up_filter``, ``down_filter``, ``freqs``, ``phases``,
``transform``), so official checkpoints load by name.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..stylegan2.layers import FullyConnectedLayer
from .filters import design_lowpass
from .ops import filtered_lrelu, modulated_conv2d


class SynthesisInput(nn.Module):
    """Fourier features ``[N, channels, size, size]`` whose rotation and translation come from w.

    Its style is the 4-vector ``t = affine(w)``: ``(cos, sin)`` of a rotation (after normalising the
    first two entries) and a translation, both applied to the sampling grid, then the user's ``transform``.
    """

    def __init__(
        self,
        w_dim: int,  # W width.
        channels: int,  # Number of Fourier features (output channels).
        size: int,  # Output side length in samples, margin included.
        sampling_rate: float,  # Samples per unit length of the output.
        bandwidth: float,  # Highest frequency of the features.
    ) -> None:
        super().__init__()
        self.w_dim, self.channels, self.size = w_dim, channels, int(size)
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        # Frequencies uniform in the disc of radius `bandwidth` (only the shape of a fresh network).
        freqs = torch.randn([channels, 2])
        radii = freqs.norm(dim=1, keepdim=True)
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():  # identity transform until trained
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3))  # inverse of the user's transform of the image
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand([channels]) - 0.5)

    def forward(self, t: torch.Tensor, transform: torch.Tensor | None = None) -> torch.Tensor:
        """``t: [N, 4]`` (the affine output) -> ``[N, channels, size, size]``.

        ``transform``: ``[3, 3]`` or ``[N, 3, 3]`` inverse transform of the image; None = the ``transform`` buffer.
        """
        batch = t.shape[0]
        user = (self.transform if transform is None else transform).to(t.device, torch.float32)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        c, s, tx, ty = t.unbind(dim=1)
        zero, one = torch.zeros_like(c), torch.ones_like(c)
        # The inverse rotation, then the inverse translation, of the image: rotate first, then translate.
        learned = torch.stack(
            [
                torch.stack([c, -s, -(c * tx - s * ty)], dim=1),
                torch.stack([s, c, -(s * tx + c * ty)], dim=1),
                torch.stack([zero, zero, one], dim=1),
            ],
            dim=1,
        )  # [N, 3, 3]
        m = learned @ user.expand(batch, 3, 3)
        phases = self.phases[None] + (self.freqs[None] @ m[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = self.freqs[None] @ m[:, :2, :2]  # [N, C, 2]
        # Damp frequencies that a user transform pushed past the band limit.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        # Sample centres at (i + 0.5 - size / 2) / sampling_rate: affine_grid's align_corners=False grid.
        coords = (torch.arange(self.size, device=t.device, dtype=torch.float32) + 0.5 - self.size / 2) * (
            1 / self.sampling_rate
        )
        gx, gy = coords[None, :], coords[:, None]  # x runs along the width, y along the height
        arg = gx[None, :, :, None] * freqs[:, None, None, :, 0] + gy[None, :, :, None] * freqs[:, None, None, :, 1]
        x = torch.sin((arg + phases[:, None, None, :]) * (2 * math.pi)) * amplitudes[:, None, None, :]
        x = x @ (self.weight / math.sqrt(self.channels)).t()  # [N, H, W, C]
        return x.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim}, channels={self.channels}, size={self.size}, "
            f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}"
        )


class SynthesisLayer3(nn.Module):
    """Modulated convolution, then the filtered leaky ReLU that resamples between two sampling rates."""

    def __init__(
        self,
        w_dim: int,  # W width.
        is_torgb: bool,  # The final 1x1 ToRGB layer (no demodulation, linear, no resampling)?
        is_critically_sampled: bool,  # Critically sampled layer (never a radial filter)?
        use_fp16: bool,  # Run in float16 when on CUDA?
        in_channels: int,  # Input feature maps.
        out_channels: int,  # Output feature maps.
        in_size: int,  # Input side length, margin included.
        out_size: int,  # Output side length, margin included.
        in_sampling_rate: int,  # Input sampling rate.
        out_sampling_rate: int,  # Output sampling rate.
        in_cutoff: float,  # Input cutoff frequency (f_c).
        out_cutoff: float,  # Output cutoff frequency.
        in_half_width: float,  # Input transition band half-width (f_h).
        out_half_width: float,  # Output transition band half-width.
        conv_kernel: int = 3,  # Convolution size (ignored for ToRGB: 1).
        filter_size: int = 6,  # Filter taps per factor of resampling.
        lrelu_upsampling: int = 2,  # Oversampling of the activation (ignored for ToRGB).
        use_radial_filters: bool = False,  # Radial down-sampling filter (not for critically sampled layers)?
        conv_clamp: float | None = 256,  # Clamp the output to +-X; None = off.
    ) -> None:
        super().__init__()
        self.w_dim, self.is_torgb, self.use_fp16 = w_dim, is_torgb, use_fp16
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size, self.out_size = int(in_size), int(out_size)
        self.in_sampling_rate, self.out_sampling_rate = in_sampling_rate, out_sampling_rate
        self.out_cutoff = float(out_cutoff)
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        tmp_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        self.up_factor = int(np.rint(tmp_rate / in_sampling_rate))
        self.down_factor = int(np.rint(tmp_rate / out_sampling_rate))
        if in_sampling_rate * self.up_factor != tmp_rate or out_sampling_rate * self.down_factor != tmp_rate:
            raise ValueError(f"sampling rates {in_sampling_rate} -> {out_sampling_rate} are not integer ratios")
        up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = use_radial_filters and not is_critically_sampled
        up = design_lowpass(up_taps, in_cutoff, in_half_width * 2, tmp_rate)
        down = design_lowpass(down_taps, out_cutoff, out_half_width * 2, tmp_rate, radial=self.down_radial)
        self.register_buffer("up_filter", None if up is None else torch.as_tensor(up, dtype=torch.float32))
        self.register_buffer("down_filter", None if down is None else torch.as_tensor(down, dtype=torch.float32))

        # Padding of the up-sampled signal so that the output lands on the symmetric sample grid.
        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += up_taps + down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        self.padding = (pad_lo, pad_total - pad_lo, pad_lo, pad_total - pad_lo)
        self.act_gain = 1.0 if is_torgb else math.sqrt(2)
        self.slope = 1.0 if is_torgb else 0.2
        self.weight_gain = 1 / math.sqrt(in_channels * self.conv_kernel**2) if is_torgb else 1.0

    def forward(self, x: torch.Tensor, styles: torch.Tensor, fused: bool = True) -> torch.Tensor:
        """``x: [N, in_channels, in_size, in_size]``, ``styles: [N, in_channels]`` (raw affine output)
        -> ``[N, out_channels, out_size, out_size]`` in ``x``'s dtype."""
        if self.is_torgb:
            styles = styles * self.weight_gain
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            demodulate=not self.is_torgb,
            input_gain=self.magnitude_ema.rsqrt(),
            fused=fused,
        )
        return filtered_lrelu(
            x,
            self.up_filter,
            self.down_filter,
            self.bias,
            up=self.up_factor,
            down=self.down_factor,
            padding=self.padding,
            gain=self.act_gain,
            slope=self.slope,
            clamp=self.conv_clamp,
        )

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, in_size={self.in_size}, "
            f"out_size={self.out_size}, up={self.up_factor}, down={self.down_factor}, is_torgb={self.is_torgb}"
        )
