"""ArcFace IR-SE backbone (TreB1eN's InsightFace_Pytorch design, as e4e / ReStyle / StyleCLIP use it).

Module and parameter names follow the published ``model_ir_se50.pth`` (``input_layer.0.weight``,
``body.{i}.res_layer.5.fc1.weight``, ``output_layer.3.weight``, ...), so that file loads as it is.
"""

from __future__ import annotations

import torch
from torch import nn

# (input channels, output channels, units) per stage; each stage's first unit strides by 2.
_STAGES = {
    50: [(64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)],
    100: [(64, 64, 3), (64, 128, 13), (128, 256, 30), (256, 512, 3)],
    152: [(64, 64, 3), (64, 128, 8), (128, 256, 36), (256, 512, 3)],
}


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class _Unit(nn.Module):
    """Pre-activation residual unit with squeeze-and-excitation (``bottleneck_IR_SE``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if in_channels == out_channels:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            _SqueezeExcite(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRSE(nn.Module):
    """Face-identity embedding network: ``[N, 3, 112, 112]`` in ``[-1, 1]`` -> unit vectors ``[N, 512]``."""

    def __init__(self, num_layers: int = 50, drop_ratio: float = 0.6) -> None:
        super().__init__()
        if num_layers not in _STAGES:
            raise ValueError(f"IR-SE depth must be one of {sorted(_STAGES)}")
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units = []
        for cin, cout, n in _STAGES[num_layers]:
            units.append(_Unit(cin, cout, 2))
            units += [_Unit(cout, cout, 1) for _ in range(n - 1)]
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512), nn.Dropout(drop_ratio), nn.Flatten(), nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.output_layer(self.body(self.input_layer(x)))
        return x / x.norm(dim=1, keepdim=True)
