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
