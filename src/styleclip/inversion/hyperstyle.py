"""HyperStyle inversion (Alaluf et al., CVPR 2022) with the published checkpoints (``hyperstyle_ffhq.pt``, ...).

A checkpoint, as HyperStyle's coach saves it, holds ``state_dict`` (the hyper-network as ``hypernet.*``, with the
shared hyper-network's four tensors stored again under every block that uses it, and the rosinality generator as
``decoder.*``), ``opts`` (``output_size``, ``layers_to_tune``, ``dataset_type``, ...), ``latent_avg`` and training
counters. It is read with ``weights_only`` loading: plain tensors and values, no code. The W encoder that gives the
starting codes (``faces_w_encoder.pt``) is a pSp-layout checkpoint of its own (:func:`styleclip.load_encoder`).

The iteration: the W encoder's codes plus the average latent, drawn once without offsets and pooled to 256 px; then
``n_iters`` passes (5 by default, as HyperStyle's inference), each seeing the photo beside the current
reconstruction and adding its offsets to the sum so far; every pass draws the same codes with
``W' = W * (1 + Σ Δ)`` in place of each tuned weight. The codes never change, so every edit method that works on
them works on the photo, drawn by the generator with the offsets applied (:func:`offset_generator`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import CheckpointError, UsageError
from ..nets.hyperstyle import DEFAULT_LAYERS_TO_TUNE, SHARED_LAYERS, HyperNetwork, TunedLayer, layer_table
from ..nets.stylegan2 import Generator
from ..nets.stylegan3 import Generator3
from .encoders import INPUT_SIZE, Encoder

N_ITERS = 5  # HyperStyle's inference default (n_iters_per_batch)
SHARED_KEYS = ("w1", "b1", "w2", "b2")
# HyperStyle's domain-adaptation recipe keeps the offsets of the convolutions from 128 px up (its layers 14, 15, 17,
# 18, 20, 21, 23, 24 at 1024 px) when it draws a photo with a generator fine-tuned to another domain
ADAPTED_FROM_RESOLUTION = 128


@dataclass
class HyperStyle:
    """A loaded HyperStyle model: the hyper-network, the average latent ``[n_styles, w_dim]`` its codes start from,
    the generator it was trained with (the checkpoint's decoder), and the crop of the picture it sees (cars: rows
    64..448 of 512)."""

    net: HyperNetwork
    latent_avg: torch.Tensor
    generator: Generator
    source: str = ""
    rows: tuple[int, int] | None = None
    opts: dict = field(default_factory=dict)
    name: str = ""  # as the user named it (a catalogue name, a path)
    w_encoder: Encoder | None = None  # the W encoder its passes start from, when loaded with it

    @property
    def table(self) -> list[TunedLayer]:
        return self.net.table

    def to(self, device) -> HyperStyle:
        self.net.to(device)
        self.latent_avg = self.latent_avg.to(device)
        self.generator.to(device)
        if self.w_encoder is not None:
            self.w_encoder.to(device)
        return self


def load_hyperstyle(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    cache: str | Path | None = None,
    offline: bool | None = None,
    w_encoder: Encoder | str | Path | None = None,
) -> HyperStyle:
    """Load a HyperStyle checkpoint by catalogue name (``hyperstyle:ffhq``), URL or path, with its W encoder:
    ``w_encoder`` (loaded, or a name/path), else the one the catalogue pairs with a catalogue name, else none
    (pass one to :func:`styleclip.invert` as ``encoder``)."""
    from ..hub.formats.budget import check_finite
    from ..hub.formats.rosinality import generator_from_rosinality
    from ..hub.formats.torchfile import load_weights_file
    from ..hub.resolve import resolve_path
    from ..utils.devices import resolve_device

    path = resolve_path(name_or_path, kind="encoder", cache=cache, offline=offline)
    try:
        ckpt = load_weights_file(path)
    except CheckpointError as exc:
        detail = str(exc).removeprefix(f"{path}: ")
        raise CheckpointError(f"{path}: not a HyperStyle checkpoint styleclip can read ({detail})") from None
    sd = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict) or not any(str(k).startswith("hypernet.") for k in sd):
        raise CheckpointError(f"{path}: no hypernet.* weights inside; not a HyperStyle checkpoint")
    opts = ckpt.get("opts") if isinstance(ckpt.get("opts"), dict) else {}
    hyper = {k[len("hypernet.") :]: v for k, v in sd.items() if k.startswith("hypernet.")}
    check_finite(((f"hypernet.{k}", v) for k, v in hyper.items() if isinstance(v, torch.Tensor)), str(path))
    try:
        G = generator_from_rosinality(ckpt).eval().requires_grad_(False)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: its decoder.* generator does not load ({exc})") from None
    G.meta.update({"source": str(path), "format": "rosinality"})
    try:
        tune = _layers_to_tune(opts, len(layer_table(G)))
        with torch.device("meta"):  # sizes read off the file's shapes: a zero-size tensor can declare any of them
            _check_shapes(hyper, hypernetwork_from_state_dict(hyper, layer_table(G), tune))
        net = hypernetwork_from_state_dict(hyper, layer_table(G), tune)
        _check_aliases(hyper, net)
        net.load_state_dict(hyper)  # strict: every published key, the shared weights' aliases included
    except (KeyError, ValueError, RuntimeError, AttributeError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{path}: hyper-network weights do not fit HyperStyle's network ({first})") from None
    avg = ckpt.get("latent_avg")
    if avg is None:
        avg = G.w_avg
    if not isinstance(avg, torch.Tensor) or avg.ndim == 0 or avg.shape[-1] != G.w_dim:
        shape = list(avg.shape) if isinstance(avg, torch.Tensor) else type(avg).__name__
        raise CheckpointError(f"{path}: latent_avg is {shape}; expected a tensor [{G.num_ws}, {G.w_dim}]")
    avg = avg.to(torch.float32).reshape(-1, G.w_dim)
    if avg.shape[0] not in (1, G.num_ws) or not torch.isfinite(avg).all():
        raise CheckpointError(f"{path}: latent_avg has shape {list(avg.shape)} or non-finite values; expected finite "
                              f"[{G.num_ws}, {G.w_dim}]")  # fmt: skip
    rows = (G.img_resolution // 8, G.img_resolution * 7 // 8) if "cars" in str(opts.get("dataset_type", "")) else None
    model = HyperStyle(
        net.eval().requires_grad_(False), avg.expand(G.num_ws, -1).contiguous(), G, str(path), rows, opts,
        str(name_or_path), _w_encoder(w_encoder, name_or_path, cache, offline),
    )  # fmt: skip
    return model.to(resolve_device(device))


def _w_encoder(given, name_or_path, cache, offline) -> Encoder | None:
    from ..hub.registry import find_asset
    from .encoders import load_encoder

    if isinstance(given, Encoder):
        return given
    if given is None:
        asset = find_asset(str(name_or_path)) if isinstance(name_or_path, str) else None
        given = (asset.defaults or {}).get("w_encoder") if asset is not None else None
    return load_encoder(given, device="cpu", cache=cache, offline=offline) if given is not None else None


def _layers_to_tune(opts: dict, n: int) -> tuple[int, ...]:
    value = opts.get("layers_to_tune", ",".join(map(str, DEFAULT_LAYERS_TO_TUNE)))
    if value in ("", None):
        return tuple(range(n))
    try:
        return tuple(int(v) for v in str(value).split(",") if v.strip())
    except ValueError:
        raise ValueError(f"opts layers_to_tune {str(value)[:60]!r} is not a list of layer numbers") from None


def hypernetwork_from_state_dict(sd: dict[str, torch.Tensor], table: list[TunedLayer], tune) -> HyperNetwork:
    """The :class:`HyperNetwork` a ``hypernet.*`` state dict (prefix removed) describes, sizes read from its shapes
    (the published network's and the tests' tiny ones alike). Raises ``KeyError``/``ValueError``."""
    from ..nets.encoders import stages_from_channels

    blocks = sorted({int(k.split(".")[1]) for k in sd if k.startswith("body.")})
    shapes = [sd[f"body.{b}.conv1.weight"].shape for b in blocks]
    stages = stages_from_channels(
        [(s[1], s[0]) for s in shapes], [f"body.{b}.downsample.0.weight" in sd for b in blocks]
    )
    tuned = sorted({int(k.split(".")[1]) for k in sd if k.startswith("refinement_blocks.")})
    if set(tuned) != {i for i in tune if i < len(table)}:
        raise ValueError(f"its blocks are for layers {tuned}, its opts say layers_to_tune {list(tune)}")
    shared = next((i for i in tuned if i in SHARED_LAYERS), None)
    own = next((i for i in tuned if i not in SHARED_LAYERS), None)
    inner = (
        int(sd[f"refinement_blocks.{shared}.convs.0.weight"].shape[0]) if shared is not None else 128,
        int(sd[f"refinement_blocks.{own}.convs.0.weight"].shape[0]) if own is not None else 256,
    )
    code = int(sd["shared_weight_hypernet.w1"].shape[0])
    conv1 = sd["conv1.weight"]
    return HyperNetwork(table, tuple(tune), int(conv1.shape[1]), stages, int(conv1.shape[0]), inner, code)


def _check_shapes(sd: dict[str, torch.Tensor], net: HyperNetwork) -> None:
    """Every parameter and buffer of ``net`` (built on the meta device) must be a tensor of the file, same shape."""
    for key, value in net.state_dict().items():
        given = sd.get(key)
        if not isinstance(given, torch.Tensor) or tuple(given.shape) != tuple(value.shape):
            shape = list(given.shape) if isinstance(given, torch.Tensor) else type(given).__name__
            raise ValueError(f"{key[:80]} is {shape}, HyperStyle's network needs {list(value.shape)}")


def _check_aliases(sd: dict[str, torch.Tensor], net: HyperNetwork) -> None:
    """Every copy of the shared hyper-network's weights must be the same tensor values (one module in memory)."""
    for index, block in enumerate(net.refinement_blocks):
        if block is None or index not in SHARED_LAYERS:
            continue
        for key in SHARED_KEYS:
            alias = sd.get(f"refinement_blocks.{index}.hypernet.{key}")
            if alias is not None and not torch.equal(alias, sd[f"shared_weight_hypernet.{key}"]):
                raise ValueError(f"refinement_blocks.{index}.hypernet.{key} differs from the shared weights it copies")


