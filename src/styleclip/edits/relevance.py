"""Channel relevance: how moving each style channel moves the CLIP image embedding (StyleCLIP's ``fs3``).

A :class:`RelevanceMatrix` has one unit row ``[D]`` per style channel of its :class:`StyleLayout`. Three
sources, one format:

- :func:`relevance_matrix` - StyleCLIP's finite-difference method: on M images set a channel to
  ``mean - k·std`` and ``mean + k·std``, embed both with CLIP, normalise, subtract, normalise, average over
  images, normalise. Exact to the official reduction; hours for a 1024-px generator on a GPU, so it works in
  resumable chunks.
- :func:`relevance_matrix_gradient` - the same quantity to first order from Jacobians of the normalised
  embedding w.r.t. the style channels (a few backward passes per image): minutes instead of hours.
- :func:`load_official_fs3` - the ``fs3.npy`` files StyleCLIP publishes (rows in synthesis order of the
  conv layers of every resolution, which is our conv-layer order).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import CheckpointError, UsageError
from ..guidance.clip import ClipGuide
from ..nets.stylegan2 import Generator
from ..stylespace import StyleLayout, StyleStats, generator_fingerprint
from ..utils.files import atomic_save_arrays

# The generators each published matrix was computed on, and those that carry the same weights.
OFFICIAL_GENERATORS = {
    "styleclip-fs3:ffhq": ("stylegan2-tf:ffhq", "stylegan2-ada:ffhq", "rosinality:ffhq"),
    "styleclip-fs3:afhqdog": ("stylegan2-ada-tf:afhqdog",),
    "styleclip-fs3:afhqcat": ("stylegan2-ada-tf:afhqcat",),
}


@dataclass
class RelevanceMatrix:
    """``matrix: [layout.size, D]`` unit rows (zero where a channel has no effect), and where it came from."""

    matrix: torch.Tensor
    layout: StyleLayout
    meta: dict = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        arrays = {
            "matrix": self.matrix.cpu().numpy().astype(np.float32),
            "layout": np.array(json.dumps(self.layout.to_dict())),
            "meta": np.array(json.dumps(self.meta)),
        }
        return atomic_save_arrays(Path(path), arrays)

    @classmethod
    def load(cls, path: str | Path) -> RelevanceMatrix:
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"{path}: no such relevance matrix")
        try:
            with np.load(path, allow_pickle=False) as data:
                matrix = torch.from_numpy(data["matrix"])
                layout = StyleLayout.from_dict(json.loads(str(data["layout"])))
                meta = json.loads(str(data["meta"]))
        except Exception as exc:  # numpy, zip and JSON errors all mean the same to the user
            raise CheckpointError(f"{path}: not a styleclip relevance matrix ({type(exc).__name__})") from None
        return cls(matrix, layout, meta)

    def check(self, G: Generator, clip_name: str | None = None) -> None:
        """Refuse (one line) a matrix made for another generator or CLIP model."""
        if self.layout != _layout_like(G, self.layout):
            raise UsageError(
                f"this relevance matrix was made for a generator with other style layers "
                f"({self.layout.size} channels); compute one for this generator: styleclip directions precompute"
            )
        made_for = self.meta.get("generator")
        if made_for is not None and made_for != generator_fingerprint(G):
            raise UsageError(
                f"this relevance matrix was made for generator {made_for}, not the loaded one "
                f"({generator_fingerprint(G)}); compute one: styleclip directions precompute"
            )
        assets = self.meta.get("generator_assets")
        if assets and G.meta.get("asset") and G.meta["asset"] not in assets:
            raise UsageError(f"this relevance matrix belongs to {assets[0]}, not {G.meta['asset']}")
        clip = self.meta.get("clip")
        if clip_name is not None and clip is not None and _clip_key(clip) != _clip_key(clip_name):
            raise UsageError(f"this relevance matrix was made with CLIP {clip}, not {clip_name}; use --clip {clip}")


def _clip_key(name: str) -> str:
    return str(name).replace("/", "-").lower()


def _layout_like(G: Generator, layout: StyleLayout) -> StyleLayout | None:
    """``G``'s own layout over the same layers, or None if it lacks one of them."""
    widths = {layer.name: layer.channels for layer in G.style_layers}
    if any(name not in widths for name in layout.names):
        return None
    return StyleLayout(layout.names, tuple(widths[n] for n in layout.names))


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _image_styles(G: Generator, images: int, seed: int, psi: float, cutoff: int | None) -> dict[str, torch.Tensor]:
    rng = np.random.RandomState(seed)
    z = torch.from_numpy(rng.randn(images, G.z_dim).astype(np.float32)).to(G.device)
    c = None
    if G.c_dim:  # conditional generators: classes drawn uniformly, as for the statistics
        c = torch.nn.functional.one_hot(torch.from_numpy(rng.randint(G.c_dim, size=images)), G.c_dim)
        c = c.to(G.device, torch.float32)
    ws = G.mapping_forward(z, c, truncation_psi=psi, truncation_cutoff=cutoff)
    return G.styles(ws)


