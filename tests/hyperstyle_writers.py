"""Tiny HyperStyle checkpoints in the published layout, and HyperStyle's forward pass written out for the tests.

The writers save what HyperStyle's coach saves (``state_dict`` with ``hypernet.*``, the shared hyper-network's
aliases and ``decoder.*``; ``opts``; ``latent_avg``; ``global_step``; ``best_val_loss``) and a pSp-layout W encoder.
The reference reads those state dicts key by key with functional calls (no styleclip module), and applies offsets the
way HyperStyle's generator does, by scaling the rosinality weights and loading them as a new generator.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from styleclip.nets.encoders import WEncoder
from styleclip.nets.hyperstyle import HyperNetwork, layer_table

from checkpoint_writers import rosinality_state_dict
from conftest import tiny_generator

TINY_STAGES = [(8, 8, 1), (8, 8, 1), (8, 16, 1), (16, 16, 1)]


def tiny_irse(w_dim: int) -> list[tuple[int, int, int]]:
    """Squeeze-excite divides by 16; each stage changes the width (how its start is read back); the last is w's."""
    return [(16, 16, 1), (16, 32, 1), (32, 48, 1), (48, w_dim, 1)]


def hyperstyle_generator(resolution: int = 128, seed: int = 0):
    """A tiny generator whose layers HyperStyle shares all have one width (16), as the published ones (512) do."""
    return tiny_generator(resolution, seed=seed, channel_base=resolution * 16, channel_max=16)


def _randomise(module: torch.nn.Module, seed: int, scale: float = 0.2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.dtype.is_floating_point:
                t.copy_(torch.randn(t.shape, generator=g) * scale + (1.0 if name.endswith("running_var") else 0.0))
                if name.endswith("running_var"):
                    t.abs_()


def default_tune(G) -> tuple[int, ...]:
    """Every 3x3 layer, as HyperStyle's default does, less the shared ones another width than the first shared
    layer's (the shared hyper-network has one size; the published generators are 512 wide there)."""
    from styleclip.nets.hyperstyle import SHARED_LAYERS

    table = layer_table(G)
    size = (table[0].in_channels, table[0].out_channels)
    return tuple(
        t.index for t in table
        if not t.torgb and (t.index not in SHARED_LAYERS or (t.in_channels, t.out_channels) == size)
    )  # fmt: skip


def tiny_hypernet(G, tune=None, seed: int = 0) -> HyperNetwork:
    tune = tuple(tune) if tune is not None else default_tune(G)
    net = HyperNetwork(layer_table(G), tune, 6, TINY_STAGES, 8, (8, 8), 16)
    _randomise(net, seed, 0.05)
    return net.eval()


def write_hyperstyle(G, path: Path, tune=None, seed: int = 0, dataset_type: str = "ffhq_hypernet", **opts) -> Path:
    net = tiny_hypernet(G, tune, seed)
    sd = {f"hypernet.{k}": v for k, v in net.state_dict().items()}
    sd.update({f"decoder.{k}": v for k, v in rosinality_state_dict(G).items()})
    layers = ",".join(str(i) for i in net.tune)
    options = {"output_size": G.img_resolution, "layers_to_tune": layers, "dataset_type": dataset_type,
               "encoder_type": "SharedWeightsHyperNetResNet", "input_nc": 6, "n_iters_per_batch": 5,
               "device": "cuda:0", "n_hypernet_outputs": len(layer_table(G))}  # fmt: skip
    options.update(opts)
    avg = G.w_avg.detach().clone()[None].repeat(G.num_ws, 1) + 0.01
    torch.save({"state_dict": sd, "opts": options, "latent_avg": avg, "global_step": 1000, "best_val_loss": None}, path)
    return path


def tiny_w_encoder(G, seed: int = 1) -> WEncoder:
    net = WEncoder(G.num_ws, tiny_irse(G.w_dim), 16)
    _randomise(net, seed, 0.1)
    return net.eval()


def write_w_encoder(G, path: Path, seed: int = 1) -> Path:
    net = tiny_w_encoder(G, seed)
    sd = {f"encoder.{k}": v for k, v in net.state_dict().items()}
    sd.update({f"decoder.{k}": v for k, v in rosinality_state_dict(G).items()})
    opts = {"output_size": G.img_resolution, "encoder_type": "WEncoder", "input_nc": 3}
    torch.save({"state_dict": sd, "opts": opts, "latent_avg": G.w_avg.detach()[None].repeat(G.num_ws, 1)}, path)
    return path


# -- HyperStyle's forward, from the state dict ------------------------------------------------------------------


def _bn(x, sd, p):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"])


def reference_trunk(sd: dict, x: torch.Tensor) -> torch.Tensor:
    x = F.conv2d(x, sd["conv1.weight"], stride=2, padding=3)
    x = F.prelu(_bn(x, sd, "bn1"), sd["relu.weight"])
    n = len({k.split(".")[1] for k in sd if k.startswith("body.")})
    for b in range(n):
        p = f"body.{b}"
        down = f"{p}.downsample.0.weight" in sd
        stride = 2 if down and b > 0 else 1
        y = F.relu(_bn(F.conv2d(x, sd[f"{p}.conv1.weight"], stride=stride, padding=1), sd, f"{p}.bn1"))
        y = _bn(F.conv2d(y, sd[f"{p}.conv2.weight"], padding=1), sd, f"{p}.bn2")
        skip = _bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), sd, f"{p}.downsample.1") if down else x
        x = F.relu(y + skip)
    return x


