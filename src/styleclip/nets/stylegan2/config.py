"""Typed hyper-parameters of a StyleGAN2 generator.

The field names follow NVIDIA's stylegan2-ada-pytorch constructor arguments, so that the
``init_kwargs`` stored in an official pickle map onto these dataclasses one to one, and so that
a config written by :func:`styleclip.save_generator` reads like the official documentation.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from ...errors import UsageError

ARCHITECTURES = ("orig", "skip", "resnet")


@dataclass
class MappingConfig:
    """The z -> w network."""

    num_layers: int = 8  # Fully connected layers in the MLP.
    embed_features: int | None = None  # Label embedding width; None = w_dim.
    layer_features: int | None = None  # Hidden width of the MLP; None = w_dim.
    activation: str = "lrelu"  # Activation after every layer.
    lr_multiplier: float = 0.01  # Equalised-learning-rate multiplier the weights were trained with.
    w_avg_beta: float | None = 0.995  # EMA decay of w_avg during training; None = no w_avg (no truncation).


@dataclass
class SynthesisConfig:
    """The w -> image network."""

    channel_base: int = 32768  # Channels at resolution r are min(channel_base // r, channel_max).
    channel_max: int = 512  # Upper bound on the channels of any layer.
    num_fp16_res: int = 0  # The N highest resolutions run in float16 on CUDA (float32 elsewhere).
    conv_clamp: float | None = None  # Clamp conv outputs to +-X after the activation; None = no clamp.
    architecture: str = "skip"  # 'skip' (ToRGB at every block), 'orig' (last block only) or 'resnet'.
    resample_filter: list[float] = field(default_factory=lambda: [1.0, 3.0, 3.0, 1.0])  # FIR taps.
    use_noise: bool = True  # Per-pixel noise inputs.
    activation: str = "lrelu"  # Activation of the conv layers.
    kernel_size: int = 3  # Spatial size of the modulated convolutions.


@dataclass
class GeneratorConfig:
    """Everything needed to build a :class:`~styleclip.nets.stylegan2.Generator` before its weights."""

    z_dim: int = 512  # Input latent (Z) size; 0 = unconditional noise-free (label only).
    c_dim: int = 0  # Class-label size; 0 = unconditional.
    w_dim: int = 512  # Intermediate latent (W) size.
    img_resolution: int = 1024  # Output side length, a power of two >= 4.
    img_channels: int = 3  # Output colour channels.
    mapping: MappingConfig = field(default_factory=MappingConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)

    def __post_init__(self) -> None:
        check_top_level(self)
        res = self.img_resolution
        if res & (res - 1):
            raise UsageError(f"img_resolution must be a power of two >= 4, got {res}")
        syn = self.synthesis
        check_int("channel_base", syn.channel_base, 1, MAX_CHANNEL_BASE)
        check_int("channel_max", syn.channel_max, 1, MAX_WIDTH)
        check_int("num_fp16_res", syn.num_fp16_res, 0, 64)
        check_int("kernel_size", syn.kernel_size, 1, 15)
        check_float("conv_clamp", syn.conv_clamp, 0, None, optional=True)
        taps = syn.resample_filter
        if not isinstance(taps, list | tuple) or not 1 <= len(taps) <= 16:
            raise UsageError(f"resample_filter must list 1 to 16 taps, got {str(taps)[:60]}")
        for tap in taps:
            check_float("resample_filter", tap, None, None)
        if sum(float(t) for t in taps) == 0:
            raise UsageError("resample_filter taps must not sum to zero")
        if self.synthesis.architecture not in ARCHITECTURES:
            raise UsageError(
                f"unknown synthesis architecture {self.synthesis.architecture!r}; expected one of {ARCHITECTURES}"
            )
        if self.z_dim <= 0 and self.c_dim <= 0:
            raise UsageError("a generator needs z_dim > 0 or c_dim > 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        """Build from a plain dict; unknown keys raise, so a config from a newer version is not misread."""
        return config_from_dict(cls, SynthesisConfig, data)


# Far beyond any published network; small enough that no config of this size asks for terabytes.
MAX_RESOLUTION = 1 << 20
MAX_WIDTH = 1 << 16
MAX_CHANNEL_BASE = 1 << 26
MAX_MAPPING_LAYERS = 64


def check_int(name: str, value: Any, low: int, high: int) -> None:
    """Refuse (one line) a setting that is not an integer in ``[low, high]``: these sizes divide and allocate."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise UsageError(f"{name} must be an integer, got {str(value)[:40]!r}")
    if not low <= value <= high:
        raise UsageError(f"{name} must be between {low} and {high}, got {value}")


def check_float(name: str, value: Any, low: float | None, high: float | None, optional: bool = False) -> None:
    """Refuse a setting that is not a finite number above ``low`` (exclusive) and at most ``high``."""
    if value is None and optional:
        return
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number, got {str(value)[:40]!r}")
    if (low is not None and value <= low) or (high is not None and value > high):
        raise UsageError(f"{name} must be in ({low}, {high}], got {value}")


def check_top_level(config: Any) -> None:
    """The settings both generator families share: latent widths, resolution, channels and the mapping network."""
    check_int("z_dim", config.z_dim, 0, MAX_WIDTH)
    check_int("c_dim", config.c_dim, 0, MAX_WIDTH)
    check_int("w_dim", config.w_dim, 1, MAX_WIDTH)
    check_int("img_resolution", config.img_resolution, 4, MAX_RESOLUTION)
    check_int("img_channels", config.img_channels, 1, 16)
    m = config.mapping
    check_int("mapping num_layers", m.num_layers, 1, MAX_MAPPING_LAYERS)
    for name in ("embed_features", "layer_features"):
        if getattr(m, name) is not None:
            check_int(f"mapping {name}", getattr(m, name), 1, MAX_WIDTH)
    check_float("mapping lr_multiplier", m.lr_multiplier, 0, None)
    check_float("mapping w_avg_beta", m.w_avg_beta, None, 1, optional=True)


@dataclass
class _TopLevel:
    z_dim: int = 512
    c_dim: int = 0
    w_dim: int = 512
    img_resolution: int = 1024
    img_channels: int = 3


def config_from_dict(kind: type, synthesis_kind: type, data: dict[str, Any]) -> Any:
    """A generator config of ``kind`` from a plain dict: ``mapping`` and ``synthesis`` sub-dicts, the rest top-level
    fields; unknown keys raise. Shared by the StyleGAN2 and StyleGAN3 configs."""
    data = dict(data)
    mapping = _build(MappingConfig, data.pop("mapping", {}) or {}, "mapping")
    synthesis = _build(synthesis_kind, data.pop("synthesis", {}) or {}, "synthesis")
    top = _build(_TopLevel, data, "generator")
    return kind(**dataclasses.asdict(top), mapping=mapping, synthesis=synthesis)


def _build(kind: type, data: dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UsageError(f"unknown {where} setting(s) {unknown}; known: {sorted(names)}")
    return kind(**data)
