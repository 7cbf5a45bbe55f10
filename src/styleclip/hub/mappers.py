"""``load_mapper`` / ``save_mapper``: StyleCLIP's published mapper files and styleclip's own format.

Official files are ``torch.save({'state_dict': ..., 'opts': {...}})`` (read with ``weights_only=True``): the
mapper under ``mapper.course_mapping.*`` (sic), ``mapper.medium_mapping.*`` and optionally
``mapper.fine_mapping.*`` (afro, angry, bobcut, bowlcut, curly_hair, mohawk and surprised have none), and the
whole rosinality generator they were trained with under ``decoder.*``. Ours is one ``.safetensors`` file: the
mapper's weights, its config as JSON and the fingerprint of the generator it was trained with.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from ..errors import CheckpointError, StyleclipError
from ..nets.mapper import LatentMapper, MapperConfig
from ..nets.stylegan2 import Generator
from ..stylespace import generator_fingerprint
from ..utils.devices import resolve_device
from ..utils.files import atomic_write_bytes
from .formats import detect
from .formats.safetensors_check import check_safetensors
from .formats.state import load_exact, numel

FORMAT_TAG = "styleclip.mapper"
OFFICIAL_GROUPS = {"course_mapping": "coarse", "medium_mapping": "medium", "fine_mapping": "fine"}
OPTIMIZER_PREFIX = "optimizer."  # training checkpoints carry the optimiser's tensors under this prefix


def load_mapper(
    name_or_path: str | Path,
    generator: Generator | str | Path | None = None,
    device: str | torch.device | None = None,
    check_generator: bool = True,
    cache: str | Path | None = None,
    offline: bool | None = None,
) -> LatentMapper:
    """Load a latent mapper and pair it with its generator.

    Args:
        name_or_path: a catalogue name (``styleclip-mapper:mohawk``; ``mohawk`` works too), an http(s) URL,
            an official StyleCLIP ``.pt`` or a styleclip ``.safetensors`` (final or training checkpoint).
        generator: the generator to edit with (object, name or path). None = the one inside an official
            file, or the one a styleclip file names. A given one must be the network the mapper was trained
            with (compared by weights), unless ``check_generator`` is False (e.g. StyleCLIP's FFHQ mappers on
            NVIDIA's ADA FFHQ generator, where users found ``strength`` 1.5 works).
        device: where the mapper and generator go (None = best available).

    Returns:
        The :class:`LatentMapper` in eval mode with ``requires_grad`` off; ``mapper.generator`` holds the paired
        generator and ``mapper.meta`` the prompt (``meta['prompt']``), source and format.
    """
    from .generators import load_generator
    from .resolve import resolve_path

    text = str(name_or_path)
    if not Path(text).expanduser().is_file() and ":" not in text and "/" not in text and "." not in text:
        text = f"styleclip-mapper:{text}"  # bare names of the published mappers
    path = resolve_path(text, kind="mapper", cache=cache, offline=offline)
    mapper, embedded = read_mapper_file(path)
    dev = resolve_device(device)
    given = load_generator(generator, device=dev, cache=cache, offline=offline) if _is_name(generator) else generator
    if given is not None:
        if check_generator:
            check_pairing(mapper, given, embedded, path)
        elif (given.num_ws, given.w_dim) != (mapper.num_ws, mapper.w_dim):
            raise CheckpointError(
                f"{path}: the mapper edits W+ [{mapper.num_ws}, {mapper.w_dim}], the generator has "
                f"[{given.num_ws}, {given.w_dim}]"
            )
        G = given
    elif embedded is not None:
        G = embedded.eval().requires_grad_(False).to(dev)
        G.meta.update({"source": str(path), **_catalogue_generator_meta(text)})
    else:
        recorded = mapper.meta.get("generator") or {}
        source = recorded.get("source") or recorded.get("name")
        if not source or not (Path(source).exists() or ":" in source or "/" not in source):
            raise CheckpointError(f"{path}: no generator inside; pass the one it was trained with (--generator)")
        G = load_generator(source, device=dev, cache=cache, offline=offline)
        check_pairing(mapper, G, None, path)
    mapper.meta.update({"source": str(path), "name": str(name_or_path)})
    mapper.attach_generator(G)
    return mapper.eval().requires_grad_(False).to(dev)


def _catalogue_generator_meta(name: str) -> dict:
    """For a catalogue mapper, what the catalogue says about the generator inside it (domain, encoder, ...), so
    that photos get FFHQ alignment and e4e, and faces the identity score."""
    from .registry import find_asset

    asset = find_asset(name)
    paired = find_asset(asset.defaults.get("generator", "")) if asset is not None else None
    if paired is None:
        return {"domain": asset.domain} if asset is not None else {}
    return {"asset": paired.name, "domain": paired.domain, "defaults": dict(paired.defaults)}


def _is_name(generator) -> bool:
    return isinstance(generator, str | Path)


def check_pairing(mapper: LatentMapper, G: Generator, embedded: Generator | None, path: Path) -> None:
    """Refuse a generator other than the mapper's own (its embedded decoder, or its recorded fingerprint)."""
    hint = "omit --generator to use the mapper's own, or pass --allow-other-generator to force it"
    if (G.num_ws, G.w_dim) != (mapper.num_ws, mapper.w_dim):
        raise CheckpointError(
            f"{path}: the mapper edits W+ [{mapper.num_ws}, {mapper.w_dim}], the generator has "
            f"[{G.num_ws}, {G.w_dim}]; use the generator it was trained with"
        )
    if embedded is not None:
        if not same_network(embedded, G):
            raise CheckpointError(f"{path}: the mapper was trained with another generator than the one given; {hint}")
        return
    recorded = (mapper.meta.get("generator") or {}).get("fingerprint")
    if recorded and recorded != generator_fingerprint(G):
        raise CheckpointError(
            f"{path}: the mapper was trained with generator {recorded}, the one given is "
            f"{generator_fingerprint(G)}; {hint}"
        )


def same_network(a: Generator, b: Generator) -> bool:
    """Same weights, tensor by tensor. ``w_avg`` is left out (the rosinality decoder inside a mapper file has
    none, so it is estimated from samples there), and so are settings that are not weights (fp16 layers,
    clamping), which differ between file formats of one network."""
    sa, sb = a.state_dict(), b.state_dict()
    if set(sa) != set(sb):
        return False
    for name, t in sa.items():
        other = sb[name]
        if name == "mapping.w_avg" or name.endswith("resample_filter"):
            continue
        if other.shape != t.shape:
            return False
        if not torch.allclose(t.detach().cpu().float(), other.detach().cpu().float(), rtol=1e-5, atol=1e-6):
            return False
    return True


def read_mapper_file(path: Path) -> tuple[LatentMapper, Generator | None]:
    """``(mapper on CPU, embedded generator or None)`` for a local file, with one-line errors."""
    from .generators import _torch_load

    fmt = detect.detect_format(path)
    try:
        if fmt == detect.NATIVE:
            return _read_native(path), None
        if fmt in (detect.TORCH_ZIP, detect.TORCH_LEGACY):
            return _read_official(_torch_load(path, zipped=fmt == detect.TORCH_ZIP))
    except StyleclipError as exc:  # the config checks raise UsageError
        text = str(exc)
        raise CheckpointError(text if text.startswith(str(path)) else f"{path}: {text}") from None
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, RuntimeError, ArithmeticError) as exc:
        raise CheckpointError(
            f"{path}: not a valid mapper checkpoint ({type(exc).__name__}: {str(exc)[:160]})"
        ) from None
    raise CheckpointError(f"{path}: not a mapper checkpoint (a StyleCLIP .pt or a styleclip .safetensors)")


