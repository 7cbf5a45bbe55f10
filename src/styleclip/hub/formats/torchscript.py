"""Weights out of a TorchScript archive (OpenAI's released CLIP ``.pt`` files) without running it.

``torch.jit.load`` compiles and runs the archive's code. We only need its tensors: the archive's
``data.pkl`` pickles the module tree as ``__torch__.*`` objects whose attributes are sub-modules and
tensors, with each tensor's bytes stored as a separate zip entry. This reader rebuilds those tensors
and flattens the tree into an ordinary ``state_dict``; every other global is refused.
"""

from __future__ import annotations

import collections
import pickle
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from ...errors import CheckpointError
from .safe_pickle import UnsafePickleError, _rebuild_tensor


class _ScriptObject:
    """Stand-in for any ``__torch__.*`` class: keeps the attributes, nothing else."""

    def __setstate__(self, state: Any) -> None:
        self.attributes = state if isinstance(state, dict) else {}


_STORAGE_TYPES = {
    name: getattr(torch, name)
    for name in (
        "FloatStorage",
        "DoubleStorage",
        "HalfStorage",
        "BFloat16Storage",
        "LongStorage",
        "IntStorage",
        "ShortStorage",
        "CharStorage",
        "ByteStorage",
        "BoolStorage",
    )
}


class _ArchiveUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(file)
        self.archive = archive
        self.prefix = prefix
        self.storages: dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__"):
            return _ScriptObject
        if (module, name) in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise UnsafePickleError(f"refusing to load: the archive asks for {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafePickleError("refusing an unexpected storage record")
        _, storage_type, key, _location, numel = pid
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "TypedStorage is deprecated": it is what the file names
            dtype = storage_type.dtype if hasattr(storage_type, "dtype") else storage_type
        if not isinstance(dtype, torch.dtype) or not isinstance(numel, int):
            raise UnsafePickleError("refusing an unexpected storage record")
        key = str(key)
        if key in self.storages:  # a crafted pickle may name one record many times: read it once
            return self.storages[key]
        record = f"{self.prefix}data/{key}"
        try:
            data = self.archive.read(record)
        except KeyError:
            raise CheckpointError(
                f"the archive lacks the record {record} (a truncated or damaged download); download it again"
            ) from None
        itemsize = torch.empty((), dtype=dtype).element_size()
        if len(data) < numel * itemsize:
            raise CheckpointError(f"the archive is truncated (record {record} is shorter than its tensor)")
        untyped = torch.UntypedStorage.from_buffer(data[: numel * itemsize], dtype=torch.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            storage = torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)
        self.storages[key] = storage
        return storage


def is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def torchscript_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """``{name: tensor}`` of every parameter and buffer in a TorchScript archive, names as the module had them.

    Errors are one line naming ``path`` and what to do.
    """
    from .budget import refuse_zip_bomb

    try:
        refuse_zip_bomb(path)
        with zipfile.ZipFile(path) as zf:
            data_pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if not data_pkl:
                raise CheckpointError("not a TorchScript archive (it lacks the record data.pkl)")
            prefix = data_pkl[0][: -len("data.pkl")]
            with zf.open(data_pkl[0]) as f:
                root = _ArchiveUnpickler(f, zf, prefix).load()
        out: dict[str, torch.Tensor] = {}
        _flatten(root, "", out, 0)
    except CheckpointError as exc:
        text = str(exc)
        if not text.startswith(str(path)):
            text = f"{path}: {text}" + ("" if "download" in text else "; download it again")
        raise CheckpointError(text) from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, zlib.error, OSError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"{path}: the TorchScript archive is truncated or corrupt ({type(exc).__name__} in data.pkl); "
            "download it again"
        ) from None
    except MemoryError:  # the unpickler allocates what a bytes record declares before reading it
        raise CheckpointError(f"{path}: data.pkl declares data far larger than the archive holds") from None
    except (AttributeError, IndexError, KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: not a TorchScript archive styleclip can read ({type(exc).__name__}); download it again"
        ) from None
    return out


def _flatten(obj: Any, prefix: str, out: dict[str, torch.Tensor], depth: int, seen: set[int] | None = None) -> None:
    if depth > 64:
        raise CheckpointError("the archive's modules nest too deeply")
    if not isinstance(obj, _ScriptObject):
        return
    seen = set() if seen is None else seen
    if id(obj) in seen:  # a module reached twice: walking it again would cost 2**depth on a crafted archive
        return
    seen.add(id(obj))
    for name, value in getattr(obj, "attributes", {}).items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value
        elif isinstance(value, _ScriptObject):
            _flatten(value, f"{prefix}{name}.", out, depth + 1, seen)
