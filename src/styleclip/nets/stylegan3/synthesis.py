"""StyleGAN3's synthesis network: ws -> styles (S) -> image, each step its own method.

The layer schedule (cutoffs, stop bands, sampling rates, sizes, channels) is NVIDIA's geometric
progression from the config. W+ has ``num_layers + 2`` rows: row 0 drives the Fourier-feature input,
row ``i + 1`` the layer ``L{i}_{size}_{channels}``; every row drives exactly one style vector.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ...errors import UsageError
from ...utils.compiling import Compiled, compile_requested
from ...utils.precision import LayerDtypes
from ..stylegan2.layers import NOISE_MODES
from ..stylegan2.synthesis import (
    StyleLayer,
    check_styles,
    draws_samples_alone,
    needs_gradients,
    sample_styles,
    use_fused,
)
from .config import SynthesisConfig3
from .layers import SynthesisInput, SynthesisLayer3


def layer_schedule(img_resolution: int, img_channels: int, cfg: SynthesisConfig3) -> dict[str, np.ndarray]:
    """Per layer (input = index 0 ... ToRGB = num_layers): cutoff, stop band, sampling rate, half width, size, channels."""
    n = cfg.num_layers
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * cfg.last_stopband_rel
    exponents = np.minimum(np.arange(n + 1) / (n - cfg.num_critical), 1)
    cutoffs = cfg.first_cutoff * (last_cutoff / cfg.first_cutoff) ** exponents
    stopbands = cfg.first_stopband * (last_stopband / cfg.first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + cfg.margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((cfg.channel_base / 2) / cutoffs, cfg.channel_max))
    channels[-1] = img_channels
    return dict(
        cutoffs=cutoffs, stopbands=stopbands, rates=rates, half_widths=half_widths, sizes=sizes, channels=channels
    )


def detail_resolution(cutoff: float, img_resolution: int) -> int:
    """The power-of-two image size whose Nyquist frequency is nearest ``cutoff``: the scale of detail a
    layer carries, comparable with a StyleGAN2 block's resolution (coarse 4-8, medium 16-32, fine 64+)."""
    return int(min(2 ** round(math.log2(2 * cutoff)), img_resolution))


