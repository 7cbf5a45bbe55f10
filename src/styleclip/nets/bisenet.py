"""BiSeNet face parser (zllrunning/face-parsing.PyTorch's design, the one STIT stitches with).

Module and parameter names follow the published ``79999_iter.pth`` (``cp.resnet.layer1.0.conv1.weight``,
``cp.arm16.conv_atten.weight``, ``ffm.convblk.conv.weight``, ``conv_out.conv_out.weight``, ...), so that file loads
as it is, strictly. The network:

- context path: a ResNet-18 trunk (features at 1/8, 1/16 and 1/32 of the input), attention refinement of the 1/16
  and 1/32 features (a channel gate from their global mean), the 1/32 features' global mean added back, each stage
  upsampled (nearest) into the finer one through a 3x3 conv;
- spatial path: the published model has none of its own; the trunk's 1/8 features stand in for it;
- feature fusion: the two paths concatenated, a 1x1 conv, and a squeeze-excitation style gate added residually;
- heads: 3x3 conv + 1x1 classifier on the fused features (the output used) and two auxiliary heads (training only),
  upsampled bilinearly (corners aligned) to the input's size.

Input: ``[N, 3, H, W]`` RGB in ``[0, 1]`` normalised with ImageNet's mean and std, at 512 x 512 as trained.
Output: ``[N, classes, H, W]`` logits over CelebAMask-HQ's 19 classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError

CLASSES = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
    "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)  # fmt: skip
INPUT_SIZE = 512
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class _ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class _Block(nn.Module):
    """ResNet basic block; a 1x1 projection on the shortcut where the width or the stride changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class _Trunk(nn.Module):
    """ResNet-18 without its classifier: features at 1/8, 1/16, 1/32."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = [width, width, 2 * width, 4 * width, 8 * width]
        for i in range(1, 5):
            stride = 1 if i == 1 else 2
            blocks = nn.Sequential(_Block(widths[i - 1], widths[i], stride), _Block(widths[i], widths[i], 1))
            self.add_module(f"layer{i}", blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.layer1(self.maxpool(F.relu(self.bn1(self.conv1(x)))))
        f8 = self.layer2(x)
        f16 = self.layer3(f8)
        return f8, f16, self.layer4(f16)


class _AttentionRefinement(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _ConvBNReLU(cin, cout, 3)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        gate = torch.sigmoid(self.bn_atten(self.conv_atten(feat.mean((2, 3), keepdim=True))))
        return feat * gate


class _ContextPath(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.resnet = _Trunk(width)
        self.arm16 = _AttentionRefinement(4 * width, 2 * width)
        self.arm32 = _AttentionRefinement(8 * width, 2 * width)
        self.conv_head32 = _ConvBNReLU(2 * width, 2 * width, 3)
        self.conv_head16 = _ConvBNReLU(2 * width, 2 * width, 3)
        self.conv_avg = _ConvBNReLU(8 * width, 2 * width, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f8, f16, f32 = self.resnet(x)
        context = self.conv_avg(f32.mean((2, 3), keepdim=True))  # broadcast over 1/32: a nearest upsampling of 1x1
        up32 = self.arm32(f32) + context
        up32 = self.conv_head32(F.interpolate(up32, f16.shape[2:], mode="nearest"))
        up16 = self.arm16(f16) + up32
        up16 = self.conv_head16(F.interpolate(up16, f8.shape[2:], mode="nearest"))
        return f8, up16, up32


class _FeatureFusion(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.convblk = _ConvBNReLU(cin, cout, 1)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        gate = torch.sigmoid(self.conv2(F.relu(self.conv1(feat.mean((2, 3), keepdim=True)))))
        return feat * gate + feat


class _Head(nn.Module):
    def __init__(self, cin: int, mid: int, classes: int) -> None:
        super().__init__()
        self.conv = _ConvBNReLU(cin, mid, 3)
        self.conv_out = nn.Conv2d(mid, classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """The face parser: ``[N, 3, H, W]`` (ImageNet-normalised RGB, ``H``, ``W`` multiples of 32) -> logits
    ``[N, classes, H, W]``. ``width`` is the trunk's first width (64 in the published model; the tests use less)."""

    def __init__(self, classes: int = len(CLASSES), width: int = 64) -> None:
        super().__init__()
        if classes < 1 or width < 1:
            raise ValueError("BiSeNet needs at least one class and a positive width")
        self.classes, self.width = classes, width
        self.cp = _ContextPath(width)
        self.ffm = _FeatureFusion(4 * width, 4 * width)
        self.conv_out = _Head(4 * width, 4 * width, classes)
        self.conv_out16 = _Head(2 * width, width, classes)
        self.conv_out32 = _Head(2 * width, width, classes)

    def forward(self, x: torch.Tensor, aux: bool = False) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The main head's logits; with ``aux``, also the two auxiliary heads' (all at the input's size)."""
        size = x.shape[2:]
        f8, up16, up32 = self.cp(x)
        out = F.interpolate(self.conv_out(self.ffm(f8, up16)), size, mode="bilinear", align_corners=True)
        if not aux:
            return out
        extra = (self.conv_out16(up16), self.conv_out32(up32))
        return (out, *(F.interpolate(e, size, mode="bilinear", align_corners=True) for e in extra))


def bisenet_from_state_dict(state: object) -> BiSeNet:
    """A :class:`BiSeNet` holding ``state`` (the published layout), its widths and classes read from the weights.

    Every tensor's name and shape is checked against the network those widths declare before any of it is
    allocated; every key must be used and every parameter present (BatchNorm's ``num_batches_tracked`` counters,
    which older PyTorch did not save, excepted). Errors are one-line :class:`CheckpointError` without the path.
    """
    if not isinstance(state, dict) or not state:
        raise CheckpointError("not a BiSeNet state dict (expected a dict of tensors such as 79999_iter.pth)")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"not a BiSeNet state dict: {str(bad[0])[:80]!r} is not a named tensor")
    stem, classifier = state.get("cp.resnet.conv1.weight"), state.get("conv_out.conv_out.weight")
    if stem is None or classifier is None or stem.dim() != 4 or classifier.dim() != 4:
        raise CheckpointError(
            "not a BiSeNet face-parsing state dict (no cp.resnet.conv1.weight / conv_out.conv_out.weight)"
        )
    width, classes = int(stem.shape[0]), int(classifier.shape[0])
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in BiSeNet(classes, width).state_dict().items()}
    unexpected = sorted(set(state) - set(shapes))
    missing = sorted(k for k in set(shapes) - set(state) if not k.endswith("num_batches_tracked"))
    if unexpected or missing:
        what = "unexpected" if unexpected else "missing"
        keys = unexpected or missing
        more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
        raise CheckpointError(f"not a BiSeNet face-parsing state dict ({what} key {keys[0][:80]}{more})")
    for k, shape in shapes.items():
        if k in state and tuple(state[k].shape) != shape:
            raise CheckpointError(
                f"BiSeNet weight {k} has shape {list(state[k].shape)}, the network of width {width} with {classes} "
                f"classes needs {list(shape)}"
            )
    net = BiSeNet(classes, width)
    full = {k: state.get(k, torch.zeros((), dtype=torch.long)) for k in shapes}
    net.load_state_dict(full)  # strict: the checks above leave nothing to mismatch
    return net.eval().requires_grad_(False)
