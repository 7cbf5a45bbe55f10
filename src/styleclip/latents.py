"""Latent codes on disk and which of their layers an edit may change.

In StyleGAN2, W+ rows ``2k`` and ``2k + 1`` drive the ``4·2^k`` px block; in StyleGAN3 each row drives one
layer, whose scale of detail is its cutoff frequency (``StyleLayer.resolution``). Each row's resolution comes
from the generator's ``style_layers``, so "coarse" (4-8 px: pose, face shape), "medium" (16-32 px: features,
hair style, expression) and "fine" (64 px and up: colour, texture) mean the same scales in every generator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import UsageError
from .nets.stylegan2 import Generator

GROUPS = {"coarse": (4, 8), "medium": (16, 32), "fine": (64, 1 << 30)}


def ws_resolution(index: int, G: Generator | None = None) -> int:
    """The resolution W+ row ``index`` belongs to: the lowest among the style layers of ``G`` it drives
    (StyleGAN2's pairing, ``4 * 2 ** (index // 2)``, without a generator)."""
    if G is not None:
        found = [layer.resolution for layer in G.style_layers if layer.w_index == index]
        if found:
            return min(found)
    return 4 * 2 ** (index // 2)


def load_latent(path: str | Path, G: Generator) -> torch.Tensor:
    """Read latents saved by ``styleclip generate``/``edit``/inversion (``.npy``, ``.npz``, ``.pt``) as W+.

    Accepts W ``[w_dim]``/``[N, w_dim]`` and W+ ``[num_ws, w_dim]``/``[N, num_ws, w_dim]``; a ``.pt`` may
    hold the tensor or a dict with one of the keys ``w``, ``ws``, ``latent``, ``latents`` (e4e/PTI keep them
    so). Returns ``[N, num_ws, w_dim]`` float32 on ``G``'s device.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such latent file")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                key = next((k for k in ("ws", "w", "latent", "latents") if k in data), None)
                if key is None:
                    raise UsageError(f"{path}: no 'ws' or 'w' array inside (found {', '.join(data.files)})")
                value = torch.from_numpy(data[key])
        elif path.suffix == ".npy":
            value = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            value = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(value, dict):
                key = next((k for k in ("ws", "w", "latent", "latents") if k in value), None)
                if key is None:
                    raise UsageError(f"{path}: no 'ws', 'w' or 'latent' entry (found {', '.join(map(str, value))})")
                value = value[key]
    except UsageError:
        raise
    except Exception as exc:  # numpy and torch raise many types for unreadable files
        raise UsageError(f"{path}: not a latent file styleclip can read ({type(exc).__name__})") from None
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise UsageError(f"{path}: expected a float array of latents")
    if value.ndim == 1 or (value.ndim == 2 and value.shape[0] == G.num_ws and value.shape[1] == G.w_dim):
        value = value.unsqueeze(0)
    try:
        ws = G.broadcast(value.to(torch.float32))
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None
    if not torch.isfinite(ws).all():
        raise UsageError(f"{path}: the latent holds NaN or infinite values")
    return ws.contiguous().to(G.device)


def _names(G: Generator) -> dict[str, int]:
    return {layer.name: layer.w_index for layer in G.style_layers}


def _help(G: Generator) -> str:
    example = G.style_layers[min(2, len(G.style_layers) - 1)].name
    return f"use all, coarse, medium, fine, W+ rows 0-{G.num_ws - 1} (e.g. 0-3,8) or layer names like {example}"


def select_ws(spec: str | list | tuple | None, G: Generator) -> torch.Tensor:
    """Which W+ rows may change: ``[num_ws]`` bool.

    ``spec``: ``None``/``"all"``, a group (``coarse``, ``medium``, ``fine``), row numbers and ranges
    (``"0-3,8"``), style layer names (``b16.conv0`` selects the row that drives it), comma-separated or a list.
    """
    mask = torch.zeros(G.num_ws, dtype=torch.bool)
    names = _names(G)
    for token in _tokens(spec):
        if token == "all":
            mask[:] = True
        elif token in GROUPS:
            lo, hi = GROUPS[token]
            rows = [i for i in range(G.num_ws) if lo <= ws_resolution(i, G) <= hi]
            if not rows:
                raise UsageError(f"a {G.img_resolution}-px generator has no {token} layers; {_help(G)}")
            mask[rows] = True
        elif re.fullmatch(r"\d+(-\d+)?", token):
            lo, _, hi = token.partition("-")
            lo, hi = int(lo), int(hi or lo)
            if not lo <= hi < G.num_ws:
                raise UsageError(f"W+ rows {token} out of range 0-{G.num_ws - 1}")
            mask[lo : hi + 1] = True
        elif token in names:
            mask[names[token]] = True
        else:
            raise UsageError(f"unknown layer {token!r}: {_help(G)}")
    return mask


def select_style_layers(spec: str | list | tuple | None, G: Generator) -> list[str]:
    """Which StyleSpace layers may change, in synthesis order. Same ``spec`` as :func:`select_ws`; a layer
    name selects that layer alone, a group or W+ row every style layer at those resolutions or on that row."""
    names = _names(G)
    rows = torch.zeros(G.num_ws, dtype=torch.bool)
    chosen = set()
    for token in _tokens(spec):
        if token in names:
            chosen.add(token)
        else:
            rows |= select_ws(token, G)
    return [layer.name for layer in G.style_layers if layer.name in chosen or rows[layer.w_index]]


def _tokens(spec: str | list | tuple | None) -> list[str]:
    if spec is None:
        return ["all"]
    items = spec.split(",") if isinstance(spec, str) else [str(s) for s in spec]
    tokens = [t.strip().lower() if t.strip().lower() in (*GROUPS, "all") else t.strip() for t in items]
    tokens = [t for t in tokens if t]
    if not tokens:
        raise UsageError("empty layer selection: name at least one layer or 'all'")
    return tokens


@dataclass(frozen=True)
class Codes:
    """What draws one picture: W+ ``ws: [N, num_ws, w_dim]`` and, once a StyleSpace edit has been applied,
    the edited ``styles: {layer: [N, channels]}`` that replace ``G.styles(ws)``.

    Edits stack on codes: an edit in W+ (latent optimisation, a mapper) needs ``styles is None``; an edit in
    StyleSpace (a global direction, optimisation in S) starts from :meth:`style_codes`.
    """

    ws: torch.Tensor
    styles: dict[str, torch.Tensor] | None = None

    @property
    def in_stylespace(self) -> bool:
        return self.styles is not None

    def style_codes(self, G: Generator) -> dict[str, torch.Tensor]:
        """StyleSpace codes ``{layer: [N, channels]}``: the edited styles, or those ``ws`` gives."""
        return dict(self.styles) if self.styles is not None else G.styles(self.ws)

    def image(self, G: Generator, **kwargs) -> torch.Tensor:
        """The picture ``[N, C, R, R]`` in about ``[-1, 1]`` (``kwargs`` as :meth:`Generator.synthesize`)."""
        if self.styles is not None:
            return G.synthesis_from_styles(self.styles, **kwargs)
        return G.synthesize(self.ws, **kwargs)

    def cpu(self) -> Codes:
        styles = {k: v.detach().cpu() for k, v in self.styles.items()} if self.styles is not None else None
        return Codes(self.ws.detach().cpu(), styles)

    def to(self, device: torch.device | str) -> Codes:
        styles = {k: v.to(device) for k, v in self.styles.items()} if self.styles is not None else None
        return Codes(self.ws.to(device), styles)

    def arrays(self) -> dict[str, np.ndarray]:
        """``{"ws": ..., "styles/<layer>": ...}`` float32 arrays, for an ``.npz`` file (see :meth:`from_arrays`)."""
        out = {"ws": self.ws.detach().cpu().float().numpy()}
        for name, value in (self.styles or {}).items():
            out[f"styles/{name}"] = value.detach().cpu().float().numpy()
        return out

    @classmethod
    def from_arrays(cls, arrays, G: Generator) -> Codes:
        """The inverse of :meth:`arrays`, checked against ``G`` (shapes, layer names, finite values)."""
        if "ws" not in arrays:
            raise UsageError("no 'ws' array in these codes")
        ws = G.broadcast(torch.from_numpy(np.asarray(arrays["ws"], dtype=np.float32)))
        widths = {layer.name: layer.channels for layer in G.style_layers}
        styles: dict[str, torch.Tensor] = {}
        for key in arrays:
            if not key.startswith("styles/"):
                continue
            name = key[len("styles/") :]
            value = torch.from_numpy(np.asarray(arrays[key], dtype=np.float32))
            if name not in widths or value.shape != (ws.shape[0], widths[name]):
                raise UsageError(f"style codes {name} {list(value.shape)} do not fit this generator")
            styles[name] = value
        if styles and set(styles) != set(widths):
            raise UsageError("these style codes are incomplete for this generator")
        values = [ws, *styles.values()]
        if not all(bool(torch.isfinite(v).all()) for v in values):
            raise UsageError("these codes hold NaN or infinite values")
        return cls(ws.contiguous().to(G.device), {k: v.to(G.device) for k, v in styles.items()} or None)
