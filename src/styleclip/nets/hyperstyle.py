"""HyperStyle's hyper-network (Alaluf et al., CVPR 2022): photo + reconstruction -> offsets of the generator's weights.

Pure modules, no I/O. Names follow the published checkpoints' ``hypernet.*`` keys (``conv1``, ``bn1``, ``relu``,
``body``, ``shared_weight_hypernet``, ``refinement_blocks.N``) so those load as they are.

The network sees the photo and the current reconstruction side by side (6 channels, 256 px) through a ResNet-34
trunk without max-pool (16-px features), and has one refinement block per generator layer it tunes. Layers are
numbered as HyperStyle numbers rosinality's convolutions: 0 ``conv1`` (4 px), 1 ``to_rgb1``, then per resolution
``2+3k`` the up-sampling conv, ``3+3k`` the second conv, ``4+3k`` the ToRGB. The 3x3 layers 0, 2, 3, 5, 6, 8, 9,
11, 12 (all 512 x 512 in the published generators) share one hyper-network: their block pools the features to a
code, and :class:`SharedWeightsHypernet` turns it into a full ``[out, in, 3, 3]`` offset. Every other tuned layer
has its own block, predicting one value per ``(out, in)`` pair (copied over the 3x3 taps) or, for ToRGB layers, a
``[3, in, 1, 1]`` offset. The generator then draws with ``W' = W * (1 + Δ)`` in place of each tuned weight, before
modulation and demodulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .encoders import EqualLinear, Stage, resnet_body

SHARED_LAYERS = (0, 2, 3, 5, 6, 8, 9, 11, 12)
DEFAULT_LAYERS_TO_TUNE = (0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24)  # every non-ToRGB conv
FEATURE_SIZE = 16  # the trunk's output side for a 256-px input


@dataclass(frozen=True)
class TunedLayer:
    """One generator convolution in HyperStyle's numbering: its index, styleclip's module name, kernel, in, out."""

    index: int
    name: str  # e.g. 'synthesis.b64.conv0'
    kernel: int
    in_channels: int
    out_channels: int

    @property
    def torgb(self) -> bool:
        return self.index == 1 or (self.index >= 4 and (self.index - 4) % 3 == 0)


def layer_table(G) -> list[TunedLayer]:
    """HyperStyle's numbering of ``G``'s convolutions (a StyleGAN2 of the 'skip' architecture), in order."""
    syn = G.synthesis
    first = syn.block_resolutions[0]
    names = [f"synthesis.b{first}.conv1", f"synthesis.b{first}.torgb"]
    for res in syn.block_resolutions[1:]:
        names += [f"synthesis.b{res}.conv0", f"synthesis.b{res}.conv1", f"synthesis.b{res}.torgb"]
    out = []
    for index, name in enumerate(names):
        weight = G.get_submodule(name).weight
        out.append(TunedLayer(index, name, int(weight.shape[-1]), int(weight.shape[1]), int(weight.shape[0])))
    return out


class SharedWeightsHypernet(nn.Module):
    """Code ``[B, z]`` -> offset ``[B, out, in, f, f]`` through two learned matrices (HyperStyle's shared
    hyper-network): ``h = code @ w2 + b2`` read as ``[B, in, z]``, then ``h @ w1 + b1`` read as ``[B, out, in, f, f]``
    (a reinterpretation of the ``[B, in, out·f·f]`` product, as the published network reads it)."""

    def __init__(self, z_dim: int = 512, in_size: int = 512, out_size: int = 512, f_size: int = 3) -> None:
        super().__init__()
        self.z_dim, self.in_size, self.out_size, self.f_size = z_dim, in_size, out_size, f_size
        # HyperStyle's initialisation: N(0, 1/40²) folded into (-2, 2); only the shapes matter once weights load
        self.w1 = nn.Parameter(torch.fmod(torch.randn(z_dim, out_size * f_size * f_size) / 40, 2))
        self.b1 = nn.Parameter(torch.fmod(torch.randn(out_size * f_size * f_size) / 40, 2))
        self.w2 = nn.Parameter(torch.fmod(torch.randn(z_dim, in_size * z_dim) / 40, 2))
        self.b2 = nn.Parameter(torch.fmod(torch.randn(in_size * z_dim) / 40, 2))

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        b = code.shape[0]
        h = (code @ self.w2 + self.b2).view(b, self.in_size, self.z_dim)
        k = h @ self.w1 + self.b1
        return k.view(b, self.out_size, self.in_size, self.f_size, self.f_size)


def _strided(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU()]


class HyperRefinementBlock(nn.Module):
    """Features ``[B, C, 16, 16]`` -> a code (one stride-1 and four stride-2 convs, LeakyReLU 0.01, an equalised
    linear) -> the shared hyper-network's offset."""

    def __init__(self, hypernet: SharedWeightsHypernet, n_channels: int = 512, inner_c: int = 128, out_c: int = 512):
        super().__init__()
        layers = _strided(n_channels, inner_c, 1)
        for _ in range(int(math.log2(FEATURE_SIZE)) - 1):
            layers += _strided(inner_c, inner_c, 2)
        layers += _strided(inner_c, out_c, 2)
        self.convs = nn.Sequential(*layers)
        self.out_c = out_c
        self.linear = EqualLinear(out_c, out_c)
        self.hypernet = hypernet  # registered here too: the published files store the shared weights under each block

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        code = self.linear(self.convs(features).view(-1, self.out_c))
        return self.hypernet(code)


