"""Downloads that never leave a half-written or unverified file behind.

A file is fetched into ``<name>.part`` beside its destination (resumed with an HTTP Range request
when a previous attempt was cut off), checked against its expected size and SHA-256, and only then
renamed into place. A lock file serialises processes that ask for the same file; the loser of the
race finds the finished file and verifies it. Files without a published hash get their SHA-256
recorded in ``<name>.sha256`` on first download and are verified against it afterwards (trust on
first use). Google Drive's "can't scan this file for viruses" page is answered automatically.
"""

from __future__ import annotations

import hashlib
import html
import http.cookiejar
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from filelock import FileLock
from tqdm import tqdm

from ..errors import StyleclipError

CHUNK = 1 << 20
USER_AGENT = "styleclip (+https://pypi.org/project/styleclip/)"


class DownloadError(StyleclipError):
    """A file could not be fetched or failed verification."""


class OfflineError(DownloadError):
    """Offline mode is on and a needed file is not in the cache."""


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where downloads live: ``override`` -> ``$STYLECLIP_HOME`` -> the platform's cache folder."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("STYLECLIP_HOME")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "styleclip"


def offline_mode() -> bool:
    return os.environ.get("STYLECLIP_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_id(path: Path) -> str:
    """The id git gives this file's content: ``sha1(b"blob <size>\\0" + content)``."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, sha256: str | None = None, size: int | None = None, git_blob: str | None = None) -> bool:
    """True if ``path`` exists and matches ``size``, ``git_blob`` and ``sha256`` (or its recorded
    trust-on-first-use hash)."""
    if not path.is_file():
        return False
    if size is not None and path.stat().st_size != size:
        return False
    if git_blob is not None and git_blob_id(path) != git_blob.lower():
        return False
    recorded = None if git_blob else _recorded_hash(path)
    if sha256 is None and recorded is None:
        return True
    digest = sha256_file(path)
    if sha256 is not None and not digest.startswith(sha256.lower()):
        return False
    full = sha256 is not None and len(sha256) == 64
    return full or recorded is None or digest == recorded


def download(
    urls: Sequence[str],
    dest: Path,
    sha256: str | None = None,
    size: int | None = None,
    offline: bool | None = None,
    git_blob: str | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Make ``dest`` a verified copy of the file at the first of ``urls`` that serves it.

    Args:
        urls: sources in preference order (http/https; Google Drive links are understood).
        dest: final path; ``dest.part``, ``dest.lock`` and (without ``sha256``) ``dest.sha256`` sit beside it.
        sha256: expected hex digest, or None for trust on first use. A shorter prefix (torchvision
            publishes the first 8 hex digits) is checked and the full digest recorded on first use.
        size: expected size in bytes, if known.
        git_blob: expected git blob id, for files served from a repository.
        offline: never touch the network (default: ``$STYLECLIP_OFFLINE``).
        retries: attempts per URL, with exponential ``backoff`` seconds between them.

    Returns:
        ``dest``. Raises :class:`OfflineError` or :class:`DownloadError` with a one-line message.
    """
    dest = Path(dest)
    if verify(dest, sha256, size, git_blob):
        return dest
    if offline if offline is not None else offline_mode():
        raise OfflineError(
            f"offline mode: {dest.name} is not in the cache ({dest}); connect once or put the file there"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if verify(dest, sha256, size, git_blob):  # another process finished it while we waited
            return dest
        if dest.exists():
            dest.unlink()  # a corrupt or stale copy
        failures = []
        for url in urls:
            try:
                _fetch_with_retries(url, dest, sha256, size, git_blob, retries, backoff, timeout, progress)
                return dest
            except _HashMismatch as exc:
                raise DownloadError(str(exc)) from None
            except DownloadError as exc:
                failures.append(f"{url} ({exc})")
        tried = "; ".join(failures) if failures else "no source URL is known"
        raise DownloadError(f"could not download {dest.name}: tried {tried}. Download it by hand and save it as {dest}")


class _HashMismatch(DownloadError):
    pass


def _fetch_with_retries(
    url: str,
    dest: Path,
    sha256: str | None,
    size: int | None,
    git_blob: str | None,
    retries: int,
    backoff: float,
    timeout: float,
    progress: bool,
) -> None:
    part = Path(str(dest) + ".part")
    for attempt in range(max(retries, 1)):
        try:
            _fetch(url, part, timeout, progress)
            break
        except _Permanent as exc:
            raise DownloadError(str(exc)) from None
        except (OSError, urllib.error.URLError, DownloadError) as exc:
            if attempt + 1 >= max(retries, 1):
                raise DownloadError(_describe(exc)) from None
            time.sleep(backoff * 2**attempt)
    if size is not None and part.stat().st_size != size:
        got = part.stat().st_size
        part.unlink()
        raise DownloadError(f"size {got} bytes instead of {size}")
    if git_blob is not None and git_blob_id(part) != git_blob.lower():
        part.unlink()
        raise _HashMismatch(f"{dest.name} from {url} does not have git blob id {git_blob}; the file was removed")
    digest = sha256_file(part)
    if sha256 is not None and not digest.startswith(sha256.lower()):
        part.unlink()
        raise _HashMismatch(
            f"{dest.name} from {url} has SHA-256 {digest}, expected {sha256.lower()}; the file was removed"
        )
    os.replace(part, dest)
    if (sha256 is None or len(sha256) < 64) and git_blob is None:
        _record_hash(dest, digest)


class _Permanent(DownloadError):
    """Not worth retrying (404, 403, a web page instead of the file)."""


class _RangeNotSatisfiable(DownloadError):
    pass


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def _fetch(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Append the remainder of ``url`` to ``part`` (resuming from its current size when the server allows)."""
    opener = _opener()
    have = part.stat().st_size if part.exists() else 0
    try:
        response = _open(opener, url, have, timeout)
    except _RangeNotSatisfiable:  # the partial file is stale (longer than the file): start over
        part.unlink()
        have = 0
        response = _open(opener, url, have, timeout)
    if _is_html(response):
        # Google Drive answers large files with a confirmation page; follow it once.
        page = response.read(2_000_000).decode("utf-8", "replace")
        response.close()
        confirm = _drive_confirmation(url, page)
        if confirm is None:
            raise _Permanent("the server sent a web page instead of the file")
        response = _open(opener, confirm, have, timeout)
        if _is_html(response):
            response.close()
            raise _Permanent("the server sent a web page instead of the file (quota exceeded or link changed?)")
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None and length.isdigit() else None
        mode = "ab" if resumed else "wb"
        bar = tqdm(
            total=total,
            initial=have,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name[: -len(".part")],
            disable=not progress or None,
            leave=False,
        )
        with open(part, mode) as f, bar:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                f.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise DownloadError(f"connection closed after {part.stat().st_size} of {total} bytes")


def _open(opener, url: str, offset: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            raise _RangeNotSatisfiable() from None
        if exc.code in (401, 403, 404, 410):
            raise _Permanent(f"HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(f"HTTP {exc.code} {exc.reason}") from None


def _is_html(response) -> bool:
    return response.headers.get_content_type() == "text/html"


def _drive_confirmation(url: str, page: str) -> str | None:
    """The URL behind Google Drive's 'download anyway' form (old ``confirm=`` links and the newer form)."""
    form = re.search(r'<form[^>]*id="download-form"[^>]*action="([^"]+)"', page)
    if form:
        action = urllib.parse.urljoin(url, html.unescape(form.group(1)))
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
        return action + "?" + urllib.parse.urlencode({k: html.unescape(v) for k, v in fields.items()})
    link = re.search(r'href="(/uc\?export=download[^"]*confirm=[^"]+)"', page)
    if link:
        return urllib.parse.urljoin(url, html.unescape(link.group(1)))
    token = re.search(r"confirm=([0-9A-Za-z_-]+)", page)
    if token and "id=" in url:
        sep = "&" if "?" in url else "?"
        return f"{url}{sep}confirm={token.group(1)}"
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return f"network error: {exc.reason}"
    return str(exc) or type(exc).__name__


def _recorded_hash(path: Path) -> str | None:
    record = Path(str(path) + ".sha256")
    if record.is_file():
        return record.read_text().split()[0].strip().lower() or None
    return None


def _record_hash(path: Path, digest: str) -> None:
    record = Path(str(path) + ".sha256")
    tmp = Path(str(record) + ".tmp")
    tmp.write_text(f"{digest}  {path.name}\n")
    os.replace(tmp, record)
