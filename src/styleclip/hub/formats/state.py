"""Exhaustive weight copying: every tensor of the network must be matched, and nothing may be left over."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from ...errors import CheckpointError
from ...nets.stylegan2 import Generator, GeneratorConfig
from ...nets.stylegan3 import Generator3, GeneratorConfig3
from .budget import check_finite

# Far beyond any published StyleGAN2, small enough that a forged config cannot exhaust memory.
MAX_RESOLUTION = 8192
MAX_WIDTH = 8192
MAX_MAPPING_LAYERS = 64
MAX_SG3_LAYERS = 64  # StyleGAN3's synthesis layers (NVIDIA's use 14), and bounds on its filters and margins
MAX_SG3_FILTER = 16
MAX_SG3_MARGIN = 1024


def build_generator(config: GeneratorConfig | GeneratorConfig3, available: int, source: str) -> Generator:
    """Construct the generator (:class:`Generator` or, for a :class:`GeneratorConfig3`, :class:`Generator3`)
    only if the file holds enough numbers to fill it.

    A few hundred bytes of config could otherwise declare a network of hundreds of gigabytes, which
    would be allocated before the first tensor is compared. ``available`` is the number of values
    the file actually holds.
    """
    syn, mapping = config.synthesis, config.mapping
    widths = [config.z_dim, config.w_dim, config.c_dim, syn.channel_max, mapping.layer_features or 0]
    if config.img_resolution > MAX_RESOLUTION or max(widths) > MAX_WIDTH or mapping.num_layers > MAX_MAPPING_LAYERS:
        raise CheckpointError(f"{source} declares an implausibly large network ({config.img_resolution} px)")
    cls = Generator3 if isinstance(config, GeneratorConfig3) else Generator
    if cls is Generator3 and (
        syn.num_layers > MAX_SG3_LAYERS
        or max(syn.filter_size, syn.conv_kernel, 2 * syn.lrelu_upsampling) > MAX_SG3_FILTER
        or syn.margin_size > MAX_SG3_MARGIN
    ):
        raise CheckpointError(f"{source} declares an implausible StyleGAN3 network ({syn.num_layers} layers)")
    with torch.device("meta"):
        probe = cls(config)
    needed = sum(
        t.numel() for n, t in [*probe.named_parameters(), *probe.named_buffers()] if "resample_filter" not in n
    )
    if needed > available + config.w_dim:  # w_avg may be estimated rather than stored
        raise CheckpointError(f"{source} declares a network of {needed} values but holds only {available}")
    return cls(config)


def numel(tensors) -> int:
    """Total number of values in an iterable of tensors / arrays."""
    return sum(int(np.prod(getattr(t, "shape", ()))) for t in tensors)


def load_exact(module: nn.Module, tensors: Mapping[str, torch.Tensor | np.ndarray], source: str) -> None:
    """Copy ``tensors`` into ``module``'s parameters and buffers by name.

    Raises :class:`CheckpointError` naming the first missing, unexpected or mis-shaped tensors, so
    that a checkpoint of a different network never loads half-way.
    """
    targets = dict(module.named_parameters())
    targets.update(module.named_buffers())
    missing = sorted(set(targets) - set(tensors))
    unexpected = sorted(set(tensors) - set(targets))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected {_few(unexpected)}")
        raise CheckpointError(f"{source} does not match the network it describes: {'; '.join(parts)}")
    check_finite(((name, tensors[name]) for name in targets), source)
    with torch.no_grad():
        for name, target in targets.items():
            value = tensors[name]
            # np.array, not np.ascontiguousarray: the latter turns 0-d scalars into shape [1]
            value = torch.from_numpy(np.array(value, order="C")) if isinstance(value, np.ndarray) else value
            if tuple(value.shape) != tuple(target.shape):
                raise CheckpointError(
                    f"{source}: tensor {name} has shape {list(value.shape)}, the network needs {list(target.shape)}"
                )
            target.copy_(value.to(target.dtype))


def _few(names: list[str], n: int = 5) -> str:
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(names[:n]) + more