def _read_official(data) -> tuple[LatentMapper, Generator | None]:
    from .formats.rosinality import generator_from_rosinality

    sd = data.get("state_dict") if isinstance(data, dict) else None
    if not isinstance(sd, dict) or not any(str(k).startswith("mapper.") for k in sd):
        raise CheckpointError("a PyTorch file, but not a StyleCLIP mapper (no state_dict with mapper.* keys)")
    opts = data.get("opts") if isinstance(data.get("opts"), dict) else {}
    tensors, groups, layers = {}, [], set()
    for key, value in sd.items():
        if not key.startswith("mapper."):
            continue
        m = re.fullmatch(r"mapper\.(\w+?)\.mapping\.(\d+)\.(weight|bias)", key)
        if m is None or m.group(1) not in OFFICIAL_GROUPS:
            raise CheckpointError(f"unknown mapper tensor {key!r} (only StyleCLIP's LevelsMapper is supported)")
        group = OFFICIAL_GROUPS[m.group(1)]
        if group not in groups:
            groups.append(group)
        layers.add(int(m.group(2)))
        tensors[f"groups.{group}.mapping.{m.group(2)}.{m.group(3)}"] = value
    weights = [v for k, v in tensors.items() if k.endswith("weight")]
    if not weights or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise CheckpointError("a StyleCLIP mapper file whose mapper.* entries are not weight tensors")
    w_dim = int(weights[0].shape[1])
    G = generator_from_rosinality(data) if any(str(k).startswith("decoder.") for k in sd) else None
    # Without a decoder the W+ height follows from StyleCLIP's --stylegan_size (2·log2(size) - 2 rows).
    size = opts.get("stylegan_size", 1024)
    if G is None and (
        not isinstance(size, int) or isinstance(size, bool) or size < 4 or size > 1 << 15 or size & (size - 1)
    ):
        raise CheckpointError(f"the mapper's stylegan_size {str(size)[:20]!r} is not a power of two from 4 to 32768")
    num_ws = G.num_ws if G is not None else 2 * round(math.log2(size)) - 2
    order = [g for g in OFFICIAL_GROUPS.values() if g in groups]
    config = MapperConfig(w_dim=w_dim, num_ws=num_ws, groups=tuple(order), num_layers=max(layers))
    mapper = build_mapper(config, tensors, "StyleCLIP mapper")
    load_exact(mapper, tensors, source="StyleCLIP mapper")
    prompt = opts.get("description")
    mapper.meta.update({"format": "styleclip-official", "prompt": prompt if isinstance(prompt, str) else None})
    if G is not None:
        G.meta.update({"format": "rosinality (inside a StyleCLIP mapper)"})
        mapper.meta["generator"] = {"fingerprint": generator_fingerprint(G)}
    return mapper, G


