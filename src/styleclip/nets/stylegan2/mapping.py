"""The mapping network: z (and an optional class label) -> w."""

from __future__ import annotations

import torch
from torch import nn

from ...errors import UsageError
from .config import MappingConfig
from .layers import FullyConnectedLayer
from .ops import normalize_2nd_moment


class MappingNetwork(nn.Module):
    """``z: [N, z_dim]`` (+ ``c: [N, c_dim]``) -> ``w: [N, w_dim]``, or broadcast to ``[N, num_ws, w_dim]``.

    Holds ``w_avg: [w_dim]``, the training-time running mean of w, for the truncation trick.
    """

    def __init__(
        self,
        z_dim: int,  # Input latent size (0 = label only).
        c_dim: int,  # Label size (0 = unconditional).
        w_dim: int,  # Output latent size.
        num_ws: int | None,  # Copies of w to broadcast to; None = return [N, w_dim].
        cfg: MappingConfig | None = None,  # Depth, widths, activation, lr multiplier, w_avg.
    ) -> None:
        super().__init__()
        cfg = cfg or MappingConfig()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = cfg.num_layers
        self.w_avg_beta = cfg.w_avg_beta
        embed_features = 0 if c_dim == 0 else (w_dim if cfg.embed_features is None else cfg.embed_features)
        layer_features = w_dim if cfg.layer_features is None else cfg.layer_features
        widths = [z_dim + embed_features] + [layer_features] * (cfg.num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(cfg.num_layers):
            layer = FullyConnectedLayer(
                widths[idx], widths[idx + 1], activation=cfg.activation, lr_multiplier=cfg.lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and cfg.w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """Map latents to W.

        Args:
            z: ``[N, z_dim]``, standard normal; any float dtype (cast to float32 first, so NumPy's
                float64 never reaches an MPS device).
            c: ``[N, c_dim]`` one-hot labels for conditional generators, else None.
            truncation_psi: 1 = no truncation; 0 = every w becomes ``w_avg``.
            truncation_cutoff: truncate only the first this-many of the ``num_ws`` copies; None = all.

        Returns:
            ``[N, num_ws, w_dim]`` (``[N, w_dim]`` when built with ``num_ws=None``).
        """
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                got = None if z is None else list(z.shape)
                raise UsageError(f"z must be [N, {self.z_dim}], got {got}")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                got = None if c is None else list(c.shape)
                raise UsageError(
                    f"this generator is conditional: pass a class label c of shape [N, {self.c_dim}], got {got}"
                )
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if self.training and self.w_avg_beta is not None:
            # Keeps the checkpoint's semantics if anyone fine-tunes through this module.
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            x = self.truncate(x, truncation_psi, truncation_cutoff)
        return x

    def truncate(self, ws: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
        """``w_avg + psi * (ws - w_avg)`` on the first ``cutoff`` layers of ``ws: [N, num_ws, w_dim]``."""
        if not hasattr(self, "w_avg"):
            raise UsageError("this generator has no w_avg, so it cannot truncate; use truncation_psi=1")
        if ws.ndim == 2 or cutoff is None:
            return self.w_avg.lerp(ws, psi)
        ws = ws.clone()
        ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], psi)
        return ws
