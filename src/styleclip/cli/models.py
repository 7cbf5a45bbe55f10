"""``styleclip models``: list, download, verify, locate and remove the catalogue's pretrained files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..hub.catalog import KINDS
from ..hub.registry import all_assets, asset_path, fetch, get_asset, is_cached, trust

NAME = "models"
HELP = "list, download, verify, locate or remove pretrained models (generators, encoders, ...)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache", type=Path, default=None, help="cache folder (default $STYLECLIP_HOME or ~/.cache/styleclip)"
    )
    p.add_argument("--offline", action="store_true", default=None, help="never touch the network")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    ls = sub.add_parser("list", help="table of every known model")
    ls.add_argument("--kind", choices=KINDS, default=None)
    for action, text in (
        ("download", "download models by name (verified, resumable)"),
        ("verify", "check cached files against their hashes (all cached ones without names)"),
        ("path", "print the cache path of a model"),
        ("remove", "delete a model from the cache"),
    ):
        q = sub.add_parser(action, help=text)
        q.add_argument("names", nargs="*" if action == "verify" else "+", metavar="NAME")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list(args)
    if args.action == "download":
        for name in args.names:
            path = fetch(get_asset(name), cache=args.cache, offline=args.offline)
            print(f"{get_asset(name).name}: {path}")
        return 0
    if args.action == "path":
        for name in args.names:
            print(asset_path(get_asset(name), args.cache))
        return 0
    if args.action == "remove":
        for name in args.names:
            asset = get_asset(name)
            path = asset_path(asset, args.cache)
            removed = [p for p in (path, Path(f"{path}.sha256"), Path(f"{path}.part")) if p.exists()]
            for p in removed:
                p.unlink()
            print(f"{asset.name}: {'removed' if removed else 'not cached'}")
        return 0
    assets = [get_asset(n) for n in args.names] if args.names else [a for a in all_assets() if is_cached(a, args.cache)]
    bad = 0
    for asset in assets:
        if not is_cached(asset, args.cache):
            print(f"{asset.name}: not cached")
            bad += 1
        elif is_cached(asset, args.cache, check_hash=True):
            print(f"{asset.name}: ok ({trust(asset, args.cache)})")
        else:
            print(f"{asset.name}: CORRUPT - remove it with `styleclip models remove {asset.name}` and download again")
            bad += 1
    if not assets:
        print("nothing cached yet")
    return 1 if bad else 0


def _list(args: argparse.Namespace) -> int:
    rows = [("name", "kind", "domain", "res", "size", "cached", "verified by", "licence")]
    for a in all_assets():
        if args.kind and a.kind != args.kind:
            continue
        path = asset_path(a, args.cache)
        size = _human(path.stat().st_size) if path.is_file() else (_human(a.size) if a.size else "?")
        name = a.name + (f" ({', '.join(a.aliases)})" if a.aliases else "")
        rows.append(
            (
                name,
                a.kind,
                a.domain,
                str(a.resolution or ""),
                size,
                "yes" if path.is_file() else "no",
                trust(a, args.cache),
                a.licence,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1])
    return 0


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
