"""Names -> catalogue entries -> verified files in the cache."""

from __future__ import annotations

import difflib
import hashlib
import re
import urllib.parse
from pathlib import Path

from ..errors import CheckpointError
from .catalog import ASSETS, Asset
from .download import _recorded_hash, cache_dir, check_url, download, verify


def all_assets() -> list[Asset]:
    return list(ASSETS)


def _index() -> dict[str, Asset]:
    index: dict[str, Asset] = {}
    for asset in ASSETS:
        for key in (asset.name, *asset.aliases):
            index[key.lower()] = asset
    return index


def find_asset(name: str) -> Asset | None:
    """The catalogue entry called ``name`` (full name or alias, any case), or None."""
    return _index().get(name.strip().lower())


def get_asset(name: str, kind: str | None = None) -> Asset:
    """Like :func:`find_asset`, but an unknown name is an error that suggests the closest ones."""
    asset = find_asset(name)
    if asset is None:
        close = difflib.get_close_matches(name.lower(), list(_index()), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `styleclip models list`"
        raise CheckpointError(f"unknown model name {name!r}{hint}")
    if kind is not None and asset.kind != kind:
        raise CheckpointError(f"{asset.name} is a {asset.kind}, not a {kind}")
    return asset


FOLDERS = {
    "generator": "generators",
    "encoder": "encoders",
    "identity": "identity",
    "perceptual": "perceptual",
    "landmarks": "landmarks",
    "directions": "directions",
    "mapper": "mappers",
    "parser": "parsers",
}


def asset_path(asset: Asset, cache: str | Path | None = None) -> Path:
    """Where ``asset`` lives in the cache: ``<cache>/<folder of its kind>/<filename>``."""
    return cache_dir(cache) / FOLDERS[asset.kind] / asset.filename


def is_cached(asset: Asset, cache: str | Path | None = None, check_hash: bool = False) -> bool:
    path = asset_path(asset, cache)
    if not check_hash:
        return path.is_file()
    return verify(path, asset.sha256, asset.size, asset.git_blob)


def trust(asset: Asset, cache: str | Path | None = None) -> str:
    """How the cached file is verified: 'published sha256', 'git blob', 'trust on first use' (with the
    recorded hash once it exists)."""
    if asset.sha256 and len(asset.sha256) == 64:
        return "published sha256"
    if asset.sha256:
        recorded = _recorded_hash(asset_path(asset, cache))
        return f"sha256 prefix {asset.sha256} + trust on first use" + (f" ({recorded[:12]}…)" if recorded else "")
    if asset.git_blob:
        return "git blob id"
    recorded = _recorded_hash(asset_path(asset, cache))
    return f"trust on first use ({recorded[:12]}…)" if recorded else "trust on first use"


def fetch(asset: Asset, cache: str | Path | None = None, offline: bool | None = None, progress: bool = True) -> Path:
    """The verified local file for ``asset``, downloading it if needed."""
    return download(
        asset.urls,
        asset_path(asset, cache),
        sha256=asset.sha256,
        size=asset.size,
        git_blob=asset.git_blob,
        offline=offline,
        progress=progress,
    )


def fetch_url(url: str, cache: str | Path | None = None, offline: bool | None = None, progress: bool = True) -> Path:
    """Download an arbitrary http(s) URL into ``<cache>/urls/<hash of the URL>/<its file name>`` (trust on first
    use). Anything but a well-formed http(s) URL is refused in one line before the cache is touched."""
    check_url(url)
    folder = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return download([url], cache_dir(cache) / "urls" / folder / url_file_name(url), offline=offline, progress=progress)


def url_file_name(url: str, limit: int = 100) -> str:
    """A safe cache name for the file at ``url``: its last path segment with only ``[A-Za-z0-9._+-]``, no leading
    dot (never ``..``), at most ``limit`` characters with the extension kept; ``download`` when nothing is left."""
    segment = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", segment).lstrip(".")
    if len(name) > limit:
        stem, dot, ext = name.rpartition(".")
        ext = f".{ext}" if dot and 0 < len(ext) <= 16 else ""
        name = (stem if ext else name)[: limit - len(ext)] + ext
    return name or "download"
