"""What a file names for styleclip to open, and whether styleclip may open it without being told.

Reports, the text of output PNGs and job files are data that people share. They name generators, CLIP models,
latents, mappers, photo folders: if styleclip opened whatever such a file names, a shared file could make it read
any file the user can read (and show or copy it) or fetch any URL. So a name taken from a file is opened only when
it is a catalogue name (``ffhq``, ``stylegan2-ada:afhqdog``, ``ViT-B-32:openai``: they resolve to verified assets)
or, for a job file, a relative path that stays inside the job file's own folder. Anything else (an absolute path,
a ``..`` escape, a link out of the folder, a URL of any scheme) is refused in one line that names the entry and
the two ways to allow it: the same value given on the command line, or the command's trust flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .hub.resolve import exists

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+@-]*")


@dataclass(frozen=True)
class Reference:
    """One thing a file names: ``field`` (where in the file), ``value`` (as written) and ``kind``.

    ``kind``: a catalogue kind (``generator``, ``identity``, ``mapper``, ``directions``), ``clip`` (open_clip's
    ``ARCH:TAG`` names), or ``file``/``folder`` (a latent file, a photo folder, a prompt list: never a name).
    """

    field: str
    value: str
    kind: str


def has_scheme(text: str) -> bool:
    """Anything with a scheme that reaches beyond a local path: ``http://``, ``file:/``, ``ftp://``, ``s3://``...
    (:func:`styleclip.hub.resolve.is_url` is narrower: what styleclip downloads, http(s) only)."""
    return bool(_SCHEME.match(text)) or text[:5].lower() == "file:"


def _is_file(path: Path) -> bool:
    """An existing path that is not a folder (a file, a device, a link to one)."""
    return exists(path) and not path.is_dir()


def is_catalogue_name(value: str, kind: str, base: Path | None = None) -> bool:
    """Whether ``value`` names a verified asset rather than a file (a file of that name next to ``base``, or in
    the working folder when ``base`` is None, wins, as the loaders let it win; a folder does not)."""
    if kind in ("file", "folder") or has_scheme(value) or not value.strip():
        return False
    if value.startswith("~") or _is_file(Path(value)) or (base is not None and _is_file(base / value)):
        return False  # a folder never shadows a catalogue name (the loaders' rule: a folder is no checkpoint)
    if kind == "clip":  # open_clip's ARCH or ARCH:TAG; a tag that is a file is a path
        arch, _, tag = value.partition(":")
        return bool(
            _NAME.fullmatch(arch) and (not tag or (_NAME.fullmatch(tag) and not exists((base or Path()) / tag)))
        )
    from .hub.registry import find_asset

    if find_asset(value) is not None:
        return True
    # load_mapper takes the published mappers' bare names (mohawk = styleclip-mapper:mohawk)
    return kind == "mapper" and bool(_NAME.fullmatch(value)) and find_asset(f"styleclip-mapper:{value}") is not None


def inside_folder(value: str, folder: Path, kind: str = "file") -> str | None:
    """``value`` as a path resolved inside ``folder`` (links followed), or None when it leaves it or is absolute.

    For a CLIP ``ARCH:path`` value the path part is resolved and the architecture kept.
    """
    if has_scheme(value) or value.startswith("~"):
        return None
    prefix = ""
    if kind == "clip" and not exists(folder / value):
        arch, sep, tag = value.partition(":")
        if sep and _NAME.fullmatch(arch):
            prefix, value = f"{arch}:", tag
    path = Path(value)
    if path.is_absolute() or not value.strip():
        return None
    try:
        root = folder.resolve()
        resolved = (root / path).resolve()
    except (OSError, RuntimeError, ValueError):  # link loops, names too long
        return None
    if resolved != root and not resolved.is_relative_to(root):
        return None
    return prefix + str(resolved)


def what(value: str) -> str:
    """'a URL' or 'a path': how a refused value is described."""
    return "a URL" if has_scheme(value) else "a path"


def refuse(source: Path, ref: Reference, override: str | None, trust_flag: str, rule: str, why: str = "") -> UsageError:
    """The one-line refusal of ``ref`` found in ``source`` (``rule``: what such a file may name), naming both ways
    to allow it."""
    shown = ref.value if len(ref.value) <= 120 else ref.value[:117] + "..."
    given = f"give it as {override} on the command line, or " if override else ""
    return UsageError(
        f"{source} names {ref.field} {shown!r}, {what(ref.value)}{why}; {rule}: {given}add {trust_flag} if you "
        f"trust {source.name}"
    )
