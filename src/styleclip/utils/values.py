"""Checking values that come from files (reports, job files) as strictly as argparse checks the command line.

A JSON or YAML file can hold any type where a number is expected (``"10"``, ``true``, ``1e308``, ``NaN``, a list),
and a value of the wrong type fails much later, deep in the code, as a traceback or a black picture. Each check
here raises a :class:`UsageError` whose one line names the field and what it must be.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import UsageError


def _where(name: str, where: str) -> str:
    return f"{where}: {name}" if where else name


def check_int(name: str, value: Any, lo: int, hi: int, *, where: str = "", optional: bool = False) -> int | None:
    """``value`` as an int in ``[lo, hi]`` (a bool, a float or a string is refused: ``steps: "10"`` is a mistake)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UsageError(f"{_where(name, where)} must be an integer in {lo}..{hi}, got {_short(value)}")
    return value


def check_float(
    name: str,
    value: Any,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    where: str = "",
    optional: bool = False,
    lo_open: bool = False,
) -> float | None:
    """``value`` as a finite float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``); ints are accepted, bools not."""
    if value is None and optional:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        try:
            number = float(value)
        except OverflowError:  # an int like 10**400
            ok = False
        else:
            ok = math.isfinite(number) and (lo < number if lo_open else lo <= number) and number <= hi
    if not ok:
        low = "-inf" if lo == -math.inf else f"{lo:g}"
        high = "inf" if hi == math.inf else f"{hi:g}"
        bounds = f"{'(' if lo_open else '['}{low}, {high}]"
        raise UsageError(f"{_where(name, where)} must be a finite number in {bounds}, got {_short(value)}")
    return number


def check_str(name: str, value: Any, *, where: str = "", optional: bool = False, max_len: int = 4096) -> str | None:
    """``value`` as a non-empty string of at most ``max_len`` characters."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise UsageError(f"{_where(name, where)} must be a non-empty text of at most {max_len} characters, "
                         f"got {_short(value)}")  # fmt: skip
    return value


def check_choice(name: str, value: Any, choices: Sequence[str], *, where: str = "") -> str:
    """``value`` if it is one of ``choices`` (strings), else a one-line :class:`UsageError` naming ``name``."""
    if not isinstance(value, str) or value not in choices:
        raise UsageError(f"{_where(name, where)} must be one of {', '.join(choices)}, got {_short(value)}")
    return value


def check_bool(name: str, value: Any, *, where: str = "", optional: bool = False) -> bool | None:
    """``value`` if it is a real bool (``None`` too when ``optional``), else a one-line :class:`UsageError`."""
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise UsageError(f"{_where(name, where)} must be true or false, got {_short(value)}")
    return value


def check_str_list(
    name: str, value: Any, *, where: str = "", max_items: int = 10_000, max_len: int = 4096
) -> list[str]:
    """A string or a list of strings, as a list (each non-empty, at most ``max_items`` of them)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) > max_items:
        raise UsageError(f"{_where(name, where)} must be a text or a list of at most {max_items} texts, "
                         f"got {_short(value)}")  # fmt: skip
    return [check_str(f"{name}[{i}]", item, where=where, max_len=max_len) for i, item in enumerate(items)]  # type: ignore[misc]


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = " ".join(repr(value).split())
    except (ValueError, RecursionError):  # ints beyond Python's digit limit, self-containing lists
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
