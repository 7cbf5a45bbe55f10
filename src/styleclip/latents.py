"""Latent codes on disk and which of their layers an edit may change.

In StyleGAN2, W+ rows ``2k`` and ``2k + 1`` drive the ``4·2^k`` px block; in StyleGAN3 each row drives one
layer, whose scale of detail is its cutoff frequency (``StyleLayer.resolution``). Each row's resolution comes
from the generator's ``style_layers``, so "coarse" (4-8 px: pose, face shape), "medium" (16-32 px: features,
hair style, expression) and "fine" (64 px and up: colour, texture) mean the same scales in every generator.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Callable
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


# What one latent file may make styleclip allocate (the larger of what it reads and the W+ it becomes); no
# latent set a user edits or trains on comes near it (StyleCLIP's 24k training faces are 0.9 GB).
MAX_LATENT_BYTES = 4 << 30
LATENT_KEYS = ("ws", "w", "latent", "latents")
_MAX_PT_PICKLE = 1 << 20  # a latent file's pickle holds a tensor or a small dict, never megabytes of objects


@dataclass(frozen=True)
class _Declared:
    """What a latent file says it holds, read from its header before any array data."""

    shape: tuple[int, ...]
    itemsize: int
    read: Callable[[], torch.Tensor]


def latent_rows(path: str | Path, G: Generator) -> int:
    """How many latents (sources) the file at ``path`` holds, from its header alone; checked as :func:`load_latent`
    checks it (format, dtype, shape, size), so that a caller can bound the work before reading the data."""
    path = Path(path)
    declared = _declare(path)
    return _check_declared(path, declared, G)


def load_latent(path: str | Path, G: Generator, *, max_bytes: int | None = None) -> torch.Tensor:
    """Read latents saved by ``styleclip generate``/``edit``/inversion (``.npy``, ``.npz``, ``.pt``) as W+.

    Accepts W ``[w_dim]``/``[N, w_dim]`` and W+ ``[num_ws, w_dim]``/``[N, num_ws, w_dim]``; a ``.pt`` may
    hold the tensor or a dict with one of the keys ``w``, ``ws``, ``latent``, ``latents`` (e4e/PTI keep them
    so). Returns ``[N, num_ws, w_dim]`` float32 on ``G``'s device.

    Nothing is allocated from what the file declares before it is checked: the ``.npy`` header (or the header of
    the ``.npz`` member and its size in the zip directory, or the logical size of a ``.pt`` tensor, expanded
    views included) must fit ``max_bytes`` (default :data:`MAX_LATENT_BYTES`, at most the memory available),
    and the data must be float, finite and not empty. Pickled object arrays are refused.
    """
    path = Path(path)
    declared = _declare(path, max_bytes)
    _check_declared(path, declared, G, max_bytes)
    try:
        value = declared.read()
    except UsageError:
        raise
    except Exception as exc:  # numpy and torch raise many types for unreadable files
        raise UsageError(f"{path}: not a latent file styleclip can read ({type(exc).__name__})") from None
    if tuple(value.shape) != declared.shape:
        raise UsageError(f"{path}: the latent file is corrupt (its data does not match its header)")
    if value.ndim == 1 or (value.ndim == 2 and value.shape[0] == G.num_ws and value.shape[1] == G.w_dim):
        value = value.unsqueeze(0)
    ws = G.broadcast(value.to(torch.float32)).contiguous()
    if ws.data_ptr() == value.data_ptr():  # a .pt is memory-mapped: keep no view of a file that may change
        ws = ws.clone()
    if not torch.isfinite(ws).all():
        raise UsageError(f"{path}: the latent holds NaN or infinite values")
    return ws.to(G.device)


def _budget(max_bytes: int | None = None) -> int:
    """Bytes a latent file may make styleclip allocate: the limit, or less when the machine has less free."""
    from .hub.formats.budget import available_memory

    limit = MAX_LATENT_BYTES if max_bytes is None else max_bytes
    available = available_memory()
    return limit if available is None else min(limit, available)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB" if n >= 1 << 20 else f"{n:,} bytes"


def _declare(path: Path, max_bytes: int | None = None) -> _Declared:
    if not path.is_file():
        raise UsageError(f"{path}: no such latent file")
    budget = _budget(max_bytes)
    try:
        if path.suffix == ".npz":
            return _declare_npz(path, budget)
        if path.suffix == ".npy":
            return _declare_npy(path)
        return _declare_pt(path, budget)
    except UsageError:
        raise
    except Exception as exc:  # zipfile, numpy and torch raise many types for unreadable files
        raise UsageError(f"{path}: not a latent file styleclip can read ({type(exc).__name__})") from None


def _npy_header(f, path: Path, member: str = "") -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header length) of the ``.npy`` stream ``f``, positioned at its start."""
    where = f"{path}{f' ({member})' if member else ''}"
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(version)
    except (ValueError, EOFError, SyntaxError, TypeError):
        raise UsageError(f"{where}: not a NumPy array file (bad header)") from None
    if dtype.hasobject:
        raise UsageError(f"{where}: holds pickled Python objects, which styleclip never loads; save a float array")
    if dtype.kind != "f":
        raise UsageError(f"{where}: expected a float array of latents, got {dtype}")
    return tuple(int(n) for n in shape), dtype, f.tell()


