"""A restricted unpickler for NVIDIA's network pickles (stylegan2-ada-pytorch and the TensorFlow originals).

Those files are Python pickles whose networks carry their own source code, which NVIDIA's loader
imports and runs. We never do: every global the pickle names is looked up in an allow-list of
plain-data constructors (tensors, storages, NumPy arrays and scalars, ordered dicts), and each
network becomes a :class:`PersistentRecord` or :class:`TFNetworkRecord` of plain data. Anything
else - ``os.system``, ``builtins.eval``, an unknown class - is refused before it is called, with an
error that names it.
"""

from __future__ import annotations

import collections
import io
import pickle
import warnings
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
import torch

from ...errors import CheckpointError
from .legacy import check_legacy_stream


class UnsafePickleError(CheckpointError):
    """The pickle names a global that is not on the allow-list; nothing from it was run."""


@dataclass
class PersistentRecord:
    """One network pickled through ``torch_utils.persistence``, as plain data.

    ``module_src`` (the embedded Python source) is kept only as text, to tell network families apart;
    it is never compiled.
    """

    class_name: str
    version: int
    module_src: str
    init_args: tuple = ()
    init_kwargs: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, torch.Tensor | None] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor | None] = field(default_factory=dict)
    modules: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_meta(cls, meta: Any) -> PersistentRecord:
        if not isinstance(meta, dict) or meta.get("type") != "class":
            raise CheckpointError("unexpected persistence record (not a pickled network class)")
        state = dict(meta.get("state") or {})
        return cls(
            class_name=str(meta.get("class_name")),
            version=int(meta.get("version", -1)),
            module_src=str(meta.get("module_src", "")),
            init_args=tuple(state.pop("_init_args", ()) or ()),
            init_kwargs=_plain(state.pop("_init_kwargs", {}) or {}),
            parameters=dict(state.pop("_parameters", {}) or {}),
            buffers=dict(state.pop("_buffers", {}) or {}),
            modules=dict(state.pop("_modules", {}) or {}),
            attributes=state,
        )

    def state_dict(self, prefix: str = "", _depth: int = 0) -> dict[str, torch.Tensor]:
        """Every parameter and buffer of this record and its sub-records, by dotted name."""
        if _depth > 32:  # real networks nest 4 deep; a pickle can make a cycle
            raise CheckpointError("network records nest too deeply (a cycle?)")
        out: dict[str, torch.Tensor] = {}
        for name, tensor in list(self.parameters.items()) + list(self.buffers.items()):
            if tensor is not None and not isinstance(tensor, torch.Tensor):
                raise CheckpointError(f"{prefix}{name} is not a tensor")
            if tensor is not None:
                out[prefix + name] = tensor
        for name, child in self.modules.items():
            if isinstance(child, PersistentRecord):
                out.update(child.state_dict(f"{prefix}{name}.", _depth + 1))
            elif child is not None:
                raise CheckpointError(f"submodule {prefix}{name} is not a pickled network record")
        return out