def _meta(G, guide, stats, layout, method, images, k, max_resolution, seed) -> dict:
    return {
        "method": method,
        "generator": generator_fingerprint(G),
        "generator_assets": [G.meta["asset"]] if G.meta.get("asset") else [],
        "clip": guide.name,
        "stats_samples": stats.meta.get("samples"),
        "images": images,
        "k": k,
        "max_resolution": max_resolution,
        "seed": seed,
        "channels": layout.size,
    }


@torch.no_grad()
def relevance_matrix(
    G: Generator,
    guide: ClipGuide,
    stats: StyleStats,
    images: int = 100,
    k: float = 5.0,
    max_resolution: int | None = 128,
    batch_size: int = 32,
    seed: int = 0,
    truncation_psi: float = 0.7,
    truncation_cutoff: int | None = 8,
    checkpoint: str | Path | None = None,
    callback: Callable[[int, int], None] | None = None,
    progress: bool = True,
    shard: tuple[int, int] = (0, 1),
) -> RelevanceMatrix:
    """StyleCLIP's relevance matrix by finite differences (see the module docstring).

    Args:
        stats: the generator's style statistics (:func:`styleclip.stylespace.style_statistics`).
        images: M, the images each channel is tried on (drawn from ``seed`` with the truncation given).
        k: the channel is set to ``mean ± k·std``.
        max_resolution: conv layers up to this resolution (ToRGB layers are never manipulated).
        batch_size: manipulated images per forward pass (2 per channel).
        checkpoint: file for partial results, written after every chunk of channels; a run that finds it
            (with the same settings) continues where it stopped.
        callback: ``callback(done_channels, total)`` after every chunk (raise to stop; the checkpoint stays).
        shard: ``(index, count)``: do only every ``count``-th chunk of channels, starting at ``index`` (one process
            of several under torchrun; each with its own ``checkpoint``, merged by :func:`merge_relevance_shards`).
            Chunks are fixed runs of ``batch_size // 2`` channels, so every channel is computed in the same company
            whether one process does all or many share them, and the merged matrix equals a one-process one.

    Returns:
        ``[C, D]`` unit rows for the conv channels up to ``max_resolution``, in synthesis order (zero rows for the
        channels of other shards).
    """
    if images < 1 or k <= 0 or batch_size < 2:
        raise UsageError("need images >= 1, k > 0 and batch_size >= 2")
    layout = StyleLayout.of(G, max_resolution)
    meta = _meta(G, guide, stats, layout, "finite-difference", images, k, max_resolution, seed)
    mean, std = (t.to(G.device) for t in stats.flat(layout))
    others = _image_styles(G, images, seed, truncation_psi, truncation_cutoff)
    base = layout.flatten(others)  # [M, C]

    rows = torch.zeros(layout.size, guide.embed_dim or 0)
    done = torch.zeros(layout.size, dtype=torch.bool)
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.is_file():
        rows, done = _load_partial(path, meta, rows, done)
    per_pass = max(1, batch_size // 2)
    index, count = shard
    if not 0 <= index < count:
        raise UsageError(f"shard {index} of {count} does not exist")
    starts = range(index * per_pass, layout.size, count * per_pass)  # this shard's fixed chunks
    chunks = [[c for c in range(a, min(a + per_pass, layout.size)) if not done[c]] for a in starts]
    chunks = [c for c in chunks if c]
    mine = sum(min(a + per_pass, layout.size) - a for a in starts)
    left = sum(len(c) for c in chunks)
    bar = tqdm(total=mine, initial=mine - left, desc="relevance", unit="ch", disable=not progress or None)
    try:
        for chunk in chunks:
            acc = None
            idx = torch.tensor(chunk, device=base.device)
            ar = torch.arange(len(chunk), device=base.device)
            low, high = mean[idx] - k * std[idx], mean[idx] + k * std[idx]
            for i in range(images):
                flat = base[i : i + 1].repeat(2 * len(chunk), 1)  # rows: -kσ for each channel, then +kσ
                flat[ar, idx] = low
                flat[ar + len(chunk), idx] = high
                styles = {n: v[i : i + 1].expand(flat.shape[0], -1) for n, v in others.items()}
                styles.update(layout.unflatten(flat))
                emb = _unit(guide.encode_image(G.synthesis_from_styles(styles)).float())
                diff = _unit(emb[len(chunk) :] - emb[: len(chunk)])
                acc = diff if acc is None else acc + diff
            rows[chunk] = _unit(acc).cpu()
            done[chunk] = True
            bar.update(len(chunk))
            if path is not None:
                _save_partial(path, meta, rows, done)
            if callback is not None:
                callback(int(done.sum()), layout.size)
    finally:
        bar.close()
    if path is not None and not path.is_file():  # a shard with nothing (left) to do still reports its part
        _save_partial(path, meta, rows, done)
    # Channels that never vary (std 0) move nothing: their rows are zero, not noise.
    rows[(std == 0).cpu()] = 0
    return RelevanceMatrix(rows, layout, meta)


def merge_relevance_shards(paths: list[Path], G: Generator, stats: StyleStats) -> RelevanceMatrix:
    """One matrix from the checkpoints of the shards of :func:`relevance_matrix` (made with the same settings)."""
    rows = done = meta = None
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as data:
                part_meta = json.loads(str(data["meta"]))
                part_rows, part_done = torch.from_numpy(data["rows"]), torch.from_numpy(data["done"])
        except Exception as exc:
            raise UsageError(f"{path}: unreadable shard ({type(exc).__name__})") from None
        if meta is None:
            rows, done, meta = torch.zeros_like(part_rows), torch.zeros_like(part_done), part_meta
        elif part_meta != meta:
            raise UsageError(f"{path} was made with other settings than {paths[0]}")
        rows[part_done] = part_rows[part_done]
        done |= part_done
    if meta is None or not bool(done.all()):
        missing = 0 if done is None else int((~done).sum())
        raise UsageError(f"the shards leave {missing} channels undone: run the same command again to finish them")
    layout = StyleLayout.of(G, meta["max_resolution"])
    _, std = stats.flat(layout)
    rows[(std == 0).cpu()] = 0
    return RelevanceMatrix(rows, layout, meta)


def _save_partial(path: Path, meta: dict, rows: torch.Tensor, done: torch.Tensor) -> None:
    atomic_save_arrays(path, {"rows": rows.numpy(), "done": done.numpy(), "meta": np.array(json.dumps(meta))})


def _load_partial(path: Path, meta: dict, rows: torch.Tensor, done: torch.Tensor):
    try:
        with np.load(path, allow_pickle=False) as data:
            saved = json.loads(str(data["meta"]))
            if saved != meta:
                raise UsageError(
                    f"{path} holds a run with other settings; delete it or use another --checkpoint to start afresh"
                )
            return torch.from_numpy(data["rows"]), torch.from_numpy(data["done"])
    except UsageError:
        raise
    except Exception as exc:  # a torn or foreign file
        raise UsageError(f"{path}: unreadable checkpoint ({type(exc).__name__}); delete it to start afresh") from None


def relevance_matrix_gradient(
    G: Generator,
    guide: ClipGuide,
    stats: StyleStats,
    images: int = 20,
    max_resolution: int | None = 128,
    batch_size: int = 32,
    seed: int = 0,
    truncation_psi: float = 0.7,
    truncation_cutoff: int | None = 8,
    progress: bool = True,
) -> RelevanceMatrix:
    """The relevance matrix from gradients: for each image, the Jacobian ``J = ∂ê/∂s`` of the normalised CLIP
    embedding w.r.t. the style channels; channel c's row is ``normalise(Σ_images normalise(J[:, c]))``. This is
    the finite-difference row in the limit of small steps (the ``k·std`` step scale drops out in the
    normalisation), evaluated at each image's own styles instead of at the channel mean.

    Args:
        images: images to average over (20 give a stable estimate; the official method uses 100).
        max_resolution: conv layers up to this resolution, as :func:`relevance_matrix`.
        batch_size: embedding dimensions per backward pass (the image is repeated that many times): D /
            batch_size passes per image.

    Returns:
        ``[C, D]`` unit rows over ``StyleLayout.of(G, max_resolution)``, ``meta["method"] == "gradient"``.
    """
    if images < 1 or batch_size < 1:
        raise UsageError("need images >= 1 and batch_size >= 1")
    layout = StyleLayout.of(G, max_resolution)
    meta = _meta(G, guide, stats, layout, "gradient", images, None, max_resolution, seed)
    _, std = stats.flat(layout)
    with torch.no_grad():
        all_styles = _image_styles(G, images, seed, truncation_psi, truncation_cutoff)
    dim = guide.embed_dim
    acc = torch.zeros(layout.size, dim, device=G.device)
    bar = tqdm(total=images, desc="relevance (gradient)", unit="img", disable=not progress or None)
    for i in range(images):
        jac = torch.empty(dim, layout.size, device=G.device)
        own = layout.flatten({n: v[i : i + 1] for n, v in all_styles.items()})
        for d0 in range(0, dim, batch_size):
            rows = min(batch_size, dim - d0)
            flat = own.repeat(rows, 1).requires_grad_(True)
            styles = {n: v[i : i + 1].expand(rows, -1) for n, v in all_styles.items()}
            styles.update(layout.unflatten(flat))
            emb = _unit(guide.encode_image(G.synthesis_from_styles(styles)).float())
            pick = torch.zeros(rows, dim, device=emb.device)
            pick[torch.arange(rows), torch.arange(d0, d0 + rows)] = 1
            (grad,) = torch.autograd.grad(emb, flat, grad_outputs=pick)
            jac[d0 : d0 + rows] = grad
        acc += _unit(jac.t())
        bar.update(1)
    bar.close()
    rows = _unit(acc).cpu()
    rows[std == 0] = 0
    return RelevanceMatrix(rows, layout, meta)


def load_official_fs3(path: str | Path, G: Generator, asset: str | None = None) -> RelevanceMatrix:
    """StyleCLIP's published ``fs3.npy`` (``[channels, 512]``, CLIP ViT-B/32) for a generator with its layers.

    Rows are the conv layers of every resolution in synthesis order (``b4.conv1, b8.conv0, b8.conv1, ...``),
    ToRGB layers left out: every resolution (6048 rows for a 1024-px config-f generator, 5952 at 512 px) or,
    as StyleCLIP's SingleChannel.py computes it, layers up to 128 px (5376 rows for both).
    """
    try:
        matrix = np.load(Path(path), allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except Exception as exc:  # numpy raises several types for foreign files
        raise CheckpointError(f"{path}: not a StyleCLIP fs3.npy ({type(exc).__name__})") from None
    if not isinstance(matrix, np.ndarray):  # an .npz archive under an .npy name, e.g. one of ours
        matrix.close()
        raise CheckpointError(f"{path}: an .npz archive, not StyleCLIP's fs3 array; name styleclip matrices .npz")
    # StyleCLIP's SingleChannel.py keeps layers up to 128 px; files computed over every conv layer exist too.
    layouts = [StyleLayout.of(G), StyleLayout.of(G, max_resolution=128)]
    layout = next((lay for lay in layouts if matrix.ndim == 2 and matrix.shape[0] == lay.size), None)
    if layout is None:
        raise UsageError(
            f"{path}: {matrix.shape[0] if matrix.ndim == 2 else '?'} rows, but this generator has "
            f"{layouts[0].size} conv style channels ({layouts[1].size} up to 128 px); "
            "the file belongs to another generator"
        )
    meta = {
        "method": "official",
        "clip": "ViT-B-32:openai",
        "generator_assets": list(OFFICIAL_GENERATORS.get(asset or "", ())),
        "source": str(path),
        "channels": layout.size,
    }
    return RelevanceMatrix(_unit(torch.from_numpy(matrix.astype(np.float32))), layout, meta)
