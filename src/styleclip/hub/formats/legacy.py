"""Checking a legacy (pre-1.6) ``torch.save`` stream before torch reads it.

torch's legacy reader allocates every storage at the size the pickle *declares*, and only then reads its bytes;
a few hundred bytes can so declare a terabyte. The same format is nested inside NVIDIA's network pickles (one
per storage, through ``torch.storage._load_from_bytes``). This scan unpickles the stream's records with
stand-ins for every global - nothing is imported or called - and compares each declared storage with the bytes
that follow, so that a forged size is refused before torch allocates anything.
"""

from __future__ import annotations

import io
import pickle
import struct
import warnings
from typing import Any, BinaryIO

import torch

from ...errors import CheckpointError


class _Inert(dict):
    """Stands in for any global while scanning: accepts any construction, item or state, and does nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass


class _StorageType:
    def __init__(self, name: str, itemsize: int) -> None:
        self.name, self.itemsize = name, itemsize


def _storage_type(name: str) -> _StorageType | None:
    if name == "UntypedStorage":
        return _StorageType(name, 1)
    kind = getattr(torch, name, None)
    if not name.endswith("Storage") or kind is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "TypedStorage is deprecated": it is what the file names
            dtype = kind.dtype
    except Exception:  # any class without a dtype is not a storage type we know
        return None
    return _StorageType(name, torch.empty((), dtype=dtype).element_size()) if isinstance(dtype, torch.dtype) else None


class _Scanner(pickle.Unpickler):
    def __init__(self, f: BinaryIO) -> None:
        super().__init__(f)
        self.storages: dict[str, tuple[_StorageType, int]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module in ("torch", "torch.cuda"):  # files saved from a GPU before torch 1.6 name torch.cuda.*Storage
            found = _storage_type(name)
            if found is not None:
                return found
        return _Inert

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            kind, key, numel = pid[1], pid[2], pid[4]
            if not isinstance(kind, _StorageType) or not isinstance(numel, int) or numel < 0:
                raise CheckpointError("a tensor storage record names no storage type or size")
            self.storages[str(key)] = (kind, numel)
        return _Inert()


def check_legacy_stream(f: BinaryIO, total: int, where: str = "the file") -> None:
    """Refuse a legacy ``torch.save`` stream (``f`` at its start, ``total`` bytes long) whose storages declare
    more bytes than it holds. ``f`` is left at an unspecified position."""
    try:
        for _ in range(3):  # magic number, protocol version, system info
            _Scanner(f).load()
        main = _Scanner(f)
        main.load()
        keys = _Scanner(f).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise CheckpointError(f"{where}: truncated or corrupt ({type(exc).__name__}); download it again") from None
    except MemoryError:  # the unpickler allocates what a bytes record declares before reading it
        raise CheckpointError(f"{where}: declares data far larger than it holds; it is not a checkpoint") from None
    if not isinstance(keys, list):
        raise CheckpointError(f"{where}: truncated or corrupt (no storage list); download it again")
    for key, (kind, numel) in main.storages.items():
        if numel * kind.itemsize > total:
            raise CheckpointError(
                f"{where}: tensor storage {key} declares {numel} values but the data holds only {total} bytes "
                "(a forged or truncated checkpoint); use the file as its publisher released it"
            )
    for key in keys:
        declared = main.storages.get(str(key))
        header = f.read(8)
        if declared is None or len(header) < 8:
            raise CheckpointError(f"{where}: truncated or corrupt (storage {key}); download it again")
        kind, numel = declared
        (stored,) = struct.unpack("<q", header)
        if stored != numel or f.tell() + numel * kind.itemsize > total:
            raise CheckpointError(
                f"{where}: tensor storage {key} declares {numel} values but the data holds fewer "
                "(a forged or truncated checkpoint); use the file as its publisher released it"
            )
        f.seek(numel * kind.itemsize, io.SEEK_CUR)
