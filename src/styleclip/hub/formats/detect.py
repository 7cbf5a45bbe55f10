"""Tell a checkpoint's format from its first bytes, never from its file name."""

from __future__ import annotations

import stat
from pathlib import Path

from ...errors import CheckpointError

NATIVE = "safetensors"
TORCH_ZIP = "torch-zip"
TORCH_LEGACY = "torch-legacy"
PICKLE = "pickle"

# Signatures of files people hand us by mistake.
_NOT_CHECKPOINTS = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"RIFF", "a RIFF (WebP/WAV/AVI) file"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive (unpack it first)"),
    (b"BZh", "a bzip2 archive (unpack it first)"),
    (b"7z\xbc\xaf", "a 7-Zip archive (unpack it first)"),
    (b"<", "an HTML/XML page (a download link that returned a web page?)"),
    (b"{", "a JSON file"),
]
# torch.save's legacy (pre-1.6) format begins with this pickled magic number.
_TORCH_LEGACY_MAGIC = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def check_regular_file(path: Path) -> int:
    """The size of ``path``, or a one-line error if it is missing, a folder, or not a regular file.

    A device (``/dev/zero``), a pipe or a socket has no size to check and may never end or never answer; it is
    refused before it is opened.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror or exc}); check the path") from None
    if stat.S_ISDIR(st.st_mode):
        raise CheckpointError(f"{path}: is a directory; pass the checkpoint file inside it")
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"{path}: not a regular file (a device, pipe or socket); pass a checkpoint file")
    return st.st_size


def detect_format(path: Path) -> str:
    """One of :data:`NATIVE`, :data:`TORCH_ZIP`, :data:`TORCH_LEGACY`, :data:`PICKLE`; else a clear error."""
    size = check_regular_file(path)
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty (an interrupted download?); download it again")
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"PK\x03\x04"):
        return TORCH_ZIP
    if len(head) > 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return TORCH_LEGACY if head[2:].startswith(_TORCH_LEGACY_MAGIC) else PICKLE
    if len(head) >= 9 and head[8:9] == b"{":  # a header longer than the file is refused, with its numbers, when read
        return NATIVE
    for magic, what in _NOT_CHECKPOINTS:
        if head.lstrip().startswith(magic):
            raise CheckpointError(f"{path}: not a checkpoint, the file is {what}")
    raise CheckpointError(
        f"{path}: not a checkpoint styleclip can read (expected an NVIDIA .pkl, a PyTorch .pt or a .safetensors file)"
    )