# -- the iteration ---------------------------------------------------------------------------------------------


@dataclass
class HyperInversion:
    """``ws``: W+ ``[N, num_ws, w_dim]`` (the W encoder's, unchanged by the passes); ``offsets``: per pass, the
    accumulated ``{layer name: [N, out, in, k, k]}``; ``reconstructions``: per pass, ``[N, 3, R, R]`` in about
    ``[-1, 1]``; ``start``: the W encoder's own reconstruction."""

    ws: torch.Tensor
    offsets: list[dict[str, torch.Tensor]]
    reconstructions: list[torch.Tensor]
    start: torch.Tensor


def _see(model: HyperStyle, img: torch.Tensor) -> torch.Tensor:
    """A picture as the networks see it: HyperStyle's 256-px face pool (cars: the 384 content rows, 192 x 256)."""
    if model.rows is not None:
        img = img[:, :, model.rows[0] : model.rows[1], :]
        return F.adaptive_avg_pool2d(img, (INPUT_SIZE * 3 // 4, INPUT_SIZE))
    return F.adaptive_avg_pool2d(img, (INPUT_SIZE, INPUT_SIZE))


def _photo_input(model: HyperStyle, photo: torch.Tensor) -> torch.Tensor:
    """The photo resized as HyperStyle's transforms do (256 x 256, cars 192 x 256)."""
    if model.rows is not None:
        photo = photo[:, :, model.rows[0] : model.rows[1], :]
        size = (INPUT_SIZE * 3 // 4, INPUT_SIZE)
    else:
        size = (INPUT_SIZE, INPUT_SIZE)
    if tuple(photo.shape[-2:]) == size:
        return photo
    return F.interpolate(photo, size=size, mode="bilinear", align_corners=False, antialias=True)


@torch.no_grad()
def hyperstyle_invert(
    model: HyperStyle,
    w_encoder: Encoder,
    G: Generator,
    photo: torch.Tensor,
    n_iters: int = N_ITERS,
) -> HyperInversion:
    """Invert ``photo`` (``[N, 3, R, R]`` in ``[-1, 1]``, prepared as the generator's data) with HyperStyle.

    ``G`` draws the reconstructions (the checkpoint's decoder or the same network in another format);
    ``w_encoder``: the W encoder (``faces_w_encoder.pt``) whose codes, plus the model's average latent, are the start.
    """
    if not 1 <= n_iters <= 100:
        raise UsageError(f"HyperStyle takes 1 to 100 passes, got {n_iters}")
    if isinstance(G, Generator3):
        raise UsageError("HyperStyle inverts into StyleGAN2 generators; for StyleGAN3 use --method project")
    if G.num_ws != model.latent_avg.shape[0] or G.num_ws != w_encoder.n_styles:
        raise UsageError(
            f"HyperStyle's model and W encoder make {model.latent_avg.shape[0]} and {w_encoder.n_styles} W+ rows but "
            f"the generator has {G.num_ws}: use the generator they were trained with"
        )
    x = _photo_input(model, photo.to(G.device, torch.float32))
    ws = w_encoder.net(x) + model.latent_avg.to(G.device)[None]
    start = G.synthesize(ws, noise_mode="const")
    seen = _see(model, start)
    total: list[torch.Tensor | None] | None = None
    offsets, reconstructions = [], []
    draw = OffsetDrawer(G)
    for _ in range(n_iters):
        out = model.net(torch.cat([x, seen], dim=1))
        total = out if total is None else [t + o if t is not None else None for t, o in zip(total, out, strict=True)]
        named = {layer.name: d for layer, d in zip(model.table, total, strict=True) if d is not None}
        img = draw(ws, named)
        offsets.append(named)
        reconstructions.append(img)
        seen = _see(model, img)
    return HyperInversion(ws, offsets, reconstructions, start)


def _offset_weights(G: Generator, offsets: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    """``{'<layer>.weight': W * (1 + Δ_i)}`` for sample ``i`` (an offset with batch 1 serves every sample)."""
    out = {}
    for name, delta in offsets.items():
        weight = G.get_submodule(name).weight
        d = delta[i if delta.shape[0] > 1 else 0]
        if d.shape != weight.shape:
            raise UsageError(
                f"the offset for {name} has shape {list(d.shape)}, the layer's weight {list(weight.shape)}"
            )
        out[f"{name}.weight"] = weight * (1 + d.to(weight))
    return out


class OffsetDrawer:
    """Draws codes with per-photo weight offsets through one working copy of ``G`` whose tuned weights are
    overwritten in place for each photo (in place, so that the layers' caches of derived weights see the change)."""

    def __init__(self, G: Generator) -> None:
        self.G = G
        self.copy = _fresh_copy(G)

    @torch.no_grad()
    def set(self, offsets: dict[str, torch.Tensor], i: int = 0) -> Generator:
        """The working copy with sample ``i``'s offsets applied (valid until the next call): draw with it."""
        for key, value in _offset_weights(self.G, offsets, i).items():
            self.copy.get_parameter(key).copy_(value)
        return self.copy

    @torch.no_grad()
    def __call__(self, ws: torch.Tensor, offsets: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
        """``ws`` (W+ ``[N, num_ws, w_dim]``) drawn with ``W * (1 + Δ)`` in place of each offset layer's weight (per
        sample); ``kwargs`` as :meth:`Generator.synthesize` (noise 'const' unless said otherwise)."""
        kwargs.setdefault("noise_mode", "const")
        ws = self.G.broadcast(ws)
        return torch.cat([self.set(offsets, i).synthesize(ws[i : i + 1], **kwargs) for i in range(ws.shape[0])])


def draw_with_offsets(G: Generator, ws: torch.Tensor, offsets: dict[str, torch.Tensor], **kwargs) -> torch.Tensor:
    """``ws`` (W+ ``[N, num_ws, w_dim]``) drawn by ``G`` with the offsets applied (see :class:`OffsetDrawer`)."""
    return OffsetDrawer(G)(ws, offsets, **kwargs)


def _fresh_copy(G: Generator) -> Generator:
    """A deep copy without the original's caches of derived weights (they belong to the original's tensors)."""
    tuned = copy.deepcopy(G)
    for module in tuned.modules():
        module.__dict__.pop("_derived", None)
    return tuned.eval().requires_grad_(False)


def offset_generator(G: Generator, offsets: dict[str, torch.Tensor], from_resolution: int | None = None) -> Generator:
    """A copy of ``G`` whose tuned weights are ``W * (1 + Δ)`` (offsets of one photo, batch 1): it draws the photo's
    codes as HyperStyle reconstructs them, and every edit of them. ``from_resolution``: keep only the offsets of
    layers at that resolution and up (HyperStyle's recipe for a generator adapted to another domain: 128)."""
    if any(d.shape[0] != 1 for d in offsets.values()):
        raise UsageError("offset_generator takes the offsets of one photo (batch 1)")
    kept = {n: d for n, d in offsets.items() if from_resolution is None or _resolution(n) >= from_resolution}
    tuned = _fresh_copy(G)
    with torch.no_grad():
        for key, value in _offset_weights(G, kept, 0).items():
            tuned.get_parameter(key).copy_(value)
    from ..stylespace import generator_fingerprint

    # a new network: the original's cached fingerprint (and the statistics keyed by it) must not carry over
    tuned.meta = {k: v for k, v in G.meta.items() if k != "fingerprint"}
    tuned.meta |= {"hyperstyle": sorted(kept), "offsets_of": generator_fingerprint(G)}
    return tuned


def _resolution(name: str) -> int:
    block = name.split(".")[1]  # 'synthesis.b128.conv0' -> 'b128'
    return int(block[1:])


# -- offsets on disk ----------------------------------------------------------------------------------------------

OFFSETS_FORMAT = "styleclip.hyperstyle-offsets"


def save_offsets(path: str | Path, offsets: dict[str, torch.Tensor], generator: str) -> Path:
    """Write one photo's offsets (``{layer: [1, out, in, k, k]}``) as ``.safetensors``, atomically, with
    ``generator``: the fingerprint of the generator they belong to (``offset_generator(...).meta["offsets_of"]``)."""
    import json

    from safetensors.torch import save as safetensors_bytes

    from ..utils.files import atomic_write_bytes

    tensors = {name: d.detach().to("cpu", torch.float32).contiguous() for name, d in offsets.items()}
    meta = {"format": OFFSETS_FORMAT, "generator": generator, "layers": json.dumps(sorted(tensors))}
    return atomic_write_bytes(Path(path), safetensors_bytes(tensors, metadata=meta))


def load_offsets(path: str | Path, G: Generator) -> dict[str, torch.Tensor]:
    """One photo's offsets saved by :func:`save_offsets`, checked against ``G`` (the same weights, every layer's
    shape) before anything is drawn. Errors are one line naming the file."""
    from ..hub.formats.safetensors_check import read_safetensors
    from ..stylespace import generator_fingerprint

    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"--offsets {str(path)[:200]}: no such file (styleclip invert writes offsets.safetensors)")
    meta, tensors = read_safetensors(path, "offsets file", "invert the photo again")
    if meta.get("format") != OFFSETS_FORMAT:
        raise CheckpointError(
            f"{path}: not a HyperStyle offsets file (styleclip invert --method hyperstyle writes one)"
        )
    if meta.get("generator") != generator_fingerprint(G):
        raise UsageError(
            f"{path} holds offsets for another generator's weights; pass the --generator it was inverted with"
        )
    if isinstance(G, Generator3):
        raise UsageError("HyperStyle's offsets belong to StyleGAN2 generators; this one is a StyleGAN3")
    layers = {t.name: t for t in layer_table(G)}
    for name, d in tensors.items():
        layer = layers.get(name)
        if layer is None or tuple(d.shape) != (1, layer.out_channels, layer.in_channels, layer.kernel, layer.kernel):
            raise CheckpointError(f"{path}: offset {name[:60]} does not fit a layer of this generator")
        if not torch.isfinite(d).all():
            raise CheckpointError(f"{path}: offset {name[:60]} holds NaN or Inf values")
    return tensors
