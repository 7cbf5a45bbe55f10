"""From what a user typed - a path, a registry name or a URL - to a verified local file."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import CheckpointError

# Schemes that name a resource but that styleclip never fetches: a local file is named by its path.
_REFUSED_SCHEMES = ("file", "ftp", "ftps", "data", "gopher", "jar", "smb")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def resolve_path(
    name_or_path: str | Path,
    kind: str = "generator",
    cache: str | Path | None = None,
    offline: bool | None = None,
) -> Path:
    """The local file for ``name_or_path``: an existing path as it is, a catalogue name (``afhqdog``,
    ``stylegan2-ada:ffhq``) or an http(s) URL downloaded into the verified cache."""
    from .registry import fetch, fetch_url, find_asset, get_asset

    text = str(name_or_path)
    if is_url(text):
        return fetch_url(text, cache=cache, offline=offline)
    path = Path(text).expanduser()
    # A folder is never a checkpoint: a bare catalogue name beside a folder of that name (an earlier --outdir
    # mohawk, say) still means the catalogue's file.
    if exists(path) and not (path.is_dir() and find_asset(text) is not None):
        return path
    scheme = _SCHEME.match(text)
    if scheme and ("://" in text or scheme.group(1).lower() in _REFUSED_SCHEMES):
        from .download import check_url

        check_url(text)  # refuses it, in the downloader's words (a well-formed http(s) URL went to fetch_url above)
    looks_like_path = "/" in text or "\\" in text or path.suffix
    if looks_like_path and find_asset(text) is None:
        raise CheckpointError(f"{text}: no such file")
    return fetch(get_asset(text, kind=kind), cache=cache, offline=offline)  # unknown names get suggestions


def is_url(text: str | Path) -> bool:
    """True for what :func:`resolve_path` downloads: a string starting with ``http://`` or ``https://``."""
    return isinstance(text, str) and text[:8].lower().startswith(("http://", "https://"))


def exists(path: Path) -> bool:
    """``path.exists()`` that says False for a name the system cannot even look up (too long, a NUL byte)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False
