"""StyleCLIP's latent mapper: a small network per W+ row group that predicts a residual for one text edit.

Each group (coarse, medium, fine) is PixelNorm followed by equalised-linear layers with a fused leaky ReLU,
as in StyleCLIP's ``LevelsMapper``; the edit is ``w' = w + strength · M(w)``. Groups follow the resolution
of the block their rows drive (``styleclip.latents.GROUPS``): coarse 4-8 px, medium 16-32 px, fine 64 px and
up, i.e. rows 0-3 / 4-7 / 8-17 at 1024 px (StyleCLIP's split) and 0-3 / 4-7 / 8-15 at 512 px.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..latents import GROUPS, ws_resolution

GROUP_NAMES = tuple(GROUPS)  # ('coarse', 'medium', 'fine')
# Far beyond StyleCLIP's mappers (512 wide, 4 layers, 18 rows); small enough that a config cannot ask for terabytes.
MAX_MAPPER_WIDTH = 8192
MAX_MAPPER_LAYERS = 64
MAX_MAPPER_ROWS = 64


def group_rows(num_ws: int) -> dict[str, tuple[int, int]]:
    """``{group: (first row, last row + 1)}`` of the W+ rows each group covers; empty groups are left out."""
    out = {}
    for name, (lo, hi) in GROUPS.items():
        rows = [i for i in range(num_ws) if lo <= ws_resolution(i) <= hi]
        if rows:
            out[name] = (rows[0], rows[-1] + 1)
    return out


@dataclass(frozen=True)
class MapperConfig:
    """The shape of a :class:`LatentMapper`."""

    w_dim: int = 512  # width of W, and of every hidden layer (StyleCLIP: 512)
    num_ws: int = 18  # W+ rows of the generator it edits (18 at 1024 px, 16 at 512 px)
    groups: tuple[str, ...] = GROUP_NAMES  # groups that get a network; the others' rows never change
    num_layers: int = 4  # equalised-linear layers per group (StyleCLIP: 4)
    lr_multiplier: float = 0.01  # learning-rate multiplier of those layers (StyleCLIP: 0.01)
    strength: float = 0.1  # default s in w' = w + s·M(w) (StyleCLIP trains and applies with 0.1)

    def check(self) -> None:
        for name, high in (("w_dim", MAX_MAPPER_WIDTH), ("num_ws", MAX_MAPPER_ROWS), ("num_layers", MAX_MAPPER_LAYERS)):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not 1 <= value <= high:
                raise UsageError(f"mapper {name} must be an integer from 1 to {high}, got {str(value)[:40]!r}")
        for name in ("lr_multiplier", "strength"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
                raise UsageError(f"mapper {name} must be a finite number, got {str(value)[:40]!r}")
        if not isinstance(self.groups, tuple) or not all(isinstance(g, str) for g in self.groups):
            raise UsageError(f"mapper groups must be names ({', '.join(GROUP_NAMES)})")
        unknown = [g for g in self.groups if g not in GROUP_NAMES]
        if unknown:
            raise UsageError(f"unknown mapper group(s) {unknown}: use {', '.join(GROUP_NAMES)}")
        present = group_rows(self.num_ws)
        if not any(g in present for g in self.groups):
            raise UsageError(
                f"no mapper group has rows in a generator with {self.num_ws} W+ rows (it has {', '.join(present)})"
            )
        if self.w_dim < 1 or self.num_layers < 1 or not self.lr_multiplier > 0:
            raise UsageError("mapper w_dim and num_layers must be positive, and lr_multiplier > 0")

    def num_values(self) -> int:
        """Parameters of the mapper this config describes, computed without building it."""
        present = [g for g in self.groups if g in group_rows(self.num_ws)]
        return len(present) * self.num_layers * (self.w_dim * self.w_dim + self.w_dim)

    def to_dict(self) -> dict:
        return asdict(self) | {"groups": list(self.groups)}

    @classmethod
    def from_dict(cls, data: dict) -> MapperConfig:
        if not isinstance(data, dict):
            raise UsageError("a mapper config must be a JSON object")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "groups" in known:
            if not isinstance(known["groups"], list | tuple):
                raise UsageError(f"mapper groups must be a list of names ({', '.join(GROUP_NAMES)})")
            known["groups"] = tuple(known["groups"])
        return cls(**known)


class PixelNorm(nn.Module):
    """``x / sqrt(mean(x², dim) + 1e-8)``.

    StyleCLIP applies rosinality's PixelNorm, which averages over dim 1, to ``[N, rows, w_dim]`` slices: each
    W+ coordinate is normalised over the group's rows, not over its 512 features. The published mappers were
    trained that way, so it is kept.
    """

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=self.dim, keepdim=True) + self.eps)


class EqualLinear(nn.Module):
    """Equalised-learning-rate linear layer with rosinality's fused leaky ReLU.

    Stored weights are ``randn / lr_mul`` and used times ``lr_mul / sqrt(in)``, so the optimiser sees a
    parameter ``1 / lr_mul`` times larger than the one used (a per-layer learning-rate cut). The bias (times
    ``lr_mul``) is added over the last dimension before ``leaky_relu(·, 0.2) · sqrt(2)``.
    """

    def __init__(self, in_features: int, out_features: int, lr_mul: float = 0.01) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.lr_mul = float(lr_mul)
        self.scale = lr_mul / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(x, 0.2) * math.sqrt(2)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, lr_mul={self.lr_mul}"


class GroupMapper(nn.Module):
    """One group's network: ``[N, rows, w_dim]`` -> ``[N, rows, w_dim]``. ``mapping.0`` is the PixelNorm, so
    parameter names (``mapping.1.weight`` ...) are StyleCLIP's."""

    def __init__(self, w_dim: int, num_layers: int, lr_mul: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [PixelNorm(dim=1)]
        layers += [EqualLinear(w_dim, w_dim, lr_mul) for _ in range(num_layers)]
        self.mapping = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mapping(x)


class LatentMapper(nn.Module):
    """StyleCLIP's LevelsMapper for any generator: W+ ``[N, num_ws, w_dim]`` -> residual of the same shape.

    ``forward`` gives ``M(w)`` (zeros on the rows of disabled or absent groups); :meth:`edit` gives the edited
    W+ ``w + s·M(w)`` with those rows bit-identical to ``w``. ``meta`` records the prompt, the generator's
    fingerprint and where the weights came from; ``generator`` is the generator it is paired with, when
    known (set by :func:`styleclip.load_mapper`; kept outside the module tree, so that ``state_dict``,
    ``.to()`` and DistributedDataParallel see the mapper alone).
    """

    def __init__(self, config: MapperConfig) -> None:
        super().__init__()
        config.check()
        self.config = config
        self.w_dim, self.num_ws = config.w_dim, config.num_ws
        self.rows = {g: r for g, r in group_rows(config.num_ws).items() if g in config.groups}
        self.groups = nn.ModuleDict(
            {g: GroupMapper(config.w_dim, config.num_layers, config.lr_multiplier) for g in self.rows}
        )
        self.meta: dict = {}
        self.attach_generator(None)

    def attach_generator(self, G) -> None:
        """Pair with generator ``G`` (or None), without making it a submodule."""
        object.__setattr__(self, "generator", G)

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        """``ws: [N, num_ws, w_dim]`` -> ``M(ws)``, same shape and dtype."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise UsageError(f"the mapper takes W+ [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        parts, row = [], 0
        for name, (lo, hi) in self.rows.items():
            if lo > row:
                parts.append(torch.zeros_like(ws[:, row:lo]))
            parts.append(self.groups[name](ws[:, lo:hi]))
            row = hi
        if row < self.num_ws:
            parts.append(torch.zeros_like(ws[:, row:]))
        return torch.cat(parts, dim=1)

    def edit(self, ws: torch.Tensor, strength: float | None = None) -> torch.Tensor:
        """``w + s·M(w)`` for W+ ``[N, num_ws, w_dim]``; ``strength`` None = ``config.strength`` (0.1)."""
        s = self.config.strength if strength is None else float(strength)
        mask = torch.zeros(self.num_ws, 1, dtype=torch.bool, device=ws.device)  # rows the mapper may change
        for lo, hi in self.rows.values():
            mask[lo:hi] = True
        return torch.where(mask, ws + s * self(ws), ws)

    def extra_repr(self) -> str:
        rows = ", ".join(f"{g} rows {lo}-{hi - 1}" for g, (lo, hi) in self.rows.items())
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, {rows}, strength={self.config.strength}"
