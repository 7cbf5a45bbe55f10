"""StyleSpace S as flat vectors: which channels, in which order, and their statistics over the generator.

Global directions treat the style vectors of many layers as one long vector of channels. A
:class:`StyleLayout` fixes that order (synthesis order, conv layers by default, as StyleCLIP's
``fs3`` rows), and :func:`style_statistics` gives every channel's mean and standard deviation over
sampled latents - computed once per generator and cached beside it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .errors import UsageError
from .nets.stylegan2 import Generator
from .utils.files import atomic_save_arrays


@dataclass(frozen=True)
class StyleLayout:
    """An ordered selection of style layers; channel ``j`` of the flat vector is ``(layer, index)``."""

    names: tuple[str, ...]
    channels: tuple[int, ...]

    @classmethod
    def of(cls, G: Generator, max_resolution: int | None = None, torgb: bool = False) -> StyleLayout:
        """The conv layers (and ToRGB with ``torgb``) up to ``max_resolution`` px, in synthesis order."""
        layers = [
            layer
            for layer in G.style_layers
            if (torgb or layer.kind == "conv") and (max_resolution is None or layer.resolution <= max_resolution)
        ]
        if not layers:
            raise UsageError(f"no style layers up to {max_resolution} px in a {G.img_resolution}-px generator")
        return cls(tuple(layer.name for layer in layers), tuple(layer.channels for layer in layers))

    @property
    def size(self) -> int:
        return sum(self.channels)

    @property
    def offsets(self) -> list[int]:
        return list(np.cumsum((0, *self.channels))[:-1])

    def flatten(self, styles: dict[str, torch.Tensor]) -> torch.Tensor:
        """``{layer: [N, C_l]}`` -> ``[N, size]``."""
        return torch.cat([styles[name] for name in self.names], dim=1)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """``[N, size]`` (or ``[size]``) -> ``{layer: [N, C_l]}``."""
        return dict(zip(self.names, torch.split(flat, list(self.channels), dim=-1), strict=True))

    def locate(self, j: int) -> tuple[str, int]:
        """Flat channel ``j`` -> ``(layer name, channel index)``."""
        for name, start, width in zip(self.names, self.offsets, self.channels, strict=True):
            if j < start + width:
                return name, j - start
        raise IndexError(j)

    def per_layer(self, mask: torch.Tensor) -> dict[str, int]:
        """How many channels of each layer a ``[size]`` bool mask selects."""
        return {n: int(m.sum()) for n, m in zip(self.names, torch.split(mask, list(self.channels)), strict=True)}

    def to_dict(self) -> dict:
        return {"names": list(self.names), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict) -> StyleLayout:
        return cls(tuple(data["names"]), tuple(int(c) for c in data["channels"]))


def generator_fingerprint(G: Generator) -> str:
    """A 16-hex-digit SHA-256 of the generator's weights (the same network gives the same fingerprint
    whatever file format it came from). Cached in ``G.meta``."""
    if "fingerprint" not in G.meta:
        h = hashlib.sha256()
        for name, tensor in sorted(G.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        G.meta["fingerprint"] = h.hexdigest()[:16]
    return G.meta["fingerprint"]


@dataclass
class StyleStats:
    """Per-channel mean and standard deviation of every style layer: ``{layer: [C]}`` each."""

    mean: dict[str, torch.Tensor]
    std: dict[str, torch.Tensor]
    meta: dict

    def flat(self, layout: StyleLayout) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, std)`` as ``[layout.size]`` vectors."""
        return torch.cat([self.mean[n] for n in layout.names]), torch.cat([self.std[n] for n in layout.names])

    def save(self, path: Path) -> Path:
        arrays = {f"mean/{k}": v.cpu().numpy() for k, v in self.mean.items()}
        arrays |= {f"std/{k}": v.cpu().numpy() for k, v in self.std.items()}
        arrays["meta"] = np.array(json.dumps(self.meta))
        return atomic_save_arrays(Path(path), arrays)

    @classmethod
    def load(cls, path: Path) -> StyleStats:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            mean = {k[5:]: torch.from_numpy(data[k]) for k in data.files if k.startswith("mean/")}
            std = {k[4:]: torch.from_numpy(data[k]) for k in data.files if k.startswith("std/")}
        return cls(mean, std, meta)


@torch.no_grad()
def style_statistics(
    G: Generator,
    samples: int = 100_000,
    seed: int = 0,
    truncation_psi: float = 0.7,
    truncation_cutoff: int | None = 8,
    batch_size: int = 1000,
    cache: str | Path | None = None,
    progress: bool = True,
) -> StyleStats:
    """Mean and std of every style channel over ``samples`` latents, as StyleCLIP's global directions use.

    z is drawn from one seeded NumPy generator in batches, mapped with truncation ``psi`` (0.7) on the first
    ``cutoff`` W+ rows (8), and pushed through each layer's affine transform (no synthesis: cheap). Sums are
    accumulated in float64. The result is cached under ``<cache>/stylespace/<generator fingerprint>/`` and
    reused; ``cache=False`` skips the cache.
    """
    if samples < 2:
        raise UsageError("style statistics need at least 2 samples")
    path = None
    if cache is not False:
        from .hub.download import cache_dir

        folder = cache_dir(cache) / "stylespace" / generator_fingerprint(G)
        cut = "none" if truncation_cutoff is None else truncation_cutoff
        path = folder / f"stats-n{samples}-seed{seed}-psi{truncation_psi}-cut{cut}.npz"
        if path.is_file():
            return StyleStats.load(path)
    rng = np.random.RandomState(seed)
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    bar = tqdm(total=samples, desc="style statistics", unit="latent", disable=not progress or None, leave=False)
    done = 0
    while done < samples:
        n = min(batch_size, samples - done)
        z = torch.from_numpy(rng.randn(n, G.z_dim).astype(np.float32)).to(G.device)
        c = None
        if G.c_dim:  # conditional generators: classes drawn uniformly, so the statistics cover them all
            c = torch.nn.functional.one_hot(torch.from_numpy(rng.randint(G.c_dim, size=n)), G.c_dim)
            c = c.to(G.device, torch.float32)
        ws = G.mapping_forward(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        for name, s in G.styles(ws).items():
            s = s.to("cpu", torch.float64)  # float64 sums stay on the CPU: MPS has no float64
            sums[name] = sums.get(name, 0) + s.sum(0)
            squares[name] = squares.get(name, 0) + s.square().sum(0)
        done += n
        bar.update(n)
    bar.close()
    mean = {k: (v / samples).float().cpu() for k, v in sums.items()}
    # Unbiased variance from the float64 sums; clamp the rounding error of near-constant channels.
    std = {
        k: ((squares[k] - sums[k].square() / samples) / (samples - 1)).clamp_min(0).sqrt().float().cpu() for k in sums
    }
    meta = {
        "generator": generator_fingerprint(G),
        "samples": samples,
        "seed": seed,
        "truncation_psi": truncation_psi,
        "truncation_cutoff": truncation_cutoff,
    }
    stats = StyleStats(mean, std, meta)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        stats.save(path)
    return stats