def _declare_npy(path: Path) -> _Declared:
    with open(path, "rb") as f:
        shape, dtype, header = _npy_header(f, path)
    stored = path.stat().st_size - header
    wanted = math.prod(shape) * dtype.itemsize
    if wanted > stored:  # np.load would allocate the declared size before finding the data missing
        raise UsageError(f"{path}: its header declares {_mib(wanted)} of latents but the file holds {_mib(stored)}")

    def read() -> torch.Tensor:
        return torch.from_numpy(np.load(path, allow_pickle=False))

    return _Declared(shape, dtype.itemsize, read)


def _declare_npz(path: Path, budget: int) -> _Declared:
    with zipfile.ZipFile(path) as zf:
        names = {info.filename: info for info in zf.infolist()}
        key = next((k for k in LATENT_KEYS if f"{k}.npy" in names), None)
        if key is None:
            found = ", ".join(sorted(n.removesuffix(".npy") for n in names)[:10]) or "nothing"
            raise UsageError(f"{path}: no 'ws' or 'w' array inside (found {found})")
        info = names[f"{key}.npy"]
        # the zip directory says how much the member unpacks to: a bomb is refused before inflating a byte
        if info.file_size > budget + (1 << 16):
            raise UsageError(f"{path}: its {key} array unpacks to {_mib(info.file_size)}, more than the "
                             f"{_mib(budget)} a latent file may take")  # fmt: skip
        with zf.open(info) as f:
            shape, dtype, header = _npy_header(f, path, info.filename)
    wanted = math.prod(shape) * dtype.itemsize
    if wanted > info.file_size - header:
        raise UsageError(f"{path}: its {key} array declares {_mib(wanted)} but holds {_mib(info.file_size - header)}")

    def read() -> torch.Tensor:
        # exactly the member checked above (np.load's data[key] would prefer a member named bare "ws")
        with zipfile.ZipFile(path) as zf, zf.open(info) as f:
            return torch.from_numpy(np.lib.format.read_array(f, allow_pickle=False))

    return _Declared(shape, dtype.itemsize, read)


def _declare_pt(path: Path, budget: int) -> _Declared:
    if not zipfile.is_zipfile(path):  # the legacy format allocates every storage at the size its pickle declares
        raise UsageError(f"{path}: not a .npy, .npz or torch.save (zip) latent file; save it with np.save or "
                         "torch.save")  # fmt: skip
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    pickles = [i for i in infos if i.filename.endswith("data.pkl")]
    if any(i.file_size > _MAX_PT_PICKLE for i in pickles):
        raise UsageError(f"{path}: its pickle is {_mib(max(i.file_size for i in pickles))}, far more than a latent "
                         "file holds")  # fmt: skip
    unpacked = sum(i.file_size for i in infos)
    if unpacked > budget + _MAX_PT_PICKLE:
        raise UsageError(f"{path}: unpacks to {_mib(unpacked)}, more than the {_mib(budget)} a latent file may take")
    # mapped, not read: a tensor's size is checked before anything materialises it (an expanded view of a
    # small storage can declare terabytes)
    value = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if isinstance(value, dict):
        key = next((k for k in LATENT_KEYS if k in value), None)
        if key is None:
            found = ", ".join(sorted(map(str, value))[:10]) or "nothing"
            raise UsageError(f"{path}: no 'ws', 'w' or 'latent' entry (found {found})")
        value = value[key]
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise UsageError(f"{path}: expected a float array of latents")
    tensor = value
    return _Declared(tuple(tensor.shape), tensor.element_size(), lambda: tensor)


def _check_declared(path: Path, declared: _Declared, G: Generator, max_bytes: int | None = None) -> int:
    """The number of latents ``declared`` holds for ``G``; refuses a wrong shape, no latents, or too many bytes."""
    shape, num_ws, w_dim = declared.shape, G.num_ws, G.w_dim
    if shape in ((w_dim,), (num_ws, w_dim)):
        rows = 1
    elif len(shape) in (2, 3) and shape[1:] in ((w_dim,), (num_ws, w_dim)):
        rows = shape[0]
    else:
        raise UsageError(f"{path}: latent must be W [N, {w_dim}] or W+ [N, {num_ws}, {w_dim}] for this generator, "
                         f"got {list(shape)}")  # fmt: skip
    if rows == 0:
        raise UsageError(f"{path}: the latent file holds no latents (shape {list(shape)})")
    budget = _budget(max_bytes)
    wanted = max(math.prod(shape) * declared.itemsize, rows * num_ws * w_dim * 4)
    if wanted > budget:
        raise UsageError(f"{path}: {rows:,} latents take {_mib(wanted)}, more than the {_mib(budget)} a latent file "
                         "may take; split the file")  # fmt: skip
    return rows


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
