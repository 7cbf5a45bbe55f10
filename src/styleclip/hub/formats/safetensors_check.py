"""A ``.safetensors`` header checked by styleclip before the safetensors library reads the file.

The library refuses inconsistent headers too, but with messages that name neither the tensor nor the fix; and a
header is JSON of any length. Here the header is read with a size bound, and every tensor's dtype, shape and byte
range must agree with each other and with the file, tensors may not overlap, and what they will take in memory is
checked against the file's size (see :mod:`.budget`) - all before any tensor is read.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
from pathlib import Path

from ...errors import CheckpointError
from .budget import check_budget

# Item sizes of the dtypes the safetensors format defines (sub-byte ones are refused: no StyleGAN uses them).
_ITEMSIZE = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
# The library allows 100 MB; styleclip's headers (a few hundred tensors and a JSON config) take well under 1 MB.
MAX_HEADER = 16 << 20
MAX_DIMS = 16


class _Declared:
    """A tensor as the header declares it: enough for the memory check, nothing allocated."""

    def __init__(self, numel: int, itemsize: int) -> None:
        self.size, self.itemsize = numel, itemsize


def check_safetensors(path: Path) -> dict:
    """The parsed header of ``path`` (tensor entries and ``__metadata__``), or a one-line error naming the tensor."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file (no header); download or write it again")
        (length,) = struct.unpack("<Q", head)
        if length > min(MAX_HEADER, size - 8):
            raise CheckpointError(
                f"{path}: the safetensors header declares {length} bytes, the file holds {size - 8} "
                "(truncated or forged); download or write it again"
            )
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CheckpointError(f"{path}: the safetensors header is not valid JSON; download or write it again") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object; download or write it again")
    data_size = size - 8 - length
    ranges, declared = [], []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise CheckpointError(f"{path}: malformed safetensors metadata (values must be strings)")
            continue
        itemsize, numel, begin, end = _entry(path, name, entry)
        if numel * itemsize != end - begin:
            raise CheckpointError(
                f"{path}: tensor {name} declares {numel} values of {entry['dtype']} but {end - begin} bytes "
                "(a forged or corrupt file); download or write it again"
            )
        if end > data_size:
            raise CheckpointError(
                f"{path}: tensor {name} reaches past the end of the file (byte {end} of {data_size}): "
                "truncated or forged; download or write it again"
            )
        ranges.append((begin, end, name))
        declared.append((name, _Declared(numel, itemsize)))
    ranges.sort()
    for (_, prev_end, prev), (begin, _, name) in itertools.pairwise(ranges):
        if begin < prev_end:
            raise CheckpointError(
                f"{path}: tensors {prev} and {name} share bytes (a forged file); download or write it again"
            )
    check_budget(declared, path, size)  # type: ignore[arg-type]
    return header


def _entry(path: Path, name: str, entry: object) -> tuple[int, int, int, int]:
    bad = CheckpointError(
        f"{path}: tensor {name} has a malformed safetensors entry (dtype, shape, data_offsets); "
        "download or write it again"
    )
    if not isinstance(entry, dict):
        raise bad
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _ITEMSIZE:
        raise CheckpointError(f"{path}: tensor {name} has dtype {str(dtype)[:20]!r}, which styleclip does not read")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS:
        raise bad
    if not all(type(n) is int and n >= 0 for n in shape):
        raise bad
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(n) is int for n in offsets)):
        raise bad
    begin, end = offsets
    if not 0 <= begin <= end:
        raise bad
    return _ITEMSIZE[dtype], math.prod(shape), begin, end


def read_safetensors(path: Path, what: str = "safetensors file", fix: str = "re-create or re-download it"):
    """``(metadata, {name: tensor})`` of a ``.safetensors`` file, its sizes checked first (:func:`check_safetensors`);
    a file the library cannot read is one line naming ``what`` it should have been and the ``fix``."""
    from safetensors import safe_open

    check_safetensors(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path}: unreadable {what} ({str(exc)[:120]}); {fix}") from None
    return metadata, tensors
