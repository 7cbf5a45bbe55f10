"""PyTorch ``.pt`` files read with ``weights_only=True``, bounded in memory, with one-line errors.

Before torch reads anything: a zip archive may not unpack to much more than its size (torch stores tensors
uncompressed), and a legacy stream may not declare storages larger than its bytes (see :mod:`.legacy`). After
loading, no tensor has been copied yet; :func:`load_torch_file` then adds up what every tensor would take once
materialised (see :mod:`.budget`) before handing the data on.
"""

from __future__ import annotations

import argparse
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from ...errors import CheckpointError
from . import detect
from .budget import check_budget, iter_tensors, refuse_zip_bomb
from .legacy import check_legacy_stream


def load_torch_file(path: Path, fmt: str | None = None) -> Any:
    """The object ``torch.save`` wrote to ``path``, read without running code and checked against its size.

    Errors are :class:`CheckpointError` without the path (callers prefix it) except the memory check's, which
    names it.
    """
    fmt = fmt or detect.detect_format(path)
    if fmt == detect.TORCH_ZIP:
        refuse_zip_bomb(path)
    elif fmt == detect.TORCH_LEGACY:
        with open(path, "rb") as f:
            check_legacy_stream(f, path.stat().st_size)
    else:
        raise CheckpointError("not a PyTorch file (expected a .pt written by torch.save)")
    try:
        # Training checkpoints of rosinality's code carry their argparse options.
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(refusal(exc)) from None
    except RuntimeError as exc:
        if "does not match expected size" in str(exc):
            raise CheckpointError(
                "a tensor declares more bytes than the archive holds for it (a forged or truncated checkpoint); "
                "download it again"
            ) from None
        raise CheckpointError(f"the file is truncated or corrupt ({type(exc).__name__}); download it again") from None
    except (EOFError, OSError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"the file is truncated or corrupt ({type(exc).__name__}); download it again") from None
    except MemoryError:  # a record that declares more than the machine has, allocated before it is read
        raise CheckpointError("the file declares data far larger than it holds; it is not a checkpoint") from None
    check_budget(iter_tensors(data), path)
    return data


_GLOBAL = re.compile(r"GLOBAL\s+([\w.]+)")


def refusal(exc: BaseException) -> str:
    """One line saying what torch's ``weights_only`` reader refused: the global it names, not torch's advice to
    turn the protection off."""
    text = str(exc)
    found = _GLOBAL.search(text)
    if found:
        return (
            f"refusing {found.group(1)}: the file asks for it, and it is not plain tensor data "
            "(styleclip never runs code from a checkpoint); use a checkpoint that holds only weights"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = next(
        (ln for ln in lines if not ln.startswith(("Weights only load failed", "Check the documentation", "Please"))),
        "",
    )
    if not detail or "weights_only" in detail:
        detail = "content that is not plain tensor data"
    return f"refusing to load: the file holds {detail[:200].rstrip('.')} (styleclip never runs code from a checkpoint)"


def load_weights_file(path: Path) -> Any:
    """The tensors of a weights file of any layout styleclip reads for auxiliary networks (CLIP): a TorchScript
    archive (read without running it), a ``.safetensors`` file or a ``torch.save`` file, checked against its
    size. Errors are one line naming ``path``."""
    from .safetensors_check import check_safetensors
    from .torchscript import is_torchscript, torchscript_state_dict

    fmt = detect.detect_format(path)
    try:
        if fmt == detect.TORCH_ZIP and is_torchscript(path):
            data: Any = torchscript_state_dict(path)
            check_budget(iter_tensors(data), path)
        elif fmt == detect.NATIVE:
            check_safetensors(path)
            from safetensors.torch import load_file

            try:
                data = load_file(str(path))
            except Exception as exc:  # safetensors raises its own error types for corrupt files
                raise CheckpointError(f"unreadable safetensors file ({str(exc)[:120]}); download it again") from None
        elif fmt in (detect.TORCH_ZIP, detect.TORCH_LEGACY):
            data = load_torch_file(path, fmt)
        else:
            raise CheckpointError(
                "a pickle (an NVIDIA network?), not a weights file; pass a .pt, .safetensors or TorchScript file"
            )
    except CheckpointError as exc:
        text = str(exc)
        raise CheckpointError(text if text.startswith(str(path)) else f"{path}: {text}") from None
    except MemoryError:
        raise CheckpointError(
            f"{path}: the file declares data far larger than it holds; it is not a checkpoint"
        ) from None
    return data
