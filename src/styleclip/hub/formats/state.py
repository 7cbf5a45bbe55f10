"""Exhaustive weight copying: every tensor of the network must be matched, and nothing may be left over."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from ...errors import CheckpointError


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
