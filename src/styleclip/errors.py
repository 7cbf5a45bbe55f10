"""User-facing errors: each message is one line that says what is wrong and what to do.

The CLI prints ``str(error)`` for these and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class StyleclipError(Exception):
    """Base class of the errors styleclip reports to its users without a traceback."""


class CheckpointError(StyleclipError):
    """A model file is missing, unreadable, corrupt, or not a network styleclip knows."""


class UsageError(StyleclipError, ValueError):
    """An argument is invalid (bad seed range, unknown option value, ...)."""


def first_lines(exc: BaseException, limit: int = 200) -> str:
    """A foreign library's exception as one line for a message: its non-empty lines joined, cut at ``limit``.

    TorchScript's interpreter prints its own traceback before the error the program raised: then only that last
    line is kept.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if any("TorchScript" in line for line in lines[:2]):
        lines = lines[-1:]
    return "; ".join(lines)[:limit] or type(exc).__name__
