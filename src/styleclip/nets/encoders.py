"""Image -> W+ encoders: e4e (Tov et al. 2021) and ReStyle's iterative e4e variants (Alaluf et al. 2021).

Pure modules, no I/O. Names follow the official checkpoints' ``encoder.*`` keys (``input_layer``, ``body``,
``styles.{i}.convs``, ``styles.{i}.linear``, ``latlayer1``, ``conv1``/``bn1``/``relu`` ...) so those load as
they are. Every encoder returns ``w0 + delta_i`` per style row: one base code plus per-layer offsets
(e4e's progressive scheme with all stages on, as at inference).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .arcface import _STAGES, _Unit


class EqualLinear(nn.Module):
    """rosinality's equalised linear layer: ``x @ (W / sqrt(in) * lr_mul).T + b * lr_mul``."""

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale, self.lr_mul = lr_mul / math.sqrt(in_dim), lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class GradualStyleBlock(nn.Module):
    """Strided 3x3 convs (LeakyReLU 0.01) from ``spatial`` px down to 1, then an equalised linear: one style."""

    def __init__(self, channels: int, spatial: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(channels, channels, 3, 2, 1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).flatten(1))


def _progressive(blocks: nn.ModuleList, features) -> torch.Tensor:
    """``w[:, 0] = w0``, ``w[:, i] = w0 + block_i(features_i)``: ``[N, n_styles, 512]``."""
    w0 = blocks[0](features(0))
    rows = [w0] + [w0 + block(features(i)) for i, block in enumerate(blocks) if i > 0]
    return torch.stack(rows, dim=1)


Stage = tuple[int, int, int]  # (input channels, output channels, units); a stage's first unit strides by 2

IRSE50: list[Stage] = list(_STAGES[50])
RESNET34: list[Stage] = [(64, 64, 3), (64, 128, 4), (128, 256, 6), (256, 512, 3)]


