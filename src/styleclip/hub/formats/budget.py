"""How much memory a checkpoint makes styleclip allocate, and whether its weights are finite, checked before use.

A loaded checkpoint holds tensors that are still views of the bytes read from the file. A crafted file can make
those views far larger than the file: a stride-0 (``expand``-ed) tensor, or many tensors over one storage, cost
nothing until something copies them (``.float()``, ``.reshape()``, ``copy_``) and then need their full size. So
the size of every tensor *as it will be materialised* is added up and compared with what the file can honestly
hold (a few times its size, for dtype widening, plus a fixed allowance) and with the machine's available memory,
before any network is built or any tensor copied.
"""

from __future__ import annotations

import argparse
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import CheckpointError

# A checkpoint's tensors may grow when converted (float16 -> float32 doubles them); beyond that, a tensor bigger
# than the bytes it came from is an expanded view or a shared storage counted twice.
GROWTH = 4
ALLOWANCE = 256 << 20
_MAX_DEPTH = 64


def available_memory() -> int | None:
    """Bytes the kernel says can be allocated without swapping (``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def file_limit(file_size: int) -> int:
    """Bytes of tensors a file of ``file_size`` bytes may honestly make styleclip allocate."""
    return GROWTH * max(int(file_size), 0) + ALLOWANCE


def materialised_bytes(value: torch.Tensor | np.ndarray) -> int:
    """Bytes ``value`` takes once copied into its own contiguous memory (what ``.contiguous()`` would allocate)."""
    if isinstance(value, torch.Tensor):
        return int(value.numel()) * int(value.element_size())
    return int(value.size) * int(value.itemsize)


def iter_tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor | np.ndarray]]:
    """Every tensor and NumPy array reachable from a loaded checkpoint, with a dotted name saying where it is.

    Walks dicts, lists, tuples, namespaces and the plain-data network records of :mod:`.safe_pickle`; an object
    reached twice (a pickle may build cycles or share one object) is visited once.
    """
    from .safe_pickle import PersistentRecord, TFNetworkRecord, _ArrayBuilder

    seen: set[int] = set()
    stack: list[tuple[str, Any, int]] = [(prefix, obj, 0)]
    while stack:
        name, value, depth = stack.pop()
        if isinstance(value, torch.Tensor | np.ndarray):
            yield name or "<root>", value
            continue
        if isinstance(value, str | bytes | int | float | bool | type(None)) or id(value) in seen:
            continue
        seen.add(id(value))
        if depth > _MAX_DEPTH:
            raise CheckpointError("the file's objects nest too deeply (a cycle?)")
        children: Iterable[tuple[str, Any]]
        if isinstance(value, _ArrayBuilder):
            children = [("", value.array)]
        elif isinstance(value, dict):
            children = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, list | tuple | set | frozenset):
            children = [(str(i), v) for i, v in enumerate(value)]
        elif isinstance(value, argparse.Namespace):
            children = list(vars(value).items())
        elif isinstance(value, PersistentRecord):
            children = [
                *value.parameters.items(),
                *value.buffers.items(),
                *value.modules.items(),
                *value.attributes.items(),
            ]
        elif isinstance(value, TFNetworkRecord):
            children = list(value.state.items())
        else:
            continue
        for key, child in children:
            stack.append((f"{name}.{key}" if name and key else name or key, child, depth + 1))


def human_size(n: int) -> str:
    """``n`` bytes as people read them in a message: ``37.8 GiB``, ``12.0 MiB``."""
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    return f"{n / (1 << 20):.1f} MiB"


def _storage(value: object) -> tuple[int, int] | None:
    """``(identity, bytes)`` of the memory a torch tensor views, or None for what owns its memory."""
    if not isinstance(value, torch.Tensor) or value.device.type == "meta":
        return None
    storage = value.untyped_storage()
    return storage.data_ptr(), storage.nbytes()


def check_budget(
    tensors: Iterable[tuple[str, torch.Tensor | np.ndarray]], path: Path | str, file_size: int | None = None
) -> int:
    """Refuse, in one line naming the culprit tensor, a file whose tensors would take more memory than it can hold.

    Returns the bytes the tensors take once materialised.
    """
    path = Path(path)
    size = path.stat().st_size if file_size is None else file_size
    total, largest, largest_name = 0, -1, ""
    views: dict[int, list] = {}  # storage -> [bytes stored, bytes its views materialise, views, first name]
    for name, value in tensors:
        n = materialised_bytes(value)
        total += n
        if n > largest:
            largest, largest_name = n, name
        storage = _storage(value)
        if storage is not None:
            entry = views.setdefault(storage[0], [storage[1], 0, 0, name])
            entry[1] += n
            entry[2] += 1
    limit = file_limit(size)
    if total > limit:
        stored, grown, count, name = max(views.values(), key=lambda e: e[1] - e[0], default=(0, 0, 0, ""))
        if grown > stored and count > 1:
            culprit = (
                f"{count} tensors ({name}, ...) view one {human_size(stored)} storage and would take "
                f"{human_size(grown)} (shared-storage tensors)"
            )
        elif grown > stored:
            culprit = (
                f"tensor {name} views {human_size(stored)} of data as {human_size(grown)} "
                "(an expanded or overlapping-stride tensor)"
            )
        else:
            culprit = f"the largest is {largest_name}, {human_size(largest)}"
        raise CheckpointError(
            f"{path}: refusing to load: its tensors would take {human_size(total)} in memory from a "
            f"{human_size(size)} file; {culprit}; use the checkpoint as its publisher released it"
        )
    available = available_memory()
    held = sum(entry[0] for entry in views.values())  # already in memory: the reader has loaded the storages
    more = total - held  # what copying the views out would still allocate
    if available is not None and more > available:
        raise CheckpointError(
            f"{path}: using it needs {human_size(more)} more memory and only {human_size(available)} is available "
            f"(largest tensor: {largest_name}); close other programs or use a machine with more memory"
        )
    return total


def is_finite(value: torch.Tensor | np.ndarray) -> bool:
    """Whether every value is finite; integer tensors always are.

    The float64 sum of float32 values is finite exactly when every value is (it cannot overflow), so no mask the size
    of the tensor is allocated; 16-bit tensors are summed in float64 by chunks of 4M values (32 MB at a time); float64 tensors, whose sum can overflow, are checked value by value.
    """
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fc" or value.size == 0:
            return True
        if value.dtype.kind == "c":
            value = np.stack([value.real, value.imag])
        if value.dtype.itemsize >= 8:
            return bool(np.isfinite(value).all())
        return bool(np.isfinite(value.sum(dtype=np.float64)))
    if not (value.is_floating_point() or value.is_complex()):
        return True
    if value.numel() == 0:
        return True
    if value.is_complex():
        value = torch.view_as_real(value)
    if value.dtype == torch.float64:
        return bool(torch.isfinite(value).all())
    if value.dtype != torch.float32:  # a float64 sum of fp16/bf16 would first copy the tensor to float64
        return all(bool(torch.isfinite(c.double().sum())) for c in value.reshape(-1).split(1 << 22))
    return bool(torch.isfinite(value.sum(dtype=torch.float64)))


def check_finite(tensors: Iterable[tuple[str, torch.Tensor | np.ndarray]], source: str) -> None:
    """Refuse, naming the first tensor, weights that hold NaN or Inf (a corrupt file or a diverged training run)."""
    for name, value in tensors:
        if not is_finite(value):
            raise CheckpointError(
                f"{source}: tensor {name} holds NaN or Inf values (a corrupt file or a diverged training run); "
                "use another checkpoint"
            )


def refuse_zip_bomb(path: Path) -> None:
    """Refuse a zip whose entries unpack to far more than the file (torch stores tensors uncompressed)."""
    try:
        with zipfile.ZipFile(path) as zf:
            unpacked = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise CheckpointError("the file is truncated or corrupt (bad zip archive); download it again") from None
    if unpacked > max(4 * path.stat().st_size, 64 << 20):
        raise CheckpointError(f"refusing to load: the archive unpacks to {unpacked >> 20} MiB from a much smaller file")
