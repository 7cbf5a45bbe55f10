"""StyleGAN2 generator (config-f and the ADA variants): z -> w -> styles -> image, in pure PyTorch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...errors import UsageError
from .config import GeneratorConfig
from .mapping import MappingNetwork
from .synthesis import StyleLayer, SynthesisNetwork


class Generator(nn.Module):
    """A StyleGAN2 generator whose every stage is its own method.

    ``z: [N, z_dim]`` --:meth:`mapping`--> ``ws: [N, num_ws, w_dim]`` (W+; all rows equal = W)
    --:meth:`styles`--> ``{layer: [N, channels]}`` (StyleSpace S)
    --:meth:`synthesis_from_styles`--> image ``[N, img_channels, R, R]``, roughly in ``[-1, 1]``.

    Attributes worth knowing: ``z_dim``, ``c_dim``, ``w_dim``, ``num_ws``, ``img_resolution``,
    ``img_channels``, ``style_layers`` (name, resolution, kind, channels, w index of every style
    vector), ``config`` (the :class:`GeneratorConfig` it was built from), ``meta`` (where it came from).
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        self.c_dim = config.c_dim
        self.w_dim = config.w_dim
        self.img_resolution = config.img_resolution
        self.img_channels = config.img_channels
        self.synthesis = self.build_synthesis(config)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(config.z_dim, config.c_dim, config.w_dim, self.num_ws, config.mapping)
        self.meta: dict = {}

    @staticmethod
    def build_synthesis(config: GeneratorConfig) -> nn.Module:
        """The synthesis network of this generator family (StyleGAN3's generator overrides it)."""
        return SynthesisNetwork(config.w_dim, config.img_resolution, config.img_channels, config.synthesis)

    @property
    def style_layers(self) -> list[StyleLayer]:
        return self.synthesis.style_layers

    @property
    def w_avg(self) -> torch.Tensor:
        """``[w_dim]``: the mean w, the centre of truncation and the start of free generation."""
        return self.mapping.w_avg

    @property
    def device(self) -> torch.device:
        return self.w_avg.device if hasattr(self.mapping, "w_avg") else next(self.parameters()).device

    # -- z -----------------------------------------------------------------------------------------

    def z_from_seed(self, seed: int | list[int]) -> torch.Tensor:
        """``[N, z_dim]`` float32 on this generator's device, exactly as NVIDIA's generate.py draws z.

        ``np.random.RandomState(seed).randn(1, z_dim)`` per seed; cast to float32 before moving to
        the device, since MPS has no float64.
        """
        seeds = [seed] if isinstance(seed, int) else list(seed)
        z = np.concatenate([np.random.RandomState(s).randn(1, self.z_dim) for s in seeds])
        return torch.from_numpy(z.astype(np.float32)).to(self.device)

    def label(self, class_idx: int | None, batch: int = 1) -> torch.Tensor | None:
        """One-hot ``[batch, c_dim]`` label for conditional generators; None for unconditional ones."""
        if self.c_dim == 0:
            if class_idx is not None:
                raise UsageError("this generator is unconditional: do not pass a class")
            return None
        if class_idx is None:
            raise UsageError(f"this generator is conditional: choose a class 0..{self.c_dim - 1}")
        if not 0 <= class_idx < self.c_dim:
            raise UsageError(f"class {class_idx} out of range 0..{self.c_dim - 1}")
        c = torch.zeros([batch, self.c_dim], device=self.device)
        c[:, class_idx] = 1
        return c

    # -- the stages --------------------------------------------------------------------------------

    def mapping_forward(
        self,
        z: torch.Tensor | np.ndarray | None,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """``z: [N, z_dim]`` (tensor or NumPy, any float dtype) -> ``ws: [N, num_ws, w_dim]`` float32."""
        if isinstance(z, np.ndarray):
            z = torch.from_numpy(z.astype(np.float32))
        if z is not None:
            z = z.to(device=self.device, dtype=torch.float32)
        return self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)

    def styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """W+ ``[N, num_ws, w_dim]`` (or W ``[N, w_dim]``, broadcast) -> StyleSpace ``{layer: [N, channels]}``."""
        return self.synthesis.styles(self.broadcast(ws))

    def synthesis_from_styles(self, styles: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
        """StyleSpace -> image ``[N, C, R, R]``; options as :meth:`SynthesisNetwork.from_styles`."""
        return self.synthesis.from_styles(styles, **kwargs)

    def synthesize(self, ws: torch.Tensor, **kwargs) -> torch.Tensor:
        """W ``[N, w_dim]`` or W+ ``[N, num_ws, w_dim]`` -> image ``[N, C, R, R]`` float32, about ``[-1, 1]``.

        Keyword arguments: ``noise_mode`` ('const' default, 'random', 'none'), ``force_fp32``,
        ``modulation`` ('auto', 'fused', 'activation'), ``generator``.
        """
        return self.synthesis(self.broadcast(ws), **kwargs)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        **synthesis_kwargs,
    ) -> torch.Tensor:
        """``z: [N, z_dim]`` -> image ``[N, C, R, R]``; noise is 'const' unless ``noise_mode`` says otherwise."""
        ws = self.mapping_forward(z, c, truncation_psi, truncation_cutoff)
        return self.synthesize(ws, **synthesis_kwargs)

    def broadcast(self, ws: torch.Tensor) -> torch.Tensor:
        """W ``[N, w_dim]`` -> W+ ``[N, num_ws, w_dim]``; W+ passes through (checked)."""
        if ws.ndim == 2 and ws.shape[1] == self.w_dim:
            return ws.unsqueeze(1).expand(-1, self.num_ws, -1)
        if ws.ndim == 3 and ws.shape[1:] == (self.num_ws, self.w_dim):
            return ws
        raise UsageError(
            f"latent must be W [N, {self.w_dim}] or W+ [N, {self.num_ws}, {self.w_dim}] for this "
            f"generator, got {list(ws.shape)}"
        )

    def extra_repr(self) -> str:
        return (
            f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
            f"img_resolution={self.img_resolution}, img_channels={self.img_channels}"
        )