class TFNetworkRecord:
    """A ``dnnlib.tflib.network.Network`` from an original TensorFlow pickle, as plain data."""

    state: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> TFNetworkRecord:
        obj = super().__new__(cls)
        obj.state = {}
        return obj

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise CheckpointError("unexpected TensorFlow network state (not a dict)")
        self.state = state

    @property
    def version(self) -> int:
        return int(self.state.get("version", 0))

    @property
    def name(self) -> str:
        return str(self.state.get("name", ""))

    @property
    def static_kwargs(self) -> dict[str, Any]:
        return _plain(self.state.get("static_kwargs", {}) or {})

    def variables(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Every variable of this network and its components, by TF scope path (``mapping/Dense0/weight``)."""
        out = {}
        for item in self.state.get("variables") or []:
            if not (isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[0], str)):
                raise CheckpointError("unexpected TensorFlow variable list")
            value = item[1].array if isinstance(item[1], _ArrayBuilder) else item[1]
            if not isinstance(value, np.ndarray | np.generic | float | int):
                raise CheckpointError(f"TensorFlow variable {item[0]!r} is not an array")
            out[prefix + item[0]] = np.asarray(value)
        components = self.state.get("components") or {}
        if not isinstance(components, dict):
            raise CheckpointError("unexpected TensorFlow component table")
        for name, comp in components.items():
            if not isinstance(comp, TFNetworkRecord):
                raise CheckpointError(f"TensorFlow component {name!r} is not a network")
            out.update(comp.variables(f"{prefix}{name}/"))
        return out


class _PlainDict(dict):
    """Stands in for ``dnnlib.util.EasyDict``: its items arrive through SETITEMS, attributes are ignored."""

    def __setstate__(self, state: Any) -> None:
        pass


_PLAIN_KINDS = "biufc"  # bool, signed, unsigned, float, complex: fixed-size numbers only


class _DtypeSpec:
    """Stands in for ``numpy.dtype`` while unpickling.

    NumPy lets a pickle's BUILD step rewrite a real dtype's fields, offsets and item size, which
    makes later reads go out of bounds; this stand-in accepts only a byte order and resolves to a
    freshly made plain numeric dtype.
    """

    def __init__(self, spec: Any, align: Any = False, copy: Any = False) -> None:
        if not isinstance(spec, str):
            raise UnsafePickleError(f"refusing NumPy dtype {spec!r}")
        try:
            base = np.dtype(spec)
        except TypeError:
            raise UnsafePickleError(f"refusing NumPy dtype {spec!r}") from None
        if base.kind not in _PLAIN_KINDS or base.names is not None or base.subdtype is not None:
            raise UnsafePickleError(f"refusing NumPy dtype {spec!r} (not a plain number type)")
        self.base = base
        self.byteorder = "="

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 8:
            raise UnsafePickleError("refusing a NumPy dtype with an unexpected state")
        byteorder, subarray, names, fields = state[1], state[2], state[3], state[4]
        if subarray is not None or names is not None or fields is not None or byteorder not in "<>=|":
            raise UnsafePickleError("refusing a NumPy dtype with fields or sub-arrays")
        self.byteorder = byteorder

    def resolve(self) -> np.dtype:
        order = "" if self.byteorder in "=|" else self.byteorder
        return np.dtype(order + self.base.str[1:]) if self.base.itemsize > 1 else np.dtype(self.base.str[1:])


def _plain_dtype(dtype: Any) -> np.dtype:
    if isinstance(dtype, _DtypeSpec):
        return dtype.resolve()
    raise UnsafePickleError("refusing a NumPy value without a plain dtype")


class _NdarrayType:
    """Stands in for ``numpy.ndarray`` as the argument of ``_reconstruct``; it cannot be called."""


class _ArrayBuilder:
    """What ``numpy.core.multiarray._reconstruct`` returns here: an array built from checked bytes."""

    def __init__(self, shape: Any) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise UnsafePickleError("refusing a NumPy array with an unexpected state")
        _, shape, dtype, fortran, raw = state
        dtype = _plain_dtype(dtype)
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise UnsafePickleError("refusing a NumPy array with a bad shape")
        if not isinstance(raw, bytes | bytearray) or len(raw) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise UnsafePickleError("refusing a NumPy array whose data does not match its shape")
        self.array = np.frombuffer(bytes(raw), dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


def _safe_scalar(dtype: Any, data: Any = None) -> Any:
    dtype = _plain_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise UnsafePickleError("refusing a pickled NumPy scalar that is not plain numbers")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _safe_reconstruct(cls: Any, shape: Any, dtype_code: Any) -> _ArrayBuilder:
    if cls is not _NdarrayType:
        raise UnsafePickleError(f"refusing NumPy array subclass {cls!r}")
    return _ArrayBuilder(shape)


def _safe_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    dtype = _plain_dtype(dtype)
    if not isinstance(buf, bytes | bytearray) or not isinstance(shape, tuple):
        raise UnsafePickleError("refusing a pickled NumPy buffer that is not bytes")
    if len(buf) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise UnsafePickleError("refusing a NumPy array whose data does not match its shape")
    return np.frombuffer(bytes(buf), dtype=dtype).reshape(shape, order="F" if order == "F" else "C").copy()


def _load_storage_bytes(data: Any) -> Any:
    # torch's own weights-only unpickler reads the nested legacy torch.save() of one storage.
    if not isinstance(data, bytes | bytearray):
        raise UnsafePickleError("refusing a tensor storage that is not bytes")
    # torch would allocate the size the nested record declares before reading its bytes
    check_legacy_stream(io.BytesIO(data), len(data), "a tensor in the pickle")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "TypedStorage is deprecated": it is what the file holds
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _is_storage(obj: Any) -> bool:
    return isinstance(obj, torch.UntypedStorage | torch.storage.TypedStorage)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> torch.Tensor:
    if not _is_storage(storage):
        raise UnsafePickleError("refusing a tensor whose storage is not a torch storage")
    if not isinstance(size, tuple | list) or not isinstance(stride, tuple | list) or len(size) != len(stride):
        raise UnsafePickleError("refusing a tensor with malformed geometry")
    if not all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride)):
        raise UnsafePickleError("refusing a tensor with negative or non-integer geometry")
    if isinstance(storage, torch.storage.TypedStorage):
        dtype, untyped = storage.dtype, storage._untyped_storage
    else:
        raise UnsafePickleError("refusing a tensor over an untyped storage (no dtype)")
    length = untyped.nbytes() // torch.empty((), dtype=dtype).element_size()
    # set_() would silently grow the storage (exposing uninitialised memory) for an out-of-range view.
    if all(size) and offset + sum((n - 1) * st for n, st in zip(size, stride, strict=True)) >= length:
        raise UnsafePickleError("refusing a tensor that reaches past the end of its storage")
    t = torch.empty((0,), dtype=dtype)
    t.set_(untyped, offset, tuple(size), tuple(stride))
    return t


def _rebuild_parameter(data: Any, requires_grad: Any = False, hooks: Any = None, *state: Any) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("refusing a parameter whose data is not a tensor")
    return data.detach()


def _reconstructor(cls: Any, base: Any, state: Any = None) -> Any:
    # Protocol 0/1 pickles build plain objects this way; only our record classes may be built.
    if cls not in (TFNetworkRecord, _PlainDict) or base not in (object, dict):
        raise UnsafePickleError(f"refusing to construct {cls!r}")
    return cls()


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentRecord.from_meta,
    ("dnnlib.util", "EasyDict"): _PlainDict,
    ("dnnlib", "EasyDict"): _PlainDict,
    ("dnnlib.tflib.network", "Network"): TFNetworkRecord,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "object"): object,
    ("builtins", "dict"): dict,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("numpy", "ndarray"): _NdarrayType,
    ("numpy", "dtype"): _DtypeSpec,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _safe_reconstruct
    _ALLOWED[(_mod, "scalar")] = _safe_scalar
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = _safe_frombuffer


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in the allow-list; anything else raises :class:`UnsafePickleError`."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is not None:
            return found
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise UnsafePickleError(
            f"refusing to load: the pickle asks for {module}.{name}, which is not plain network data "
            "(styleclip never runs code from a checkpoint)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing to load: the pickle uses persistent ids (not a network pickle)")


def restricted_load(f: BinaryIO) -> Any:
    """Unpickle ``f`` with :class:`RestrictedUnpickler`.

    NumPy arrays come back wrapped (``_ArrayBuilder.array``); :class:`TFNetworkRecord` unwraps them.
    """
    return RestrictedUnpickler(f).load()


def _plain(obj: Any) -> Any:
    """Turn EasyDict stand-ins and NumPy scalars into plain Python values (for configs)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
