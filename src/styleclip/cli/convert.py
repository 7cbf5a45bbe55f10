"""``styleclip convert``: any supported checkpoint -> styleclip's safetensors format."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import UsageError
from ..hub.generators import read_generator_file, save_generator
from ..hub.resolve import resolve_path
from ..utils.files import check_output_file, same_file

NAME = "convert"
HELP = "convert a generator checkpoint (NVIDIA .pkl, TF .pkl, rosinality .pt) to styleclip's .safetensors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="checkpoint to read")
    p.add_argument("output", type=Path, help="where to write the .safetensors file")
    p.add_argument("--which", choices=["G_ema", "G"], default="G_ema", help="which generator of a snapshot")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")


def run(args: argparse.Namespace) -> int:
    check_output_file(args.output)
    local = Path(args.input).expanduser()
    if local.exists():
        _refuse_same(local, args.output)
    if os.path.lexists(args.output) and not args.overwrite:  # a link there counts: it would be replaced
        raise UsageError(f"{args.output} exists; pass --overwrite to replace it, or name another output file")
    path = resolve_path(args.input, kind="generator")
    _refuse_same(path, args.output)  # a catalogue name resolves to a file of the cache
    G, fmt = read_generator_file(path, which=args.which)
    G.meta.update({"converted_from": str(path), "source_format": fmt})
    out = save_generator(G, args.output)
    print(f"{path} ({fmt}, {G.img_resolution}px, {G.num_ws} ws) -> {out}")
    return 0


def _refuse_same(source: Path, output: Path) -> None:
    if same_file(source, output):
        raise UsageError(f"{output} is the input file itself; name another output file")
