"""Identity loss for faces: ArcFace IR-SE50 on the face region, as StyleCLIP computes it."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from ..nets.arcface import IRSE


class IdentityLoss(nn.Module):
    """``1 - cos(ArcFace(face(edit)), ArcFace(face(source)))`` per sample, ``[N]``.

    ``face(x)``: average-pool the ``[N, 3, H, W]`` image (``[-1, 1]``) to 256 px, crop rows 35..223 and
    columns 32..220 (where FFHQ-aligned faces sit), average-pool to 112 px - StyleCLIP's recipe, which
    thereby scales to any generator resolution.
    """

    def __init__(self, net: IRSE) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)

    @staticmethod
    def face(img: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` -> ``[N, 3, 112, 112]`` face crop."""
        x = F.adaptive_avg_pool2d(img, (256, 256)) if img.shape[-1] != 256 else img
        return F.adaptive_avg_pool2d(x[:, :, 35:223, 32:220], (112, 112))

    def embed(self, img: torch.Tensor) -> torch.Tensor:
        """Unit identity embeddings ``[N, 512]`` (float32) of generator images ``[N, 3, H, W]`` in ``[-1, 1]``;
        the network computes in the job's precision (:mod:`styleclip.utils.precision`)."""
        from ..utils.precision import network_autocast

        with network_autocast(img.device):
            e = self.net(self.face(img))
        e = e.float()
        return e / e.norm(dim=-1, keepdim=True)

    def forward(
        self, edited: torch.Tensor, source: torch.Tensor | None = None, source_emb: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Pass the source image, or its embedding (computed once per edit with :meth:`embed`)."""
        if source_emb is None:
            if source is None:
                raise ValueError("IdentityLoss needs the source image or its embedding")
            with torch.no_grad():
                source_emb = self.embed(source)
        return 1 - (self.embed(edited) * source_emb.detach()).sum(-1)


def load_identity_loss(
    name_or_path: str | Path = "arcface:ir-se50",
    device: str | torch.device = "cpu",
    cache: str | Path | None = None,
    offline: bool | None = None,
) -> IdentityLoss:
    """Load ``model_ir_se50.pth`` (the state dict e4e / ReStyle / StyleCLIP publish): a path, an http(s)
    URL or a catalogue name (default ``arcface:ir-se50``, downloaded into the verified cache)."""
    from ..hub.resolve import resolve_path

    path = resolve_path(name_or_path, kind="identity", cache=cache, offline=offline)
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as exc:  # torch raises several types for unreadable files
        raise CheckpointError(f"{path}: not a readable ArcFace checkpoint ({type(exc).__name__})") from None
    net = IRSE(50)
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not an IR-SE50 state dict ({first[:160]})") from None
    return IdentityLoss(net).to(device)
