"""``styleclip convert``: any supported checkpoint -> styleclip's safetensors format."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from ..hub.generators import read_generator_file, save_generator
from ..hub.resolve import resolve_path

NAME = "convert"
HELP = "convert a generator checkpoint (NVIDIA .pkl, TF .pkl, rosinality .pt) to styleclip's .safetensors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="checkpoint to read")
    p.add_argument("output", type=Path, help="where to write the .safetensors file")
    p.add_argument("--which", choices=["G_ema", "G"], default="G_ema", help="which generator of a snapshot")


def run(args: argparse.Namespace) -> int:
    if args.output.is_dir() or (args.output.parent.exists() and not args.output.parent.is_dir()):
        raise UsageError(f"{args.output}: the output must be a file path in an existing or new folder")
    path = resolve_path(args.input, kind="generator")
    G, fmt = read_generator_file(path, which=args.which)
    G.meta.update({"converted_from": str(path), "source_format": fmt})
    out = save_generator(G, args.output)
    print(f"{path} ({fmt}, {G.img_resolution}px, {G.num_ws} ws) -> {out}")
    return 0