class IRSEEncoder(nn.Module):
    """e4e's ``Encoder4Editing`` (``fpn=True``, 3 input channels) and ReStyle's ``ProgressiveBackboneEncoder``
    (``fpn=False``, 6 input channels: the photo and the current reconstruction).

    Input ``[N, input_nc, 256, 256]`` in ``[-1, 1]``; output ``[N, n_styles, width]`` codes (before the
    average latent is added). ``stages`` and ``stem`` default to the published IR-SE50 (64 px stem,
    512-wide output); smaller ones only serve tests.
    """

    def __init__(
        self,
        n_styles: int,
        input_nc: int = 3,
        fpn: bool = True,
        stages: list[Stage] | None = None,
        stem: int = 64,
    ) -> None:
        super().__init__()
        stages = stages or IRSE50
        self.n_styles, self.input_nc, self.fpn = n_styles, input_nc, fpn
        width = stages[-1][1]
        self.input_layer = nn.Sequential(
            nn.Conv2d(input_nc, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.PReLU(stem)
        )
        units, ends = [], []
        for cin, cout, n in stages:
            units.append(_Unit(cin, cout, 2))
            units += [_Unit(cout, cout, 1) for _ in range(n - 1)]
            ends.append(len(units) - 1)
        self.body = nn.Sequential(*units)
        self.taps = (ends[1], ends[2])  # last units of stages 2 and 3: 64-px and 32-px features for a 256 input
        # e4e: rows 0-2 read the 16-px features, 3-6 the 32-px and the rest the 64-px ones (a feature pyramid)
        spatial = [16 if not fpn or i < 3 else 32 if i < 7 else 64 for i in range(n_styles)]
        self.styles = nn.ModuleList(GradualStyleBlock(width, s) for s in spatial)
        if fpn:
            self.latlayer1 = nn.Conv2d(stages[2][1], width, 1)
            self.latlayer2 = nn.Conv2d(stages[1][1], width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_layer(x)
        taps = {}
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self.taps:
                taps[i] = x
        c3 = x
        if not self.fpn:
            return _progressive(self.styles, lambda i: c3)
        c1, c2 = taps[self.taps[0]], taps[self.taps[1]]
        p2 = F.interpolate(c3, size=c2.shape[-2:], mode="bilinear", align_corners=True) + self.latlayer1(c2)
        p1 = F.interpolate(p2, size=c1.shape[-2:], mode="bilinear", align_corners=True) + self.latlayer2(c1)
        return _progressive(self.styles, lambda i: c3 if i < 3 else p2 if i < 7 else p1)


class WEncoder(nn.Module):
    """HyperStyle's W encoder (``faces_w_encoder.pt``): IR-SE50, average-pooled to one 512-wide code, an equalised
    linear, the same w in every one of the ``n_styles`` rows. Input ``[N, 3, 256, 256]`` in ``[-1, 1]``; output
    ``[N, n_styles, width]`` (before the average latent is added)."""

    def __init__(self, n_styles: int, stages: list[Stage] | None = None, stem: int = 64) -> None:
        super().__init__()
        stages = stages or IRSE50
        self.n_styles, self.input_nc, self.fpn = n_styles, 3, False
        self.input_layer = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.PReLU(stem))
        units = []
        for cin, cout, n in stages:
            units.append(_Unit(cin, cout, 2))
            units += [_Unit(cout, cout, 1) for _ in range(n - 1)]
        self.body = nn.Sequential(*units)
        self.width = stages[-1][1]
        self.linear = EqualLinear(self.width, self.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.body(self.input_layer(x)), 1).view(-1, self.width)
        return self.linear(x).unsqueeze(1).expand(-1, self.n_styles, -1)


def resnet_body(stages: list[Stage]) -> nn.Sequential:
    """torchvision's ResNet-34 ``layer1``..``layer4`` BasicBlocks as one flat ``Sequential`` (ReStyle's and
    HyperStyle's ``body``): layer 1 keeps the size, the others halve it."""
    from torchvision.models.resnet import BasicBlock

    blocks = []
    for k, (cin, cout, n) in enumerate(stages):
        stride = 1 if k == 0 else 2
        down = None
        if stride != 1 or cin != cout:
            down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        blocks.append(BasicBlock(cin, cout, stride, down))
        blocks += [BasicBlock(cout, cout) for _ in range(n - 1)]
    return nn.Sequential(*blocks)


class ResNetEncoder(nn.Module):
    """ReStyle's ``ResNetProgressiveBackboneEncoder`` (non-face domains): a ResNet-34 body without max-pool,
    a PReLU stem, all styles from the 16-px features. Input ``[N, 6, 256, 256]``."""

    def __init__(self, n_styles: int, input_nc: int = 6, stages: list[Stage] | None = None, stem: int = 64) -> None:
        super().__init__()
        stages = stages or RESNET34
        self.n_styles, self.input_nc, self.fpn = n_styles, input_nc, False
        self.conv1 = nn.Conv2d(input_nc, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.PReLU(stem)
        self.body = resnet_body(stages)
        self.styles = nn.ModuleList(GradualStyleBlock(stages[-1][1], 16) for _ in range(n_styles))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.relu(self.bn1(self.conv1(x))))
        return _progressive(self.styles, lambda i: x)


def encoder_from_state_dict(
    sd: dict[str, torch.Tensor], n_styles: int | None = None
) -> IRSEEncoder | ResNetEncoder | WEncoder:
    """Build the encoder that an ``encoder.*`` state dict (prefix removed) describes, from its key names and
    tensor shapes - the published sizes and the tests' tiny ones alike. ``n_styles``: the W+ rows of a W encoder
    (its weights do not say). Raises ``KeyError``/``ValueError``."""
    if "linear.weight" in sd and not any(k.startswith("styles.") for k in sd):
        if not n_styles:
            raise ValueError("a W encoder, but the number of W+ rows is unknown (no output_size in its opts)")
        return WEncoder(n_styles, _irsestages_from_channels(sd), sd["input_layer.0.weight"].shape[0])
    n_styles = sum(1 for k in sd if k.startswith("styles.") and k.endswith(".linear.weight"))
    if n_styles == 0:
        raise ValueError("no styles.N.linear weights: not an e4e / ReStyle encoder")
    if "conv1.weight" in sd:  # ResNet backbone
        blocks = sorted({int(k.split(".")[1]) for k in sd if k.startswith("body.")})
        shapes = [sd[f"body.{b}.conv1.weight"].shape for b in blocks]
        stages = stages_from_channels(
            [(s[1], s[0]) for s in shapes], [f"body.{b}.downsample.0.weight" in sd for b in blocks]
        )
        return ResNetEncoder(n_styles, sd["conv1.weight"].shape[1], stages, sd["conv1.weight"].shape[0])
    stages = _irsestages_from_channels(sd)
    stem = sd["input_layer.0.weight"]
    return IRSEEncoder(n_styles, stem.shape[1], "latlayer1.weight" in sd, stages, stem.shape[0])


def _irsestages_from_channels(sd: dict[str, torch.Tensor]) -> list[Stage]:
    """The IR-SE stages that ``body.N.res_layer`` weights describe."""
    units = sorted({int(k.split(".")[1]) for k in sd if k.startswith("body.")})
    shapes = [sd[f"body.{u}.res_layer.1.weight"].shape for u in units]
    starts = [u == 0 or shapes[u][1] != shapes[u][0] for u in units]
    return stages_from_channels([(s[1], s[0]) for s in shapes], starts)


def stages_from_channels(channels: list[tuple[int, int]], starts: list[bool]) -> list[Stage]:
    """Group units into stages: a stage begins where a unit changes the channel count or strides."""
    stages: list[list[int]] = []
    for (cin, cout), start in zip(channels, starts, strict=True):
        if start or not stages:
            stages.append([cin, cout, 0])
        stages[-1][2] += 1
    if len(stages) != 4:
        raise ValueError(f"expected a 4-stage backbone, found {len(stages)} stages")
    return [tuple(s) for s in stages]  # type: ignore[misc]
