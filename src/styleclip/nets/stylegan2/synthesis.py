"""The synthesis network: w (W+) -> styles (S) -> image, each step its own method.

StyleSpace is first class here: :meth:`SynthesisNetwork.styles` returns every per-layer style
vector by name, and :meth:`SynthesisNetwork.from_styles` draws from them, so ``forward(ws)`` is
literally ``from_styles(styles(ws))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ...errors import UsageError
from ...utils.compiling import Compiled, compile_requested
from ...utils.precision import LayerDtypes
from .config import SynthesisConfig
from .layers import NOISE_MODES, Conv2dLayer, SynthesisLayer, ToRGBLayer
from .ops import setup_filter, upsample2d

MODULATIONS = ("auto", "fused", "activation")


@dataclass(frozen=True)
class StyleLayer:
    """One StyleSpace layer: where its style vector comes from and what it modulates."""

    name: str  # e.g. 'b64.conv0': block of resolution 64, first (up-sampling) convolution.
    resolution: int  # Output resolution of the layer.
    kind: str  # 'conv' or 'torgb' ('input' for StyleGAN3's Fourier-feature transform).
    channels: int  # Length of the style vector (= input channels of the modulated conv).
    w_index: int  # Which of the num_ws W+ vectors drives it.


class SynthesisBlock(nn.Module):
    """One resolution: [up-sampling conv0] + conv1 + [ToRGB], plus the image skip connection."""

    def __init__(
        self,
        in_channels: int,  # Input feature maps; 0 = the first (4x4) block, which starts from `const`.
        out_channels: int,  # Feature maps of this block.
        w_dim: int,  # W width.
        resolution: int,  # Resolution of this block.
        img_channels: int,  # Image channels.
        is_last: bool,  # The highest-resolution block?
        use_fp16: bool,  # Run in float16 when on CUDA?
        cfg: SynthesisConfig,  # Architecture, filter, clamp, noise, activation.
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = cfg.architecture
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter(cfg.resample_filter))
        layer_kwargs = dict(
            w_dim=w_dim,
            resolution=resolution,
            kernel_size=cfg.kernel_size,
            use_noise=cfg.use_noise,
            activation=cfg.activation,
            resample_filter=cfg.resample_filter,
            conv_clamp=cfg.conv_clamp,
        )
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **layer_kwargs)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer_kwargs)
        self.has_torgb = is_last or cfg.architecture == "skip"
        if self.has_torgb:
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=cfg.conv_clamp)
        if in_channels != 0 and cfg.architecture == "resnet":
            self.skip = Conv2dLayer(
                in_channels,
                out_channels,
                kernel_size=1,
                bias=False,
                up=2,
                resample_filter=cfg.resample_filter,
            )

    def layer_names(self) -> list[str]:
        """Names of the style-consuming layers, in W+ order."""
        names = [] if self.in_channels == 0 else ["conv0"]
        names.append("conv1")
        if self.has_torgb:
            names.append("torgb")
        return names

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        styles: dict[str, torch.Tensor],
        dtype: torch.dtype,
        noise_mode: str,
        fused: bool,
        generator: torch.Generator | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run the block on ``x: [N, in_channels, r/2, r/2]`` (None for the first) and the running image."""
        prefix = f"b{self.resolution}."
        if self.in_channels == 0:
            batch = styles[prefix + "conv1"].shape[0]
            x = self.const.to(dtype).unsqueeze(0).expand(batch, -1, -1, -1).contiguous(memory_format=memory_format)
            x = self.conv1(x, styles[prefix + "conv1"], noise_mode, fused, generator=generator)
        elif self.architecture == "resnet":
            x = x.to(dtype)
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, styles[prefix + "conv0"], noise_mode, fused, generator=generator)
            x = self.conv1(x, styles[prefix + "conv1"], noise_mode, fused, gain=math.sqrt(0.5), generator=generator)
            x = y + x
        else:
            x = x.to(dtype)
            x = self.conv0(x, styles[prefix + "conv0"], noise_mode, fused, generator=generator)
            x = self.conv1(x, styles[prefix + "conv1"], noise_mode, fused, generator=generator)

        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.has_torgb:
            y = self.torgb(x, styles[prefix + "torgb"], fused=fused).to(torch.float32)
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """``ws: [N, num_ws, w_dim]`` -> ``styles`` -> image ``[N, img_channels, R, R]`` (about ``[-1, 1]``)."""

    def __init__(
        self,
        w_dim: int,  # W width.
        img_resolution: int,  # Output resolution R.
        img_channels: int,  # Output channels.
        cfg: SynthesisConfig | None = None,  # Channels, fp16 layers, clamp, architecture, filter.
    ) -> None:
        super().__init__()
        cfg = cfg or SynthesisConfig()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.modulation = "auto"
        # On CPUs with modulation 'auto', batches draw the blocks of this resolution and above one sample at a time,
        # and every block when back-propagating or in bf16 (see from_styles, _draw); 0 = always as one batch.
        self.split_resolution = 128
        self._compiled: Compiled | None = None  # made on the first compiled call (utils.compiling)

        log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        channels = {r: min(cfg.channel_base // r, cfg.channel_max) for r in self.block_resolutions}
        fp16_resolution = max(2 ** (log2 + 1 - cfg.num_fp16_res), 8)

        self.style_layers: list[StyleLayer] = []
        w_index = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0,
                channels[res],
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                is_last=res == img_resolution,
                use_fp16=res >= fp16_resolution,
                cfg=cfg,
            )
            setattr(self, f"b{res}", block)
            for offset, name in enumerate(block.layer_names()):
                layer = getattr(block, name)
                kind = "torgb" if name == "torgb" else "conv"
                self.style_layers.append(StyleLayer(f"b{res}.{name}", res, kind, layer.in_channels, w_index + offset))
            # A block's ToRGB shares its w with the next block's first conv, as in the official network.
            w_index += 2 if res > 4 else 1
        self.num_ws = w_index + 1 if self.style_layers[-1].kind == "torgb" else w_index

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    # -- W+ -> S ---------------------------------------------------------------------------------

    def styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every per-layer style vector (the affine outputs), differentiable.

        Args:
            ws: ``[N, num_ws, w_dim]`` (W+), float32.

        Returns:
            Ordered ``{name: [N, channels]}`` for every entry of :attr:`style_layers`, e.g.
            ``'b4.conv1'``, ``'b4.torgb'``, ``'b8.conv0'``, ... ToRGB styles are the raw affine
            outputs, before the layer's fixed ``1/sqrt(fan_in)`` gain (StyleSpace's convention).
        """
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise UsageError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws = ws.to(torch.float32)
        out: dict[str, torch.Tensor] = {}
        for info in self.style_layers:
            block_name, layer_name = info.name.split(".")
            layer = getattr(getattr(self, block_name), layer_name)
            out[info.name] = layer.affine(ws[:, info.w_index])
        return out

    # -- S -> image --------------------------------------------------------------------------------

    def from_styles(
        self,
        styles: dict[str, torch.Tensor],
        noise_mode: str = "const",
        force_fp32: bool | None = None,
        modulation: str | None = None,
        generator: torch.Generator | None = None,
        precision: str | None = None,
    ) -> torch.Tensor:
        """Draw the image from StyleSpace.

        Args:
            styles: ``{name: [N, channels]}`` as returned by :meth:`styles` (every layer required).
            noise_mode: 'const' (the checkpoint's fixed noise: deterministic), 'random' or 'none'.
            force_fp32: None = float16 for the checkpoint's fp16 layers on CUDA only, float32 elsewhere.
            modulation: 'fused' (per-sample weights, grouped conv), 'activation' (scale activations
                around one shared conv: cheaper backward) or 'auto' (choose per device, batch and
                whether gradients are needed); None = this network's :attr:`modulation`.
            generator: random source for ``noise_mode='random'``.
            precision: 'fp32', 'bf16' (every block computes in bf16; styles, demodulation coefficients and the
                image sum stay fp32), 'fp16' (the checkpoint's fp16 layers, any device) or None = the job's
                :func:`~styleclip.utils.precision.computing_in` scope, and outside one ``force_fp32`` decides.

        Returns:
            ``[N, img_channels, R, R]`` float32, roughly in ``[-1, 1]``.
        """
        if noise_mode not in NOISE_MODES:
            raise UsageError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        check_styles(self.style_layers, styles)
        first = styles[self.style_layers[0].name]
        mode = modulation or self.modulation
        grads = needs_gradients(styles, self)
        fused = use_fused(mode, first, styles, self, grads)
        dtypes = LayerDtypes(precision, force_fp32, first.device)
        cpu_auto = mode == "auto" and first.device.type == "cpu"
        hybrid = cpu_auto and dtypes.precision == "bf16" and not fused and first.shape[0] == 1
        if compile_requested() and generator is None:
            # compiled, the activation path's scalings fuse into the kernels around the convolutions: no hybrid needed
            if self._compiled is None:
                self._compiled = Compiled(self._draw, f"the {self.img_resolution} px synthesis network")
            return self._compiled(styles, noise_mode, fused, False, dtypes.precision, dtypes.force_fp32)
        split = 0
        if cpu_auto and first.shape[0] > 1 and noise_mode != "random" and self.split_resolution:
            # (random noise stays batched, so that a seeded generator draws the same noise for any batch split)
            # bf16 inference one sample at a time is 10-18 % slower than from 128 px only, but a batch's
            # low-resolution blocks would round differently from a lone picture's (6 PNG levels from fp32 at a few
            # pixels instead of 4).
            alone = draws_samples_alone(mode, first, grads, dtypes.precision)
            split = self.block_resolutions[0] if alone else self.split_resolution
        return self._draw(
            styles, noise_mode, fused, hybrid, dtypes.precision, dtypes.force_fp32, generator, split, grads
        )  # fmt: skip

    def _draw(
        self,
        styles: dict[str, torch.Tensor],
        noise_mode: str,
        fused: bool,
        hybrid: bool,
        precision: str | None,
        force_fp32: bool,
        generator: torch.Generator | None = None,
        split: int = 0,
        grads: bool = False,
    ) -> torch.Tensor:
        """:meth:`from_styles` after its checks and choices (plain values, so that ``torch.compile`` can take it);
        ``split``: blocks of this resolution and above draw one sample at a time (0 = never), as a lone sample is
        drawn with (``grads``) or without gradients."""
        first = styles[self.style_layers[0].name]
        dtypes = LayerDtypes(precision, force_fp32, first.device)
        # oneDNN's CPU convolutions (dense and depthwise) run 1.3-2x faster on NHWC tensors.
        memory_format = torch.channels_last if first.device.type == "cpu" else torch.contiguous_format
        blocks = self.blocks()
        shared = [block for block in blocks if not split or block.resolution < split]
        run = dict(dtypes=dtypes, noise_mode=noise_mode, generator=generator, memory_format=memory_format)
        x, img = self._run(shared, None, None, styles, fused=fused, hybrid=hybrid, **run)
        if len(shared) == len(blocks):
            return img.contiguous()
        # The rest one sample at a time, as a lone sample would be drawn: on CPUs this is 1.2x (inference, fp32) to
        # 2.4x (bf16 with gradients) faster than the batch at 256 px and above, where the batch's per-sample
        # activation scalings and their gradients cost more than the convolutions (benchmarks/bench_generator.py
        # --batch); below 128 px inference is faster as a batch.
        one_fused = not grads
        one_hybrid = dtypes.precision == "bf16" and grads
        pieces = []
        for i in range(first.shape[0]):
            one = sample_styles(styles, i)
            xi = None if x is None else x[i : i + 1]
            imgi = None if img is None else img[i : i + 1]
            pieces.append(self._run(blocks[len(shared) :], xi, imgi, one, fused=one_fused, hybrid=one_hybrid, **run)[1])
        return torch.cat(pieces).contiguous()

    def _run(
        self,
        blocks: list[SynthesisBlock],
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        styles: dict[str, torch.Tensor],
        dtypes: LayerDtypes,
        noise_mode: str,
        fused: bool,
        hybrid: bool,
        generator: torch.Generator | None,
        memory_format: torch.memory_format,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Run ``blocks`` in order from activations ``x`` and the running image ``img`` (None before the first)."""
        for block in blocks:
            dtype = dtypes(block.use_fp16)
            # bf16 on a CPU with gradients: the thin high-resolution blocks are bound by passes over their activations
            # (the activation path's scalings and their gradients), which per-sample weights avoid at the price of a
            # weight-gradient convolution, cheap at 64 channels or fewer; the wide blocks keep the activation path.
            thin = hybrid and block.out_channels <= 64
            x, img = block(x, img, styles, dtype, noise_mode, fused or thin, generator=generator,
                           memory_format=memory_format)  # fmt: skip
        return x, img

    def forward(self, ws: torch.Tensor, **kwargs) -> torch.Tensor:
        """``ws: [N, num_ws, w_dim]`` -> image ``[N, C, R, R]``; keyword arguments as :meth:`from_styles`."""
        return self.from_styles(self.styles(ws), **kwargs)

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}"


def check_styles(layers: list[StyleLayer], styles: dict[str, torch.Tensor]) -> None:
    """One-line :class:`UsageError` unless ``styles`` has every layer as ``[N, channels]``."""
    missing = [info.name for info in layers if info.name not in styles]
    if missing:
        raise UsageError(f"styles lack layer(s) {missing[:4]}{'...' if len(missing) > 4 else ''}")
    for info in layers:
        s = styles[info.name]
        if s.ndim != 2 or s.shape[1] != info.channels:
            raise UsageError(f"style {info.name!r} must be [N, {info.channels}], got {list(s.shape)}")


def use_fused(
    modulation: str,
    first: torch.Tensor,
    styles: dict[str, torch.Tensor],
    network: nn.Module,
    grads: bool | None = None,
) -> bool:
    """Whether a synthesis call modulates the weights per sample (True) or scales the activations (False);
    ``grads``: :func:`needs_gradients` when the caller has it."""
    if modulation not in MODULATIONS:
        raise UsageError(f"modulation must be one of {MODULATIONS}, got {modulation!r}")
    if modulation != "auto":
        return modulation == "fused"
    if needs_gradients(styles, network) if grads is None else grads:
        # Per-sample weights would need a second, weight-gradient convolution in backward.
        return False
    # Inference: one sample is an ordinary convolution with modulated weights (no activation
    # rescaling passes); for batches, grouped convolutions are slow on CPU and MPS.
    return first.shape[0] == 1 or first.device.type == "cuda"


def needs_gradients(styles: dict[str, torch.Tensor], network: nn.Module) -> bool:
    """Whether autograd will differentiate this synthesis call (styles or weights being trained)."""
    return torch.is_grad_enabled() and (
        any(s.requires_grad for s in styles.values()) or any(p.requires_grad for p in network.parameters())
    )


def draws_samples_alone(modulation: str, first: torch.Tensor, grads: bool, precision: str | None) -> bool:
    """Whether a synthesis call draws its batch one sample at a time, each exactly as it would be drawn alone: on
    CPUs with modulation 'auto', for batches with gradients or in bf16. With gradients that is as fast or faster
    than the batch at every size (a batch's per-sample activation scalings and their gradients cost more than the
    convolutions), and a batched edit then follows each source's lone edit; in bf16 a picture's rounding then does
    not depend on the company it is drawn in. ``first``: any ``[N, C]`` style of the call."""
    return modulation == "auto" and first.device.type == "cpu" and first.shape[0] > 1 and (grads or precision == "bf16")


def sample_styles(styles: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    """Sample ``i`` of a batch of styles, ``{name: [1, C]}``."""
    return {name: s[i : i + 1] for name, s in styles.items()}
