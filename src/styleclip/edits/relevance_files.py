"""Where a generator's relevance matrix comes from: StyleCLIP's published ``fs3`` for the generators it was made
on, else one precomputed here (cached beside the generator's style statistics), or a file, URL or catalogue name."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import UsageError
from ..nets.stylegan2 import Generator
from .relevance import OFFICIAL_GENERATORS, RelevanceMatrix, load_official_fs3

METHODS = ("finite-difference", "gradient")


def default_relevance_path(G: Generator, clip_name: str, method: str, cache: str | Path | None = None) -> Path:
    """``<cache>/stylespace/<weights fingerprint>/relevance-<method>-<clip>.npz``."""
    from ..hub.download import cache_dir
    from ..stylespace import generator_fingerprint

    as_path = Path(str(clip_name))
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", as_path.name if as_path.exists() else str(clip_name))
    return cache_dir(cache) / "stylespace" / generator_fingerprint(G) / f"relevance-{method}-{slug}.npz"


def precompute_command(generator: str, clip: str) -> str:
    """The command that makes a matrix for this generator and CLIP model (said when none exists)."""
    return (
        f"styleclip directions precompute --generator {generator} --clip {clip} (add --method gradient for a quick one)"
    )


def find_relevance(
    G: Generator,
    clip_name: str,
    spec: str | Path | None = None,
    cache: str | Path | None = None,
    offline: bool | None = None,
    generator: str | None = None,
) -> RelevanceMatrix:
    """The relevance matrix for ``G`` and the CLIP model ``clip_name`` (checked against both).

    ``spec``: a matrix file (ours ``.npz``, StyleCLIP's ``.npy``), an http(s) URL or a catalogue name
    (``styleclip-fs3:ffhq``); ``None`` = the published matrix when one exists for ``G``, else the cached
    finite-difference matrix, else the cached gradient one. Raises :class:`UsageError` naming the command that
    makes one when there is none.
    """
    from ..hub.registry import fetch, fetch_url, find_asset

    if spec is None:
        asset = G.meta.get("asset")
        spec = next((k for k, gens in OFFICIAL_GENERATORS.items() if asset in gens), None)
        if spec is None:
            for method in METHODS:
                path = default_relevance_path(G, clip_name, method, cache)
                if path.is_file():
                    matrix = RelevanceMatrix.load(path)
                    matrix.check(G, clip_name)
                    return matrix
            name = generator or G.meta.get("asset") or G.meta.get("source") or "GENERATOR"
            raise UsageError(
                f"no relevance matrix for this generator and CLIP model yet: run {precompute_command(name, clip_name)}"
                ", or pass --relevance FILE"
            )
    spec = str(spec)
    if spec.startswith(("http://", "https://")):
        spec = str(fetch_url(spec, cache=cache, offline=offline))
    asset = find_asset(spec) if not Path(spec).exists() else None
    if asset is not None and asset.kind == "directions":
        matrix = load_official_fs3(fetch(asset, cache=cache, offline=offline), G, asset=asset.name)
    elif spec.endswith(".npy"):
        matrix = load_official_fs3(spec, G)
    else:
        matrix = RelevanceMatrix.load(spec)
    matrix.check(G, clip_name)
    return matrix