class SynthesisNetwork3(nn.Module):
    """``ws: [N, num_ws, w_dim]`` -> ``styles`` -> image ``[N, img_channels, R, R]`` (about ``[-1, 1]``)."""

    def __init__(
        self,
        w_dim: int,  # W width.
        img_resolution: int,  # Output resolution R.
        img_channels: int,  # Output channels.
        cfg: SynthesisConfig3 | None = None,  # Layer schedule, kernels, filters, clamp, fp16.
    ) -> None:
        super().__init__()
        cfg = cfg or SynthesisConfig3()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.num_ws = cfg.num_layers + 2
        self.output_scale = cfg.output_scale
        self.modulation = "auto"
        # A batch is drawn one sample at a time where draws_samples_alone says so; False = always as one batch.
        self.split_samples = True
        self._compiled: Compiled | None = None  # made on the first compiled call (utils.compiling)
        plan = layer_schedule(img_resolution, img_channels, cfg)
        cutoffs, rates, channels, sizes = plan["cutoffs"], plan["rates"], plan["channels"], plan["sizes"]
        self.input = SynthesisInput(w_dim, int(channels[0]), int(sizes[0]), rates[0], cutoffs[0])
        self.style_layers: list[StyleLayer] = [
            StyleLayer("input", detail_resolution(cutoffs[0], img_resolution), "input", 4, 0)
        ]
        self.layer_names: list[str] = []
        for idx in range(cfg.num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer3(
                w_dim=w_dim,
                is_torgb=idx == cfg.num_layers,
                is_critically_sampled=idx >= cfg.num_layers - cfg.num_critical,
                use_fp16=bool(rates[idx] * 2**cfg.num_fp16_res > img_resolution),
                in_channels=int(channels[prev]),
                out_channels=int(channels[idx]),
                in_size=int(sizes[prev]),
                out_size=int(sizes[idx]),
                in_sampling_rate=int(rates[prev]),
                out_sampling_rate=int(rates[idx]),
                in_cutoff=cutoffs[prev],
                out_cutoff=cutoffs[idx],
                in_half_width=plan["half_widths"][prev],
                out_half_width=plan["half_widths"][idx],
                conv_kernel=cfg.conv_kernel,
                filter_size=cfg.filter_size,
                lrelu_upsampling=cfg.lrelu_upsampling,
                use_radial_filters=cfg.use_radial_filters,
                conv_clamp=cfg.conv_clamp,
            )
            name = f"L{idx}_{layer.out_size}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)
            kind = "torgb" if layer.is_torgb else "conv"
            res = detail_resolution(cutoffs[idx], img_resolution)
            self.style_layers.append(StyleLayer(name, res, kind, layer.in_channels, idx + 1))

    def layers(self) -> list[SynthesisLayer3]:
        return [getattr(self, name) for name in self.layer_names]

    # -- W+ -> S ---------------------------------------------------------------------------------

    def styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every per-layer style vector (the affine outputs), differentiable.

        Args:
            ws: ``[N, num_ws, w_dim]`` (W+).

        Returns:
            Ordered ``{name: [N, channels]}``: ``'input'`` (``[N, 4]``: rotation and translation of the
            Fourier features), then ``'L0_36_512'`` ... and the ToRGB layer, raw affine outputs.
        """
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise UsageError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws = ws.to(torch.float32)
        out = {"input": self.input.affine(ws[:, 0])}
        for info, layer in zip(self.style_layers[1:], self.layers(), strict=True):
            out[info.name] = layer.affine(ws[:, info.w_index])
        return out

    # -- S -> image --------------------------------------------------------------------------------

    def from_styles(
        self,
        styles: dict[str, torch.Tensor],
        noise_mode: str = "const",
        force_fp32: bool | None = None,
        modulation: str | None = None,
        transform: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        precision: str | None = None,
    ) -> torch.Tensor:
        """Draw the image from StyleSpace.

        Args:
            styles: ``{name: [N, channels]}`` as returned by :meth:`styles` (every layer required).
            noise_mode: accepted for StyleGAN2 compatibility; StyleGAN3 has no noise inputs.
            force_fp32: None = float16 for the checkpoint's fp16 layers on CUDA only, float32 elsewhere.
            modulation: 'fused', 'activation' or 'auto' (as StyleGAN2's); None = :attr:`modulation`.
            transform: ``[3, 3]`` (or ``[N, 3, 3]``) inverse transform of the image (see
                :func:`~styleclip.nets.stylegan3.make_transform`); None = the input's ``transform`` buffer.
            generator: unused (no noise); accepted for StyleGAN2 compatibility.
            precision: 'fp32', 'bf16' (every layer in bf16; the Fourier input and the output in fp32), 'fp16' (the
                checkpoint's fp16 layers) or None = the job's :func:`~styleclip.utils.precision.computing_in` scope,
                and outside one ``force_fp32`` decides.

        Returns:
            ``[N, img_channels, R, R]`` float32, roughly in ``[-1, 1]``.
        """
        if noise_mode not in NOISE_MODES:
            raise UsageError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        check_styles(self.style_layers, styles)
        first = styles["input"]
        mode = modulation or self.modulation
        grads = needs_gradients(styles, self)
        fused = use_fused(mode, first, styles, self, grads)
        dtypes = LayerDtypes(precision, force_fp32, first.device)
        batch = first.shape[0]
        if compile_requested():
            if self._compiled is None:
                self._compiled = Compiled(self._draw, f"the {self.img_resolution} px StyleGAN3 synthesis network")
            return self._compiled(styles, transform, fused, dtypes.precision, dtypes.force_fp32)
        if self.split_samples and draws_samples_alone(mode, first, grads, dtypes.precision):
            # (25 % faster in bf16 with gradients at 256 px, batch 2; a lone sample takes the fused path without them)
            per_sample = transform is not None and transform.ndim == 3 and transform.shape[0] == batch
            return torch.cat([
                self._draw(sample_styles(styles, i), transform[i : i + 1] if per_sample else transform,
                           not grads, dtypes.precision, dtypes.force_fp32)
                for i in range(batch)
            ])  # fmt: skip
        return self._draw(styles, transform, fused, dtypes.precision, dtypes.force_fp32)

    def _draw(
        self,
        styles: dict[str, torch.Tensor],
        transform: torch.Tensor | None,
        fused: bool,
        precision: str | None,
        force_fp32: bool,
    ) -> torch.Tensor:
        """:meth:`from_styles` after its checks and choices (plain values, so that ``torch.compile`` can take it)."""
        dtypes = LayerDtypes(precision, force_fp32, styles["input"].device)
        x = self.input(styles["input"].to(torch.float32), transform)
        for info, layer in zip(self.style_layers[1:], self.layers(), strict=True):
            x = layer(x.to(dtypes(layer.use_fp16)), styles[info.name], fused=fused)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32).contiguous()

    def forward(self, ws: torch.Tensor, **kwargs) -> torch.Tensor:
        """``ws: [N, num_ws, w_dim]`` -> image ``[N, C, R, R]``; keyword arguments as :meth:`from_styles`."""
        return self.from_styles(self.styles(ws), **kwargs)

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}"
