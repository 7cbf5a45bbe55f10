"""From what a user typed - a path, a registry name or a URL - to a verified local file."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError


def resolve_path(
    name_or_path: str | Path,
    kind: str = "generator",
    cache: str | Path | None = None,
    offline: bool | None = None,
) -> Path:
    """The local file for ``name_or_path``: an existing path as it is, a catalogue name (``afhqdog``,
    ``stylegan2-ada:ffhq``) or an http(s) URL downloaded into the verified cache."""
    from .registry import fetch, fetch_url, find_asset, get_asset

    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    text = str(name_or_path)
    if text.startswith(("http://", "https://")):
        return fetch_url(text, cache=cache, offline=offline)
    looks_like_path = "/" in text or "\\" in text or path.suffix
    if looks_like_path and find_asset(text) is None:
        raise CheckpointError(f"{text}: no such file")
    return fetch(get_asset(text, kind=kind), cache=cache, offline=offline)  # unknown names get suggestions
