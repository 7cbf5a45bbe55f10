"""Entry point of the ``styleclip`` command: parses the subcommand and turns known errors into one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import StyleclipError
from . import batch, convert, directions, edit, generate, invert, mapper, models, ui
from . import eval as evaluate

COMMANDS = (edit, directions, mapper, invert, batch, evaluate, generate, convert, models, ui)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="styleclip", description="Edit pictures with words (StyleGAN + CLIP).")
    parser.add_argument("--version", action="version", version=f"styleclip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except StyleclipError as exc:
        print(f"styleclip {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"styleclip {args.command}: interrupted", file=sys.stderr)
        return 130
