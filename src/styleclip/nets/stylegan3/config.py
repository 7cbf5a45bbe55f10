"""Typed hyper-parameters of a StyleGAN3 (alias-free) generator.

Field names are the keyword arguments of NVIDIA's ``training.networks_stylegan3.Generator``, whose
synthesis arguments a stylegan3 pickle stores flat beside ``z_dim`` and ``mapping_kwargs``; the
mapping network is StyleGAN2's (:class:`~styleclip.nets.stylegan2.MappingConfig`, 2 layers by default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ...errors import UsageError
from ..stylegan2.config import (
    MAX_CHANNEL_BASE,
    MAX_WIDTH,
    MappingConfig,
    check_float,
    check_int,
    check_top_level,
    config_from_dict,
)


def _mapping_default() -> MappingConfig:
    return MappingConfig(num_layers=2, w_avg_beta=0.998)


@dataclass
class SynthesisConfig3:
    """The w -> image network of StyleGAN3 (defaults: config T; config R sets the commented values)."""

    channel_base: int = 32768  # Channels of a layer are min(channel_base / 2 / cutoff, channel_max); R: 65536.
    channel_max: int = 512  # Upper bound on the channels of any layer; R: 1024.
    num_layers: int = 14  # Layers between the Fourier-feature input and ToRGB.
    num_critical: int = 2  # Critically sampled layers at the end.
    first_cutoff: float = 2.0  # Cutoff frequency of the first layer (f_c,0).
    first_stopband: float = 2**2.1  # Minimum stop band of the first layer (f_t,0).
    last_stopband_rel: float = 2**0.3  # Minimum stop band of the last layer, relative to its cutoff.
    margin_size: int = 10  # Extra pixels computed on every side of the image.
    output_scale: float = 0.25  # Scale of the output image.
    num_fp16_res: int = 4  # Layers whose sampling rate is among the N highest run in float16 on CUDA.
    conv_kernel: int = 3  # Convolution size (the ToRGB layer is always 1x1); R: 1.
    filter_size: int = 6  # Low-pass filter taps per factor of up- or down-sampling.
    lrelu_upsampling: int = 2  # Oversampling of the leaky ReLU relative to the layer's sampling rate.
    use_radial_filters: bool = (
        False  # Radially symmetric down-sampling filters (not critically sampled layers); R: True.
    )
    conv_clamp: float | None = 256  # Clamp every layer's output to +-X; None = off.
    magnitude_ema_beta: float = 0.999  # Training-time decay of the input-magnitude averages (kept for the record).


@dataclass
class GeneratorConfig3:
    """Everything needed to build a :class:`~styleclip.nets.stylegan3.Generator3` before its weights."""

    z_dim: int = 512  # Input latent (Z) size.
    c_dim: int = 0  # Class-label size; 0 = unconditional.
    w_dim: int = 512  # Intermediate latent (W) size.
    img_resolution: int = 1024  # Output side length.
    img_channels: int = 3  # Output colour channels.
    mapping: MappingConfig = field(default_factory=_mapping_default)
    synthesis: SynthesisConfig3 = field(default_factory=SynthesisConfig3)

    architecture = "stylegan3"  # not a field: tells the two generator families apart in saved configs

    def __post_init__(self) -> None:
        syn = self.synthesis
        check_top_level(self)
        if self.z_dim <= 0:
            raise UsageError("a StyleGAN3 generator needs z_dim > 0")
        check_int("channel_base", syn.channel_base, 1, MAX_CHANNEL_BASE)
        check_int("channel_max", syn.channel_max, 1, MAX_WIDTH)
        check_int("num_layers", syn.num_layers, 1, 1 << 12)
        check_int("num_critical", syn.num_critical, 0, 1 << 12)
        check_int("margin_size", syn.margin_size, 0, 1 << 12)
        check_int("num_fp16_res", syn.num_fp16_res, 0, 256)
        for name in ("conv_kernel", "filter_size", "lrelu_upsampling"):
            check_int(name, getattr(syn, name), 1, 64)
        for name in ("first_cutoff", "first_stopband", "last_stopband_rel", "output_scale"):
            check_float(name, getattr(syn, name), 0, 1e6)
        check_float("magnitude_ema_beta", syn.magnitude_ema_beta, None, 1)
        check_float("conv_clamp", syn.conv_clamp, 0, None, optional=True)
        if not 0 <= syn.num_critical < syn.num_layers:
            raise UsageError(f"need 0 <= num_critical < num_layers, got {syn.num_critical} and {syn.num_layers}")
        if syn.conv_kernel < 1 or syn.filter_size < 1 or syn.lrelu_upsampling < 1:
            raise UsageError("conv_kernel, filter_size and lrelu_upsampling must be positive")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig3:
        """Build from a plain dict; unknown keys raise, so a config from a newer version is not misread."""
        return config_from_dict(cls, SynthesisConfig3, data)
