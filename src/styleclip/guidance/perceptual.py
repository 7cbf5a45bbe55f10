"""Perceptual distance: LPIPS v0.1 (Zhang et al. 2018) with the published weights, for inversion and for
keeping the parts of an image that an edit should not touch.

The network is small enough to define here, which keeps the ``lpips`` package (and its import-time prints,
SciPy import and deprecated torchvision calls) optional. Two files make it up, both loaded as plain tensors:

- the backbone: torchvision's ImageNet VGG16 (``vgg16-397923af.pth``, 528 MB) or AlexNet
  (``alexnet-owt-7be5be79.pth``, 233 MB), downloaded from ``download.pytorch.org`` - or taken from
  torch's hub cache when torchvision put it there already;
- the linear calibration layers (``lpips/weights/v0.1/vgg.pth``, 7 KB) from the ``lpips`` package when it is
  installed, else from the PerceptualSimilarity repository (verified by git blob id).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, UsageError

# Layer cut points inside torchvision's ``features``: the outputs after relu1_2, relu2_2, relu3_3, relu4_3,
# relu5_3 for VGG16 and after each of the five ReLUs for AlexNet, as LPIPS taps them.
_TAPS = {"vgg": (4, 9, 16, 23, 30), "alex": (2, 5, 8, 10, 12)}
_CHANNELS = {"vgg": (64, 128, 256, 512, 512), "alex": (64, 192, 384, 256, 256)}
_BACKBONE_ASSET = {"vgg": "torchvision:vgg16", "alex": "torchvision:alexnet"}

# LPIPS's input scaling: its inputs are in [-1, 1]; these map them to ImageNet statistics.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _backbone(net: str) -> nn.Sequential:
    import torchvision

    if net == "vgg":  # the feature layers alone: VGG16's 124M-parameter classifier would cost seconds to build
        from torchvision.models.vgg import cfgs, make_layers

        return make_layers(cfgs["D"])[: _TAPS[net][-1]]
    return torchvision.models.alexnet(weights=None).features[: _TAPS[net][-1]]


class LPIPS(nn.Module):
    """LPIPS distance ``d(a, b) = Σ_l mean_hw ‖w_l ⊙ (f̂_l(a) − f̂_l(b))‖²`` per sample, ``[N]``.

    ``f̂_l`` are the channel-normalised backbone activations at five depths and ``w_l`` the learned
    per-channel weights. Inputs are ``[N, 3, H, W]`` in ``[-1, 1]``; images larger than ``max_size`` are
    area-downsampled to it first (NVIDIA's projector compares at 256 px: LPIPS was calibrated on small
    patches, and VGG at 1024 px costs 16x more for no better guidance). 0 for identical images.
    """

    def __init__(self, net: str = "vgg", max_size: int | None = 256) -> None:
        super().__init__()
        if net not in _TAPS:
            raise UsageError(f"unknown LPIPS network {net!r}: use 'vgg' or 'alex'")
        self.net_name = net
        self.max_size = max_size
        self.features = _backbone(net)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS[net])
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        # In-place ReLUs would overwrite the tapped activations that autograd still needs.
        for m in self.features:
            if isinstance(m, nn.ReLU):
                m.inplace = False
        self.eval().requires_grad_(False)

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Channel-normalised activations at the five LPIPS layers (float32; the backbone computes in the job's
        precision, :mod:`styleclip.utils.precision`)."""
        from ..utils.precision import network_autocast

        if self.max_size is not None and x.shape[-1] > self.max_size:
            x = F.adaptive_avg_pool2d(x, (self.max_size, self.max_size))
        x = (x - self.shift) / self.scale
        out, start = [], 0
        with network_autocast(x.device):
            for stop in _TAPS[self.net_name]:
                for layer in self.features[start:stop]:
                    x = layer(x)
                start = stop
                t = x.float()
                out.append(t / (t.square().sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape[1] != 3 or b.shape[1] != 3:
            raise UsageError(f"LPIPS compares RGB images [N, 3, H, W]; got {tuple(a.shape)} and {tuple(b.shape)}")
        fa = self.taps(a)
        with torch.set_grad_enabled(b.requires_grad and torch.is_grad_enabled()):
            fb = self.taps(b)
        total = a.new_zeros(a.shape[0])
        for lin, x, y in zip(self.lins, fa, fb, strict=True):
            total = total + lin((x - y).square()).mean((1, 2, 3))
        return total

    def extra_repr(self) -> str:
        return f"net={self.net_name!r}, max_size={self.max_size}"


def _read(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as exc:  # torch raises several types for unreadable files
        raise CheckpointError(f"{path}: not a readable {what} ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a {what} state dict")
    return state


def _bundled_lin(net: str) -> Path | None:
    """The calibration weights inside an installed ``lpips`` package (found without importing it)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / f"{net}.pth"
    return path if path.is_file() else None


def _torch_hub_copy(filename: str) -> Path | None:
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    return path if path.is_file() else None


def load_lpips(
    net: str = "vgg",
    lin: str | Path | None = None,
    backbone: str | Path | None = None,
    device: str | torch.device = "cpu",
    max_size: int | None = 256,
    cache: str | Path | None = None,
    offline: bool | None = None,
) -> LPIPS:
    """Build LPIPS v0.1 with the published weights.

    Args:
        net: 'vgg' (the inversion literature's choice) or 'alex' (LPIPS's recommended metric).
        lin: the linear-layer file (``lpips/weights/v0.1/<net>.pth``) as a path, URL or catalogue name;
            default: the installed ``lpips`` package's copy, else the asset ``lpips:<net>`` (7 KB download).
        backbone: torchvision's ImageNet state dict (path, URL or name); default: torch's hub cache if it
            holds the file, else the asset ``torchvision:vgg16`` / ``torchvision:alexnet``.
        max_size: compare at most at this side length (``None``: full resolution).
    """
    from ..hub.registry import asset_path, fetch, get_asset
    from ..hub.resolve import resolve_path

    model = LPIPS(net, max_size=max_size)
    if lin is None:
        lin = _bundled_lin(net) or fetch(get_asset(f"lpips:{net}"), cache, offline)
    if backbone is None:
        asset = get_asset(_BACKBONE_ASSET[net])
        cached = asset_path(asset, cache)
        backbone = (None if cached.is_file() else _torch_hub_copy(asset.filename)) or fetch(asset, cache, offline)
    lin = resolve_path(lin, kind="perceptual", cache=cache, offline=offline)
    backbone = resolve_path(backbone, kind="perceptual", cache=cache, offline=offline)

    lin_state = _read(Path(lin), "LPIPS linear-layer file")
    expected = {f"lin{k}.model.1.weight" for k in range(5)}
    if set(lin_state) != expected:
        raise CheckpointError(f"{lin}: not an LPIPS v0.1 weight file (expected keys lin0..lin4.model.1.weight)")
    back_state = _read(Path(backbone), f"torchvision {net} state dict")
    features = {k[len("features.") :]: v for k, v in back_state.items() if k.startswith("features.")}
    for k, layer in enumerate(model.lins):
        weight = lin_state[f"lin{k}.model.1.weight"]
        if weight.shape != layer.weight.shape:
            raise CheckpointError(
                f"{lin}: lin{k} has shape {tuple(weight.shape)}, LPIPS-{net} needs {tuple(layer.weight.shape)}"
            )
        layer.weight.copy_(weight)
    # torchvision's file also holds the classifier, which LPIPS does not use; every feature layer must match.
    needed = {k: v for k, v in features.items() if int(k.split(".")[0]) < len(model.features)}
    try:
        model.features.load_state_dict(needed)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())
        raise CheckpointError(f"{backbone}: not torchvision's {net} weights ({first[:200]})") from None
    return model.to(device)
