"""Running one hostile or clumsy input through styleclip and checking that it was refused as a user deserves.

Every case of the hostile-input suite goes through :func:`refused` (the CLI) or :func:`refused_by` (a library or UI
call): the exit status, exactly one line on stderr, no traceback and no "internal error", nothing changed outside
the folders the case may write, and the whole case run under an address-space limit so that a file that makes
styleclip allocate what it declares fails the test instead of the machine.
"""

from __future__ import annotations

import hashlib
import re
import resource
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

from styleclip.cli.main import main
from styleclip.errors import StyleclipError

# Headroom over the address space already mapped when a case starts: enough for a tiny model's work and for the
# thread arenas torch and glibc reserve, far below what a crafted file declares (tens of GB).
DEFAULT_HEADROOM = 3 << 30


def _address_space() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


@contextmanager
def memory_bound(headroom: int = DEFAULT_HEADROOM):
    """Lower this process's address-space limit (``RLIMIT_AS``) to what it maps now plus ``headroom`` bytes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + headroom
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def snapshot(roots: Iterable[Path]) -> dict[str, tuple]:
    """Every file and link under ``roots``: its kind, and for a file its size and SHA-256 (links are not followed)."""
    state: dict[str, tuple] = {}
    for root in roots:
        root = Path(root)
        if not root.exists() and not root.is_symlink():
            continue
        for path in [root, *root.rglob("*")] if root.is_dir() and not root.is_symlink() else [root]:
            if path.is_symlink():
                state[str(path)] = ("link", str(path.readlink()))
            elif path.is_file():
                state[str(path)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            elif path.is_dir():
                state[str(path)] = ("dir",)
    return state


def changed_outside(before: dict, after: dict, allowed: Iterable[Path] = ()) -> list[str]:
    """Paths added, removed or changed between two snapshots, leaving out those under an ``allowed`` folder."""
    allowed = [str(Path(a)) for a in allowed]
    diff = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return [k for k in diff if not any(k == a or k.startswith(a + "/") for a in allowed)]


def stderr_lines(err: str) -> list[str]:
    """The lines a terminal would keep: progress bars redraw themselves with carriage returns and leave nothing."""
    lines = []
    for raw in err.split("\n"):
        kept = raw.rsplit("\r", 1)[-1].strip()
        if kept:
            lines.append(kept)
    return lines


def check_one_line(err: str, match: str | None = None) -> str:
    lines = stderr_lines(err)
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}:\n{err}"
    line = lines[0]
    assert "Traceback" not in err, err
    assert "internal error" not in line, f"a known bad input reached the last-resort handler: {line}"
    if match is not None:
        assert re.search(match, line, re.IGNORECASE), f"{line!r} does not say {match!r}"
    return line


def refused(
    argv: list[str],
    capsys,
    *,
    match: str | None = None,
    code: int = 2,
    watch: Iterable[Path] = (),
    may_write: Iterable[Path] = (),
    headroom: int = DEFAULT_HEADROOM,
) -> str:
    """Run ``styleclip ARGV`` in this process and check that it was refused in one line.

    Args:
        argv: the command line after ``styleclip``.
        capsys: pytest's fixture (stderr is read from it).
        match: a regular expression the line must contain (case-insensitive).
        code: the exit status expected.
        watch: folders and files that must be exactly as they were afterwards, except below ``may_write``.
        headroom: bytes of address space the case may map beyond what the process maps when it starts.

    Returns:
        The one line printed on stderr.
    """
    watch = list(watch)
    before = snapshot(watch)
    capsys.readouterr()
    with memory_bound(headroom):
        status = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    assert status == code, f"exit status {status}, expected {code}; stderr:\n{err}"
    line = check_one_line(err, match)
    outside = changed_outside(before, snapshot(watch), may_write)
    assert not outside, f"changed outside the output folder: {outside}"
    return line


def refused_by(
    call: Callable[[], object],
    *,
    match: str | None = None,
    error: type[BaseException] = StyleclipError,
    watch: Iterable[Path] = (),
    may_write: Iterable[Path] = (),
    headroom: int = DEFAULT_HEADROOM,
) -> str:
    """Run a library or UI call under the memory bound; it must raise ``error`` with a one-line message."""
    watch = list(watch)
    before = snapshot(watch)
    with memory_bound(headroom):
        try:
            call()
        except error as exc:
            message = str(exc)
        else:
            raise AssertionError(f"{call} was not refused")
    assert message and "\n" not in message.strip(), f"not one line: {message!r}"
    assert "Traceback" not in message
    if match is not None:
        assert re.search(match, message, re.IGNORECASE), f"{message!r} does not say {match!r}"
    outside = changed_outside(before, snapshot(watch), may_write)
    assert not outside, f"changed outside the output folder: {outside}"
    return message
