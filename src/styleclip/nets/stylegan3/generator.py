"""StyleGAN3 generator (configs T and R): z -> w -> styles -> image, with StyleGAN2's interface.

It is a :class:`~styleclip.nets.stylegan2.Generator` with another synthesis network, so everything
written for StyleGAN2 (sampling, W / W+ / S edits, global directions, projection) takes it as is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..stylegan2.generator import Generator
from .config import GeneratorConfig3
from .synthesis import SynthesisNetwork3


def make_transform(translate: Sequence[float] = (0.0, 0.0), rotate: float = 0.0) -> torch.Tensor:
    """``[3, 3]`` float32 inverse image transform, as NVIDIA's ``gen_images.py`` builds it.

    ``translate``: ``(x, y)`` shift of the image content, in units of the image side (the input's
    coordinate system); ``rotate``: rotation in degrees. The generator takes the inverse, which is
    what this returns, computed in float64 like the original before casting.
    """
    if len(translate) != 2 or not all(math.isfinite(float(v)) for v in (*translate, rotate)):
        raise ValueError("translate must be two finite numbers and rotate a finite angle")
    angle = float(rotate) / 360.0 * 2 * math.pi
    c, s = math.cos(angle), math.sin(angle)
    m = np.array([[c, s, float(translate[0])], [-s, c, float(translate[1])], [0.0, 0.0, 1.0]])
    return torch.from_numpy(np.linalg.inv(m)).to(torch.float32)


class Generator3(Generator):
    """A StyleGAN3 generator whose every stage is its own method.

    ``z: [N, z_dim]`` --:meth:`mapping_forward`--> ``ws: [N, num_ws, w_dim]`` (W+)
    --:meth:`styles`--> ``{layer: [N, channels]}`` (S: ``'input'`` [N, 4], then ``'L0_36_512'`` ...)
    --:meth:`synthesis_from_styles`--> image ``[N, img_channels, R, R]``, roughly in ``[-1, 1]``.

    :meth:`synthesize` and :meth:`synthesis_from_styles` also take ``transform=`` (see :func:`make_transform`)
    to translate and rotate the picture; :meth:`set_transform` makes one the default, as NVIDIA's scripts do.
    """

    def __init__(self, config: GeneratorConfig3) -> None:
        super().__init__(config)  # type: ignore[arg-type]

    @staticmethod
    def build_synthesis(config: GeneratorConfig3) -> nn.Module:  # type: ignore[override]
        return SynthesisNetwork3(config.w_dim, config.img_resolution, config.img_channels, config.synthesis)

    def set_transform(self, translate: Sequence[float] = (0.0, 0.0), rotate: float = 0.0) -> None:
        """Make ``translate`` / ``rotate`` (see :func:`make_transform`) the default of every later synthesis."""
        with torch.no_grad():
            self.synthesis.input.transform.copy_(make_transform(translate, rotate))

    def synthesize(self, ws: torch.Tensor, **kwargs) -> torch.Tensor:
        """W ``[N, w_dim]`` or W+ ``[N, num_ws, w_dim]`` -> image ``[N, C, R, R]`` float32, about ``[-1, 1]``.

        Keyword arguments: ``transform`` (``[3, 3]`` from :func:`make_transform`), ``force_fp32``,
        ``modulation`` ('auto', 'fused', 'activation'); ``noise_mode`` is accepted and ignored (no noise).
        """
        return self.synthesis(self.broadcast(ws), **kwargs)