def build_mapper(config: MapperConfig, tensors: dict[str, torch.Tensor], source: str) -> LatentMapper:
    """Construct the mapper ``config`` declares only if ``tensors`` hold enough values to fill it: a few bytes of
    config could otherwise declare layers and widths of many gigabytes, allocated before any tensor is compared."""
    config.check()
    needed = config.num_values()
    available = numel(tensors.values())
    if needed > available:
        raise CheckpointError(
            f"{source} declares a mapper of {needed} values ({config.num_layers} layers of width {config.w_dim}) "
            f"but holds only {available}; use the file as it was saved"
        )
    return LatentMapper(config)


def _read_native(path: Path) -> LatentMapper:
    check_safetensors(path)  # sizes and byte ranges, before the library reads a tensor
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys() if not k.startswith(OPTIMIZER_PREFIX)}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"unreadable safetensors file ({str(exc)[:120]}); re-create or re-download it") from None
    if metadata.get("format") != FORMAT_TAG:
        raise CheckpointError("a safetensors file, but not a styleclip mapper (a generator? pass it as --generator)")
    config = MapperConfig.from_dict(json.loads(metadata["config"]))
    meta = json.loads(metadata.get("meta") or "{}")
    mapper = build_mapper(config, tensors, str(path))
    load_exact(mapper, tensors, source=str(path))
    mapper.meta.update(meta if isinstance(meta, dict) else {})
    mapper.meta["format"] = "styleclip-safetensors"
    return mapper


def save_mapper(
    mapper: LatentMapper,
    path: str | Path,
    meta: dict | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``mapper`` (float32 weights, JSON config and ``meta``) atomically as one ``.safetensors`` file.

    ``extra_tensors`` (names starting with ``optimizer.``) and ``extra_metadata`` let training checkpoints
    carry their optimiser state in the same file; :func:`load_mapper` ignores them.
    """
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in mapper.state_dict().items()}
    for key, value in (extra_tensors or {}).items():
        if not key.startswith(OPTIMIZER_PREFIX):
            raise ValueError(f"extra tensor names must start with {OPTIMIZER_PREFIX!r}: {key}")
        tensors[key] = value.detach().cpu().contiguous()
    metadata = {
        "format": FORMAT_TAG,
        "config": json.dumps(mapper.config.to_dict()),
        "meta": json.dumps(meta if meta is not None else mapper.meta, default=str),
        **(extra_metadata or {}),
    }
    return atomic_write_bytes(Path(path), safetensors_bytes(tensors, metadata=metadata))