class RefinementBlock(nn.Module):
    """Features -> the offset of one layer with its own weights: 3x3 layers get one value per ``(out, in)`` pair,
    repeated over the taps; ToRGB layers a full ``[3, in, 1, 1]`` offset."""

    def __init__(self, layer: TunedLayer, n_channels: int = 512, inner_c: int = 256, out_c: int = 512) -> None:
        super().__init__()
        self.layer = layer
        pools = int(math.log2(FEATURE_SIZE)) - 1 - (1 if layer.kernel == 3 else 0)
        layers = _strided(n_channels, inner_c, 2)
        for _ in range(pools - 1):
            layers += _strided(inner_c, inner_c, 2)
        layers += _strided(inner_c, out_c, 2)
        self.convs = nn.Sequential(*layers)
        size = layer.in_channels * layer.out_channels
        if layer.torgb:
            self.output = nn.Sequential(nn.Conv2d(out_c, size, 1))
        else:
            self.output = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(out_c, size, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.output(self.convs(features))
        n, k = self.layer, self.layer.kernel
        if n.torgb:
            return x.view(-1, n.out_channels, n.in_channels, k, k)
        x = x.view(-1, n.out_channels, n.in_channels, 1, 1)
        return x.expand(-1, -1, -1, k, k).contiguous()


class HyperNetwork(nn.Module):
    """HyperStyle's ``SharedWeightsHyperNetResNet``: ``[B, 6, 256, 256]`` (photo, reconstruction; ``[-1, 1]``) ->
    ``[offset or None per layer]``, each offset ``[B, out, in, k, k]``.

    ``table``: :func:`layer_table` of the generator; ``tune``: the layer indices that get a block. ``stages``,
    ``stem``, ``inner`` and ``code`` default to the published sizes; smaller ones only serve tests.
    """

    def __init__(
        self,
        table: list[TunedLayer],
        tune: tuple[int, ...] = DEFAULT_LAYERS_TO_TUNE,
        input_nc: int = 6,
        stages: list[Stage] | None = None,
        stem: int = 64,
        inner: tuple[int, int] = (128, 256),
        code: int = 512,
    ) -> None:
        super().__init__()
        from .encoders import RESNET34

        stages = stages or RESNET34
        width = stages[-1][1]
        self.table = table
        self.tune = tuple(i for i in tune if i < len(table))  # the published list names 1024-px layers
        self.conv1 = nn.Conv2d(input_nc, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.PReLU(stem)
        self.body = resnet_body(stages)
        shared = [table[i] for i in SHARED_LAYERS if i < len(table)]
        size = shared[0].in_channels if shared else width
        self.shared_weight_hypernet = SharedWeightsHypernet(code, size, size)
        self.refinement_blocks = nn.ModuleList()
        for layer in table:
            block: nn.Module | None = None
            if layer.index in self.tune:
                if layer.index in SHARED_LAYERS:
                    block = HyperRefinementBlock(self.shared_weight_hypernet, width, inner[0], code)
                else:
                    block = RefinementBlock(layer, width, inner[1], code)
            self.refinement_blocks.append(block)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        features = self.body(self.relu(self.bn1(self.conv1(x))))
        return [block(features) if block is not None else None for block in self.refinement_blocks]
