"""Entry point of the ``styleclip`` command: parses the subcommand and turns every error into one line."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from ..errors import StyleclipError
from . import adapt, batch, benchmark, convert, directions, edit, generate, invert, mapper, models, ui, video
from . import eval as evaluate

COMMANDS = (edit, directions, mapper, adapt, video, invert, batch, evaluate, benchmark, generate, convert, models, ui)


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage before its error; a user needs the error and where to look."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = OneLineParser(prog="styleclip", description="Edit pictures with words (StyleGAN + CLIP).")
    parser.add_argument("--version", action="version", version=f"styleclip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed in one line
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    prefix = f"styleclip {args.command}"
    try:
        return int(args.run(args) or 0)
    except StyleclipError as exc:
        print(f"{prefix}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{prefix}: error: out of memory; use a smaller resolution or batch, or a machine with more memory",
              file=sys.stderr)  # fmt: skip
        return 2
    except OSError as exc:
        from ..utils.files import OS_ADVICE

        if exc.errno in OS_ADVICE:  # the machine's error, not styleclip's: one line naming the file, no log
            where = f" {exc.filename}" if exc.filename else ""
            print(f"{prefix}: error: cannot use{where}: {exc.strerror or exc}; {OS_ADVICE[exc.errno]}",
                  file=sys.stderr)  # fmt: skip
            return 2
        return _internal_error(prefix, exc)
    except Exception as exc:
        return _internal_error(prefix, exc)


def _one_line(message: str) -> str:
    return " ".join(message.split()) or "unknown error"


def _internal_error(prefix: str, exc: BaseException) -> int:
    """A bug: one line for the user, the traceback in a log file for the report."""
    log = _write_log("".join(traceback.format_exception(exc)))
    where = f"details in {log}" if log else "no log could be written"
    print(f"{prefix}: internal error: {type(exc).__name__}: {_one_line(str(exc))[:300]}; {where}; please report it",
          file=sys.stderr)  # fmt: skip
    return 3


def _write_log(text: str) -> Path | None:
    from ..hub.download import cache_dir

    name = f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    for folder in (cache_dir() / "logs", Path(tempfile.gettempdir()) / "styleclip-logs"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            return folder / name
        except OSError:
            continue
    return None
