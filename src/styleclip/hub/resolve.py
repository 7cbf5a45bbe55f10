"""From what a user typed (a path, later a registry name or URL) to a local file."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError


def resolve_path(name_or_path: str | Path, kind: str = "generator") -> Path:
    """The local file for ``name_or_path``; a clear error when there is none."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    text = str(name_or_path)
    if text.startswith(("http://", "https://")):
        raise CheckpointError(
            f"{text}: downloading {kind}s from URLs is not available yet; download the file and pass its path"
        )
    if "/" in text or "\\" in text or path.suffix:
        raise CheckpointError(f"{text}: no such file")
    raise CheckpointError(
        f"unknown {kind} {text!r}: no such file here, and styleclip has no model registry entry by that name yet; "
        "pass the path of a checkpoint (.pkl, .pt or .safetensors)"
    )
