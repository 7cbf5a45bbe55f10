"""rosinality/stylegan2-pytorch checkpoints (``stylegan2-ffhq-config-f.pt`` used by StyleCLIP, e4e and ReStyle).

The file is ``torch.save({'g_ema': state_dict, 'latent_avg': [512], ...})``; training checkpoints add
``g``, ``d``, optimisers and ``args`` (an ``argparse.Namespace``). e4e checkpoints hold the same
generator under ``state_dict`` with a ``decoder.`` prefix. Size, style_dim, n_mlp and the channel
layout are read off the tensor shapes; the network is the same function as NVIDIA's, so the
conversion is a renaming (``convs.{2j}`` -> ``b{r}.conv0``, ``noises.noise_k`` -> ``noise_const``, ...)
with leading singleton dimensions dropped. The up-sampling kernels need no flip: both codebases
run the same transposed convolution.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ...errors import CheckpointError
from ...nets.stylegan2 import Generator, GeneratorConfig, MappingConfig, SynthesisConfig
from .state import build_generator, load_exact, numel

LATENT_AVG_SAMPLES = 4096  # rosinality's mean_latent(4096), for files that carry no latent_avg


def is_rosinality(data: Any) -> bool:
    return _state_dict(data) is not None


def _state_dict(data: Any) -> dict[str, torch.Tensor] | None:
    if not isinstance(data, dict):
        return None
    for key in ("g_ema", "g"):
        sd = data.get(key)
        if isinstance(sd, dict) and "style.1.weight" in sd:
            return sd
    sd = data.get("state_dict")
    if isinstance(sd, dict) and "decoder.style.1.weight" in sd:  # e4e / ReStyle / pSp
        return {k[len("decoder.") :]: v for k, v in sd.items() if k.startswith("decoder.")}
    if "style.1.weight" in data:  # a bare generator state dict
        return data
    return None


def generator_from_rosinality(data: dict, which: str = "G_ema") -> Generator:
    """Build our generator from a loaded rosinality-layout checkpoint dict."""
    sd = data.get("g") if which == "G" and isinstance(data.get("g"), dict) else _state_dict(data)
    if sd is None:
        raise CheckpointError("not a rosinality StyleGAN2 checkpoint (no g_ema / style.1.weight)")
    config = _infer_config(sd)
    G = build_generator(config, numel(sd.values()), "rosinality checkpoint")
    tensors = _rename(sd, G)
    latent_avg = data.get("latent_avg")
    estimated = latent_avg is None
    if latent_avg is None:
        tensors["mapping.w_avg"] = torch.zeros(config.w_dim)
    else:
        try:
            latent_avg = torch.as_tensor(latent_avg).float()
            # e4e stores it repeated per layer: [num_ws, w_dim]
            tensors["mapping.w_avg"] = latent_avg.reshape(-1, config.w_dim).mean(dim=0)
        except (TypeError, ValueError, RuntimeError):
            shape = list(latent_avg.shape) if isinstance(latent_avg, torch.Tensor) else type(latent_avg).__name__
            raise CheckpointError(
                f"rosinality checkpoint: latent_avg is {shape}, not [{config.w_dim}] or [num_ws, {config.w_dim}]"
            ) from None
    load_exact(G, tensors, source="rosinality checkpoint")
    if estimated:
        with torch.no_grad():
            gen = torch.Generator().manual_seed(0)
            z = torch.randn(LATENT_AVG_SAMPLES, config.z_dim, generator=gen)
            G.mapping.w_avg.copy_(G.mapping(z)[:, 0].mean(dim=0))
    G.meta["w_avg_estimated"] = estimated
    return G


def _infer_config(sd: dict[str, torch.Tensor]) -> GeneratorConfig:
    try:
        style_dim = sd["style.1.weight"].shape[1]
        n_mlp = len([k for k in sd if re.fullmatch(r"style\.\d+\.weight", k)])
        n_up = len([k for k in sd if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k)])
        size = 4 * 2**n_up
        channels = {4: sd["conv1.conv.weight"].shape[1]}
        for j in range(n_up):
            channels[2 ** (j + 3)] = sd[f"convs.{2 * j}.conv.weight"].shape[1]
        img_channels = sd["to_rgb1.conv.weight"].shape[1]
    except KeyError as exc:
        raise CheckpointError(f"rosinality checkpoint lacks tensor {exc.args[0]!r}") from None
    channel_max = max(channels.values())
    narrower = [(r, c) for r, c in channels.items() if c < channel_max]
    channel_base = narrower[0][0] * narrower[0][1] if narrower else channel_max * size
    if any(min(channel_base // r, channel_max) != c for r, c in channels.items()):
        raise CheckpointError(f"unsupported channel layout {channels} (not min(base / res, max))")
    return GeneratorConfig(
        z_dim=style_dim,
        c_dim=0,
        w_dim=style_dim,
        img_resolution=size,
        img_channels=img_channels,
        mapping=MappingConfig(num_layers=n_mlp, lr_multiplier=0.01),
        synthesis=SynthesisConfig(channel_base=channel_base, channel_max=channel_max),
    )


def _layer(src: str, dst: str, sd: dict, out: dict) -> None:
    out[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
    out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
    out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
    if dst.endswith("torgb"):
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(-1)
    else:
        out[f"{dst}.bias"] = sd[f"{src}.activate.bias"]
        out[f"{dst}.noise_strength"] = sd[f"{src}.noise.weight"].reshape(())


def _rename(sd: dict[str, torch.Tensor], G: Generator) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    # FIR buffers: ours are derived from the config, so they must be the [1, 3, 3, 1] filter we assume.
    used = {k for k in sd if k.endswith(".kernel")}
    expected = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64 * 4
    for key in used:
        if tuple(sd[key].shape) != (4, 4) or not torch.allclose(sd[key].float(), expected):
            raise CheckpointError(f"rosinality checkpoint uses a blur kernel other than [1, 3, 3, 1] ({key})")
    try:
        for i in range(G.mapping.num_layers):
            out[f"mapping.fc{i}.weight"] = sd[f"style.{i + 1}.weight"]
            out[f"mapping.fc{i}.bias"] = sd[f"style.{i + 1}.bias"]
        out["synthesis.b4.const"] = sd["input.input"][0]
        _layer("conv1", "synthesis.b4.conv1", sd, out)
        _layer("to_rgb1", "synthesis.b4.torgb", sd, out)
        out["synthesis.b4.conv1.noise_const"] = sd["noises.noise_0"][0, 0]
        for j, res in enumerate(G.synthesis.block_resolutions[1:]):
            _layer(f"convs.{2 * j}", f"synthesis.b{res}.conv0", sd, out)
            _layer(f"convs.{2 * j + 1}", f"synthesis.b{res}.conv1", sd, out)
            _layer(f"to_rgbs.{j}", f"synthesis.b{res}.torgb", sd, out)
            out[f"synthesis.b{res}.conv0.noise_const"] = sd[f"noises.noise_{2 * j + 1}"][0, 0]
            out[f"synthesis.b{res}.conv1.noise_const"] = sd[f"noises.noise_{2 * j + 2}"][0, 0]
    except KeyError as exc:
        raise CheckpointError(f"rosinality checkpoint lacks tensor {exc.args[0]!r}") from None
    used |= _source_keys(G.mapping.num_layers, len(G.synthesis.block_resolutions) - 1)
    leftover = sorted(set(sd) - used)
    if leftover:
        raise CheckpointError(f"rosinality checkpoint has tensors styleclip does not know: {leftover[:5]}")
    for name, buf in G.named_buffers():
        if name.endswith("resample_filter"):
            out[name] = buf
    return out


def _source_keys(n_mlp: int, n_up: int) -> set[str]:
    keys = {f"style.{i}.{p}" for i in range(1, n_mlp + 1) for p in ("weight", "bias")}
    keys.add("input.input")
    layers = ["conv1", "to_rgb1"] + [f"convs.{k}" for k in range(2 * n_up)] + [f"to_rgbs.{j}" for j in range(n_up)]
    for layer in layers:
        keys |= {f"{layer}.conv.weight", f"{layer}.conv.modulation.weight", f"{layer}.conv.modulation.bias"}
        if "rgb" in layer:
            keys.add(f"{layer}.bias")
        else:
            keys |= {f"{layer}.activate.bias", f"{layer}.noise.weight"}
    keys |= {f"noises.noise_{k}" for k in range(2 * n_up + 1)}
    return keys
