"""Writing outputs so that nothing is half-written, nothing outside the output folder changes, nothing is lost.

- :func:`atomic_write` writes a temporary file beside the target, then renames it over the target: a crash or a
  full disk never leaves a half-written result under its final name, and a symbolic link planted at the target's
  name is replaced, never written through (a rename replaces the link itself, not what it points to).
- :func:`check_outdir` refuses, before any model is loaded, an output folder that cannot be one.
- :func:`refuse_earlier_results` refuses to replace a previous run's results unless the user says ``--overwrite``.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import StyleclipError, UsageError


class OutputError(StyleclipError, OSError):
    """An output could not be written (a full or read-only folder, a file in the way): one line naming the folder.

    Also an :class:`OSError` (with the original ``errno``), so that callers catching file-system errors still do.
    """

    def __init__(self, message: str, code: int | None = None, filename: str | None = None) -> None:
        if code is None:
            super().__init__(message)
        else:
            super().__init__(code, message, filename)
        self.message = message

    def __str__(self) -> str:
        return self.message


# What the user can do about an error of the file system they chose to write to.
# What to do about the file-system errors that are the machine's, not styleclip's (one line each).
OS_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space or choose another folder",
    errno.EDQUOT: "the disk quota is used up; free some space or choose another folder",
    errno.EFBIG: "the file is too large for this file system; choose another folder",
    errno.EROFS: "the file system is read-only; choose another folder",
    errno.EACCES: "permission denied; check the folder's permissions or choose another folder",
    errno.EPERM: "permission denied; check the folder's permissions or choose another folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another folder",
    errno.EEXIST: "a file is in the way of a folder; choose another folder",
    errno.EISDIR: "a folder is in the way; choose another folder",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter folder",
    errno.ELOOP: "too many symbolic links; choose another folder",
    errno.EIO: "the disk reported an input/output error; choose another folder",
    errno.ENOENT: "no such file or folder; check the path",
}


def output_error(exc: OSError, path: Path) -> OSError:
    """``exc`` as one line naming the folder ``path`` is in, or ``exc`` itself when it is not the folder's fault."""
    if isinstance(exc, OutputError) or exc.errno not in OS_ADVICE:
        return exc
    path = Path(path)
    return OutputError(
        f"cannot write {path.name} in {path.parent}: {OS_ADVICE[exc.errno]}", exc.errno, str(path.parent)
    )


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` for a temporary file next to ``path``, then rename it over ``path``.

    A symbolic link at ``path`` is replaced by the new file; what it pointed to is left untouched. A file-system
    error (full disk, read-only folder, ...) is raised as an :class:`OutputError` naming the folder, and leaves
    neither the temporary file nor a partial ``path`` behind.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and not path.is_symlink():
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        # mkstemp opens with O_EXCL: a link planted at a guessed temporary name makes it pick another name
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(Path(tmp))
        # mkstemp makes the file private (0600); give it the permissions an ordinary new file would get
        os.chmod(tmp, NEW_FILE_MODE)
        os.replace(tmp, path)  # rename(2) replaces a link at ``path``; it never follows it
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise output_error(exc, path) from None
        raise
    return path


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: done once, at import, before any threads
    os.umask(mask)
    return mask


_UMASK = _read_umask()
NEW_FILE_MODE = 0o666 & ~_UMASK  # the permissions an ordinary new file gets


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """``data`` written to ``path`` as :func:`atomic_write` writes (never through a link, never half-written)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> Path:
    """``text`` (UTF-8) written to ``path`` as :func:`atomic_write` writes."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_save_arrays(path: Path, arrays) -> Path:
    """``.npy`` for one array, ``.npz`` for a dict of arrays, written atomically. NumPy is handed a file
    object, since given a name it would add its own suffix to the temporary one."""
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            if isinstance(arrays, dict):
                np.savez(f, **arrays)
            else:
                np.save(f, arrays)

    return atomic_write(Path(path), write)


def make_folder(path: Path) -> Path:
    """``mkdir -p``, with a file-system error raised as one line naming the folder."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno not in OS_ADVICE:
            raise
        raise OutputError(f"cannot make the folder {path}: {OS_ADVICE[exc.errno]}", exc.errno, str(path)) from None
    return path


def check_outdir(path: Path | None, flag: str = "--outdir") -> None:
    """Refuse an output folder that is a file, lies below a file, or cannot be written: before any model loads."""
    if path is None:
        return
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise UsageError(f"{flag} {path} is a link to nothing; remove it or choose another folder")
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file; name a folder")
    ancestor = path
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            return
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{flag} {path}: {ancestor} is a file, not a folder; choose another folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: cannot write in {ancestor} (read-only); choose another folder")


def check_output_file(path: Path, flag: str = "the output") -> None:
    """Refuse an output file path that is a folder, or whose folder cannot be one (before any model loads)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise UsageError(f"{flag} {path} is a folder; name a file")
    check_outdir(path.parent, flag=f"{flag}'s folder")


def earlier_results(outdir: Path, patterns: Iterable[str]) -> list[Path]:
    """The paths under ``outdir`` that match ``patterns`` (``/``-separated, ``fnmatch`` per part), links included.

    A link is reported where it stands and never followed, so that a folder linked from elsewhere is not searched.
    """
    outdir = Path(outdir)
    found: dict[Path, None] = {}
    if not outdir.is_dir():
        return []
    top: set[str] | None = None
    for pattern in patterns:
        parts = pattern.strip("/").split("/")
        if len(parts) == 1 and not any(c in parts[0] for c in "*?["):  # one listing for many names (seeds)
            top = set(os.listdir(outdir)) if top is None else top
            if parts[0] in top:
                found[outdir / parts[0]] = None
            continue
        for hit in _match(outdir, parts):
            found[hit] = None
    return sorted(found)


def _match(folder: Path, parts: list[str]) -> list[Path]:
    head, rest = parts[0], parts[1:]
    if not any(c in head for c in "*?["):
        candidates = [folder / head] if os.path.lexists(folder / head) else []
    else:
        try:
            with os.scandir(folder) as entries:
                candidates = [folder / e.name for e in entries if fnmatch.fnmatchcase(e.name, head)]
        except OSError:
            return []
    hits = []
    for c in candidates:
        if not rest or c.is_symlink():  # a link in a folder's place is itself an output in the way
            hits.append(c)
        elif c.is_dir():
            hits += _match(c, rest)
    return hits


def refuse_earlier_results(
    outdir: Path,
    patterns: Iterable[str],
    *,
    overwrite: bool,
    flag: str = "--outdir",
    fix: str = "pass --overwrite to replace them, or choose another folder",
) -> list[Path]:
    """Refuse to write into ``outdir`` when it holds files matching ``patterns``, unless ``overwrite``.

    With ``overwrite``, links standing where an output goes are removed (never followed: only the link goes), so
    that the outputs land inside ``outdir``. An empty or new folder is always fine.

    Returns:
        The earlier results found (empty when there are none).
    """
    found = earlier_results(outdir, patterns)
    if found and not overwrite:
        first = found[0].relative_to(outdir)
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        raise UsageError(f"{flag} {outdir} holds earlier results ({first}{more}); {fix}")
    for path in found:
        if path.is_symlink():  # dangling or not, a link in an output's place goes; what it points to stays
            path.unlink(missing_ok=True)  # missing_ok: torchrun's processes check the same folder at once
    return found


def refuse_links_to_resume(outdir: Path, patterns: Iterable[str], *, overwrite: bool, redo: str = "redo it") -> None:
    """For a folder that is resumed (its earlier results kept): refuse a link in an output's place, since resuming
    never removes what the user put there nor writes through it; with ``overwrite`` the links go (never followed)."""
    links = [p for p in earlier_results(outdir, patterns) if p.is_symlink()]
    if links and not overwrite:
        raise UsageError(f"{links[0]} is a link, and styleclip writes no output through a link: make it a folder, "
                         f"or pass --overwrite to remove the link and {redo}")  # fmt: skip
    refuse_earlier_results(outdir, patterns, overwrite=True)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name one file: through another spelling, a symbolic link or a hard link."""
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)
