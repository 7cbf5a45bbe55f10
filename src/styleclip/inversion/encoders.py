"""e4e and ReStyle-e4e inversion with the official checkpoints (``e4e_ffhq_encode.pt``, ``restyle_e4e_*.pt``).

A checkpoint holds ``state_dict`` (``encoder.*`` and the rosinality generator as ``decoder.*``), ``opts`` and
``latent_avg``. It is read with ``torch.load(weights_only=True)``: plain tensors and values, no code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, UsageError
from ..nets.encoders import WEncoder, encoder_from_state_dict
from ..nets.stylegan2 import Generator

INPUT_SIZE = 256  # both encoders see 256 x 256 pictures, and compare at 256


@dataclass
class Encoder:
    """A loaded encoder: ``kind`` 'e4e', 'restyle' or 'w' (HyperStyle's W encoder), the network, ``latent_avg`` ``[n_styles, w_dim]`` and the
    generator it was trained with (the checkpoint's decoder), when the file carries one."""

    kind: str
    net: nn.Module
    latent_avg: torch.Tensor
    generator: Generator | None
    source: str = ""

    @property
    def n_styles(self) -> int:
        return self.net.n_styles

    def to(self, device) -> Encoder:
        self.net.to(device)
        self.latent_avg = self.latent_avg.to(device)
        if self.generator is not None:
            self.generator.to(device)
        return self


def load_encoder(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    cache: str | Path | None = None,
    offline: bool | None = None,
) -> Encoder:
    """Load an e4e or ReStyle-e4e checkpoint by catalogue name (``e4e:ffhq``, ``restyle-e4e:afhqwild``), URL or path."""
    from ..hub.formats.rosinality import generator_from_rosinality
    from ..hub.resolve import resolve_path
    from ..utils.devices import resolve_device

    path = resolve_path(name_or_path, kind="encoder", cache=cache, offline=offline)
    from ..hub.formats.budget import check_finite
    from ..hub.formats.torchfile import load_weights_file

    try:  # weights only, bounded in memory, refused globals named
        ckpt = load_weights_file(path)
    except CheckpointError as exc:
        detail = str(exc).removeprefix(f"{path}: ")
        raise CheckpointError(f"{path}: not an e4e / ReStyle checkpoint styleclip can read ({detail})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path}: no state_dict inside; not an e4e / ReStyle checkpoint")
    sd = {k[len("encoder.") :]: v for k, v in ckpt["state_dict"].items() if str(k).startswith("encoder.")}
    check_finite(((f"encoder.{k}", v) for k, v in sd.items() if isinstance(v, torch.Tensor)), str(path))
    try:
        net = encoder_from_state_dict(sd, _n_styles(ckpt))
        net.load_state_dict(sd)  # strict: every key accounted for (the original loads ReStyle with strict=False)
    except (KeyError, ValueError, RuntimeError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{path}: encoder weights do not fit an e4e / ReStyle encoder ({first})") from None
    kind = "w" if isinstance(net, WEncoder) else "e4e" if net.input_nc == 3 else "restyle"
    G = None
    if any(k.startswith("decoder.") for k in ckpt["state_dict"]):
        G = generator_from_rosinality(ckpt).eval().requires_grad_(False)
        G.meta.update({"source": str(path), "format": "rosinality"})
    avg = ckpt.get("latent_avg")
    if avg is None:
        if G is None:
            raise CheckpointError(f"{path}: no latent_avg and no generator to take it from")
        avg = G.w_avg
    avg = torch.as_tensor(avg, dtype=torch.float32)
    avg = avg.reshape(-1, avg.shape[-1]).expand(net.n_styles, -1) if avg.shape[0] != net.n_styles else avg
    width = net.linear.weight.shape[0] if isinstance(net, WEncoder) else net.styles[0].linear.weight.shape[0]
    if avg.shape[-1] != width:
        raise CheckpointError(f"{path}: latent_avg has width {avg.shape[-1]}, the encoder's codes another")
    encoder = Encoder(kind, net.eval().requires_grad_(False), avg.contiguous(), G, str(path))
    return encoder.to(resolve_device(device))


def _n_styles(ckpt: dict) -> int | None:
    """W+ rows of the generator a checkpoint was trained for: from its opts' ``output_size``, else its decoder."""
    import math

    size = (ckpt.get("opts") or {}).get("output_size") if isinstance(ckpt.get("opts"), dict) else None
    if isinstance(size, int) and size >= 4 and size & (size - 1) == 0:
        return 2 * int(math.log2(size)) - 2
    n_up = {k.split(".")[2] for k in ckpt["state_dict"] if str(k).startswith("decoder.convs.")}
    return 2 + len(n_up) if n_up else None


def _to_256(img: torch.Tensor) -> torch.Tensor:
    if img.shape[-1] == INPUT_SIZE and img.shape[-2] == INPUT_SIZE:
        return img
    return F.interpolate(img, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)


@torch.no_grad()
def encode(encoder: Encoder, G: Generator, image: torch.Tensor, steps: int | None = None) -> list[torch.Tensor]:
    """W+ codes of ``image`` (``[N, 3, H, W]`` in ``[-1, 1]``), one per refinement step (e4e: one).

    ReStyle (Alaluf et al.): step 0 sees the photo beside the picture of the average latent and adds its
    output to the average latent; step k sees the photo beside step k-1's reconstruction (pooled to 256) and
    adds its output to step k-1's codes. ``steps`` defaults to 5, as the official inference.
    """
    if G.num_ws != encoder.n_styles:
        raise UsageError(
            f"this encoder makes {encoder.n_styles} W+ rows but the generator has {G.num_ws}: "
            "use the generator the encoder was trained with"
        )
    x = _to_256(image.to(G.device, torch.float32))
    avg = encoder.latent_avg.to(G.device)[None].expand(x.shape[0], -1, -1)
    if encoder.kind in ("e4e", "w"):
        return [encoder.net(x) + avg]
    steps = 5 if steps is None else steps
    if steps < 1:
        raise UsageError("ReStyle needs at least 1 step")
    y = F.adaptive_avg_pool2d(G.synthesize(avg[:1]), (INPUT_SIZE, INPUT_SIZE)).expand(x.shape[0], -1, -1, -1)
    codes, out = avg, []
    for _ in range(steps):
        codes = encoder.net(torch.cat([x, y], dim=1)) + codes
        out.append(codes)
        y = F.adaptive_avg_pool2d(G.synthesize(codes), (INPUT_SIZE, INPUT_SIZE))
    return out