def _convs(sd: dict, p: str, x: torch.Tensor, first_stride: int) -> torch.Tensor:
    keys = sorted({int(k.split(".")[3]) for k in sd if k.startswith(f"{p}.convs.")})
    for j, idx in enumerate(keys):
        stride = first_stride if j == 0 else 2
        x = F.leaky_relu(F.conv2d(x, sd[f"{p}.convs.{idx}.weight"], sd[f"{p}.convs.{idx}.bias"], stride, 1), 0.01)
    return x


def reference_offsets(sd: dict, x: torch.Tensor, table) -> list[torch.Tensor | None]:
    """HyperStyle's hyper-network on ``x`` ``[B, 6, 256, 256]`` from its ``hypernet.*`` state dict (prefix removed)."""
    feats = reference_trunk(sd, x)
    out: list[torch.Tensor | None] = []
    for layer in table:
        p = f"refinement_blocks.{layer.index}"
        if f"{p}.convs.0.weight" not in sd:
            out.append(None)
            continue
        b = x.shape[0]
        if f"{p}.linear.weight" in sd:  # a block of the shared hyper-network
            code = _convs(sd, p, feats, 1).reshape(b, -1)
            w = sd[f"{p}.linear.weight"]
            code = code @ (w / math.sqrt(w.shape[1])).T + sd[f"{p}.linear.bias"]
            z = sd["shared_weight_hypernet.w1"].shape[0]
            h = (code @ sd["shared_weight_hypernet.w2"] + sd["shared_weight_hypernet.b2"]).reshape(b, -1, z)
            k = h @ sd["shared_weight_hypernet.w1"] + sd["shared_weight_hypernet.b1"]
            out.append(k.reshape(b, layer.out_channels, layer.in_channels, 3, 3))
        elif layer.torgb:
            y = F.conv2d(_convs(sd, p, feats, 2), sd[f"{p}.output.0.weight"], sd[f"{p}.output.0.bias"])
            out.append(y.reshape(b, layer.out_channels, layer.in_channels, layer.kernel, layer.kernel))
        else:
            y = F.adaptive_avg_pool2d(_convs(sd, p, feats, 2), 1)
            y = F.conv2d(y, sd[f"{p}.output.1.weight"], sd[f"{p}.output.1.bias"]).reshape(b, layer.out_channels, -1)
            out.append(y[..., None, None].repeat(1, 1, 1, layer.kernel, layer.kernel))
    return out


def rosinality_layer_names(G) -> list[str]:
    """HyperStyle's layer order in rosinality's names: conv1, to_rgb1, then convs.2k, convs.2k+1, to_rgbs.k."""
    names = ["conv1", "to_rgb1"]
    for k in range(int(math.log2(G.img_resolution)) - 2):
        names += [f"convs.{2 * k}", f"convs.{2 * k + 1}", f"to_rgbs.{k}"]
    return names


def reference_draw(G, ws: torch.Tensor, offsets: list[torch.Tensor | None]) -> torch.Tensor:
    """``ws`` drawn as HyperStyle's generator draws them: each tuned rosinality weight multiplied by ``1 + Δ``,
    loaded as a new generator through the rosinality format (one photo: offsets with batch 1)."""
    from styleclip.hub.formats.rosinality import generator_from_rosinality

    sd = rosinality_state_dict(G)
    for name, delta in zip(rosinality_layer_names(G), offsets, strict=True):
        if delta is not None:
            sd[f"{name}.conv.weight"] = sd[f"{name}.conv.weight"] * (1 + delta)
    drawn = generator_from_rosinality({"g_ema": sd, "latent_avg": G.w_avg})
    return drawn.synthesize(ws, noise_mode="const")
