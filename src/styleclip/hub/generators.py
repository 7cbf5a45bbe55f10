"""``load_generator`` / ``save_generator``: any supported StyleGAN2 checkpoint in, a ready Generator out."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from ..errors import CheckpointError, StyleclipError
from ..nets.stylegan2 import Generator
from ..nets.stylegan3 import Generator3
from ..utils.devices import resolve_device
from ..utils.memory import keep_freed_memory
from .formats import detect, native, nvidia_pkl, rosinality, tf_pkl
from .formats.budget import check_budget, iter_tensors
from .formats.safe_pickle import restricted_load
from .formats.torchfile import load_torch_file
from .resolve import exists, is_url, resolve_path


def load_generator(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    which: str = "G_ema",
    keep_memory: bool | None = None,
    cache: str | Path | None = None,
    offline: bool | None = None,
) -> Generator:
    """Load a StyleGAN2 or StyleGAN3 generator, whatever format its file is in.

    Args:
        name_or_path: a catalogue name (``ffhq``, ``afhqdog``, ``stylegan2-tf:ffhq``; see
            ``styleclip models list``), an http(s) URL, or a checkpoint path - NVIDIA
            stylegan2-ada-pytorch or stylegan3 ``.pkl`` (StyleGAN3 T and R load as :class:`Generator3`), an original TensorFlow StyleGAN2(-ADA) ``.pkl``, a
            rosinality/StyleCLIP/e4e ``.pt``, or styleclip's ``.safetensors``. Names and URLs are
            downloaded into the verified cache. The format is detected from the bytes; pickles are
            read without running any code.
        device: 'cpu', 'cuda', 'mps', a torch.device, or None for the best available.
        which: 'G_ema' (the averaged generator every release uses) or 'G' (the raw training one).
        keep_memory: keep freed buffers in the process instead of returning them to the OS
            (see :func:`styleclip.utils.memory.keep_freed_memory`); None = on unless
            ``STYLECLIP_KEEP_MEMORY=0``.
        cache: download cache folder (default ``$STYLECLIP_HOME`` or ``~/.cache/styleclip``).
        offline: never touch the network (default ``$STYLECLIP_OFFLINE``).

    Returns:
        The generator in eval mode, with ``requires_grad`` off for every parameter (editing never
        trains it), on ``device``; ``G.meta`` records the source file and format, and for catalogue names
        the asset name, its ``domain`` ('face', 'dog', ...) and defaults.
    """
    keep_freed_memory(keep_memory)
    path = resolve_path(name_or_path, kind="generator", cache=cache, offline=offline)
    G, fmt = read_generator_file(path, which=which)
    G.meta.update({"source": str(path), "format": fmt})
    asset = _catalogue_entry(name_or_path)
    if asset is not None:  # the catalogue knows its domain (face generators get the identity loss) and defaults
        G.meta.update({"asset": asset.name, "domain": asset.domain, "defaults": dict(asset.defaults)})
        if "adapted" in asset.defaults:  # a published adapted model records its base as a trained run does
            base = {"fingerprint": None, "name": asset.defaults.get("base"), "source": None}
            G.meta["adapted"] = {**asset.defaults["adapted"], "base": base}
    return G.eval().requires_grad_(False).to(resolve_device(device))


def _catalogue_entry(name_or_path: str | Path):
    from .registry import find_asset

    path = Path(str(name_or_path)).expanduser()
    if isinstance(name_or_path, Path) or is_url(name_or_path) or (exists(path) and not path.is_dir()):
        return None
    return find_asset(str(name_or_path))


def read_generator_file(path: Path, which: str = "G_ema") -> tuple[Generator, str]:
    """``(generator on CPU, format name)`` for a local checkpoint file."""
    if which not in ("G_ema", "G"):
        raise CheckpointError(f"which must be 'G_ema' or 'G', got {which!r}")
    fmt = detect.detect_format(path)
    try:
        return _read(path, fmt, which)
    except StyleclipError as exc:  # the config checks raise UsageError
        text = str(exc)
        raise CheckpointError(text if text.startswith(str(path)) else f"{path}: {text}") from None
    except MemoryError:
        raise CheckpointError(f"{path}: the file declares tensors too large to load") from None
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, ArithmeticError, RuntimeError) as exc:
        # A file that unpickles but is malformed inside: say so, never show a traceback from torch.
        raise CheckpointError(
            f"{path}: not a valid {fmt} StyleGAN2 checkpoint ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def _read(path: Path, fmt: str, which: str) -> tuple[Generator, str]:
    if fmt == detect.NATIVE:
        return native.load_native(path), "styleclip-safetensors"
    if fmt in (detect.TORCH_ZIP, detect.TORCH_LEGACY):
        data = _torch_load(path, zipped=fmt == detect.TORCH_ZIP)
        if rosinality.is_rosinality(data):
            return rosinality.generator_from_rosinality(data, which=which), "rosinality"
        raise CheckpointError("a PyTorch file, but not a StyleGAN2 generator checkpoint styleclip knows")
    data = _pickle_load(path)
    check_budget(iter_tensors(data), path)  # before any view of the pickle's storages is copied
    if nvidia_pkl.is_network_snapshot(data):
        G = nvidia_pkl.generator_from_snapshot(data, which=which)
        return G, "stylegan3-pytorch" if isinstance(G, Generator3) else "stylegan2-ada-pytorch"
    if tf_pkl.is_tf_snapshot(data):
        return tf_pkl.generator_from_tf(data, which=which), "stylegan2-tensorflow"
    raise CheckpointError(f"a pickle, but not a StyleGAN2 network snapshot (found {type(data).__name__})")


def save_generator(G: Generator, path: str | Path) -> Path:
    """Save ``G`` in styleclip's format (one ``.safetensors`` file with the JSON config in its metadata)."""
    return native.save_native(G, path)


def _pickle_load(path: Path):
    try:
        with open(path, "rb") as f:
            return restricted_load(f)
    except (CheckpointError, MemoryError):
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, RuntimeError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"the file is truncated or corrupt ({type(exc).__name__}); download it again") from None


def _torch_load(path: Path, zipped: bool):
    return load_torch_file(path, detect.TORCH_ZIP if zipped else detect.TORCH_LEGACY)
