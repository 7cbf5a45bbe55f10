"""Downloads that never leave a half-written or unverified file behind.

A file is fetched into ``<name>.part`` beside its destination (resumed with an HTTP Range request
when a previous attempt was cut off), checked against its expected size and SHA-256, and only then
renamed into place. A lock file serialises processes that ask for the same file; the loser of the
race finds the finished file and verifies it. Files without a published hash get their SHA-256
recorded in ``<name>.sha256`` on first download and are verified against it afterwards (trust on
first use); a later download that does not match the record is refused.

What a server can make styleclip do is bounded: only http(s) is spoken (no ``file://``, ``ftp://`` or
``data:``, not even through a redirect), a web page is followed only when it is Google Drive's "can't scan
this file for viruses" page served by Google and pointing back to Google, a resumed answer must start where
it was asked to, and a download has an overall deadline and a minimum rate
(``STYLECLIP_DOWNLOAD_DEADLINE`` seconds, ``STYLECLIP_DOWNLOAD_MIN_RATE`` bytes/s measured over
``STYLECLIP_DOWNLOAD_RATE_WINDOW`` seconds). Every failure is a :class:`DownloadError` with a one-line
message naming the URL or the cache folder and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import html
import http.client
import http.cookiejar
import math
import os
import re
import socket
import stat
import string
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import filelock
from filelock import FileLock
from tqdm import tqdm

from ..errors import StyleclipError

CHUNK = 1 << 20
USER_AGENT = "styleclip (+https://pypi.org/project/styleclip/)"

# Hosts whose HTML answer may be Google Drive's confirmation page, and the only hosts that page may send us to.
GOOGLE_HOSTS = frozenset({"drive.google.com", "drive.usercontent.google.com", "docs.google.com"})

DEFAULT_DEADLINE = 4 * 3600.0  # a 1 GB checkpoint at 100 kB/s still fits
DEFAULT_MIN_RATE = 1024.0  # bytes/s; a connection slower than this for a whole window is a stalled one
DEFAULT_RATE_WINDOW = 60.0
MAX_REDIRECTS = 10
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)


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
    trust-on-first-use hash). A damaged record (empty, not a SHA-256, unreadable) vouches for nothing."""
    path = Path(path)
    try:
        if not path.is_file():
            return False
        if size is not None and path.stat().st_size != size:
            return False
        if git_blob is not None:
            if git_blob_id(path) != git_blob.lower():
                return False
            recorded, damaged = None, False
        else:
            recorded, damaged = _read_record(path)
        if sha256 is None and recorded is None:
            return not damaged  # nothing else vouches for the file once its record is broken
        digest = sha256_file(path)
    except OSError:
        return False
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
    deadline: float | None = None,
    min_rate: float | None = None,
    rate_window: float | None = None,
) -> Path:
    """Make ``dest`` a verified copy of the file at the first of ``urls`` that serves it.

    Args:
        urls: sources in preference order (http/https only; Google Drive links are understood).
        dest: final path; ``dest.part``, ``dest.lock`` and (without ``sha256``) ``dest.sha256`` sit beside it.
        sha256: expected hex digest, or None for trust on first use. A shorter prefix (torchvision
            publishes the first 8 hex digits) is checked and the full digest recorded on first use.
        size: expected size in bytes, if known.
        git_blob: expected git blob id, for files served from a repository.
        offline: never touch the network (default: ``$STYLECLIP_OFFLINE``).
        retries: attempts per URL, with exponential ``backoff`` seconds between them.
        timeout: seconds one network operation may wait.
        deadline: seconds the whole download may take, waiting for another process's download included
            (default ``$STYLECLIP_DOWNLOAD_DEADLINE`` or 4 hours).
        min_rate: bytes per second below which a source is given up (default ``$STYLECLIP_DOWNLOAD_MIN_RATE``
            or 1024; 0 turns the check off), measured over ``rate_window`` seconds
            (default ``$STYLECLIP_DOWNLOAD_RATE_WINDOW`` or 60).

    Returns:
        ``dest``. Raises :class:`OfflineError` or :class:`DownloadError` with a one-line message.
    """
    dest = Path(dest)
    urls = list(urls)
    for url in urls:
        check_url(url)
    limits = _Limits.resolve(deadline, min_rate, rate_window, timeout)
    if verify(dest, sha256, size, git_blob):
        _rerecord(dest, sha256, git_blob)
        return dest
    if offline if offline is not None else offline_mode():
        raise OfflineError(
            f"offline mode: {dest.name} is not in the cache ({dest}); connect once or put the file there"
        )
    _make_folder(dest.parent)
    guard = _Guard(limits.deadline)
    try:
        with _locked(dest, guard):
            if verify(dest, sha256, size, git_blob):  # another process finished it while we waited
                _rerecord(dest, sha256, git_blob)
                return dest
            _remove_stale(dest)
            failures = []
            for url in urls:
                try:
                    _fetch_with_retries(url, dest, sha256, size, git_blob, retries, backoff, limits, guard, progress)
                    return dest
                except _Deadline as exc:
                    raise DownloadError(f"could not download {dest.name} from {_printable(url)}: {exc}") from None
                except (_HashMismatch, _Fatal) as exc:
                    raise DownloadError(str(exc)) from None
                except DownloadError as exc:
                    failures.append(f"{_printable(url)} ({exc})")
            tried = "; ".join(failures) if failures else "no source URL is known"
            raise DownloadError(
                f"could not download {dest.name}: tried {tried}. Download it by hand and save it as {dest}"
            )
    finally:
        guard.close()


def check_url(url: str) -> None:
    """Refuse, in one line, anything but a well-formed http(s) URL with a host."""
    shown = _printable(url)
    if not isinstance(url, str) or any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise DownloadError(f"{shown}: a URL may not contain spaces or control characters; percent-encode them")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError as exc:
        raise DownloadError(f"{shown}: not a valid URL ({_printable(str(exc))}); check it") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise DownloadError(
            f"{shown}: only http:// and https:// URLs are downloaded; name a local file by its path instead"
        )
    if not parts.hostname:
        raise DownloadError(f"{shown}: the URL names no host; check it")


@dataclass(frozen=True)
class _Limits:
    deadline: float
    min_rate: float
    window: float
    timeout: float

    @classmethod
    def resolve(cls, deadline, min_rate, window, timeout) -> _Limits:
        deadline = _setting(deadline, "deadline", "STYLECLIP_DOWNLOAD_DEADLINE", DEFAULT_DEADLINE, positive=True)
        min_rate = _setting(min_rate, "min_rate", "STYLECLIP_DOWNLOAD_MIN_RATE", DEFAULT_MIN_RATE, positive=False)
        window = _setting(window, "rate_window", "STYLECLIP_DOWNLOAD_RATE_WINDOW", DEFAULT_RATE_WINDOW, positive=True)
        timeout = _setting(timeout, "timeout", "", 60.0, positive=True)
        # A connection that stays silent for a whole window is slower than any minimum rate.
        per_read = min(timeout, window) if min_rate > 0 else timeout
        return cls(deadline, min_rate, window, min(per_read, deadline))


def _setting(value, name: str, env: str, default: float, positive: bool) -> float:
    where = f"download(..., {name}=)"
    if value is None:
        text = os.environ.get(env, "").strip() if env else ""
        if not text:
            return default
        where = env
        try:
            value = float(text)
        except ValueError:
            raise DownloadError(f"{env}={_printable(text)!r} is not a number; set it to seconds or bytes/s") from None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise DownloadError(f"{where} must be a number, got {_printable(repr(value))}") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise DownloadError(f"{where} must be a finite number {'above' if positive else 'of at least'} 0, got {value}")
    return value


class _Guard:
    """The overall deadline: when it passes, every socket the download opened is shut down, which wakes a read
    that a trickling server keeps alive one byte at a time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shutdown(sock)

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            if not self.expired:
                self._sockets.append(sock)
                return
        _shutdown(sock)

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def passed(self) -> bool:
        return self.expired or self.remaining() <= 0

    def check(self) -> None:
        if self.passed():
            raise self.error()

    def error(self) -> _Deadline:
        return _Deadline(
            f"the download did not finish within {_seconds(self.seconds)} (STYLECLIP_DOWNLOAD_DEADLINE); "
            "try again later (it resumes where it stopped) or raise the deadline"
        )

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, self.remaining())))
        self.check()

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._sockets = []


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the plain socket's: an SSL socket's own would drop TLS state under a reader
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _seconds(value: float) -> str:
    return f"{value:g} s" if value < 120 else f"{value / 60:g} min"


class _HashMismatch(DownloadError):
    pass


class _Permanent(DownloadError):
    """Not worth retrying (404, 403, a web page instead of the file, a broken server)."""


class _Fatal(DownloadError):
    """Not worth trying another source either: the deadline passed, or the cache cannot be written."""


class _Deadline(_Fatal):
    pass


class _TooSlow(DownloadError):
    """This source is below the minimum rate: give it up, keep what arrived for a later resume."""


class _RangeNotSatisfiable(DownloadError):
    pass


def _fetch_with_retries(
    url: str,
    dest: Path,
    sha256: str | None,
    size: int | None,
    git_blob: str | None,
    retries: int,
    backoff: float,
    limits: _Limits,
    guard: _Guard,
    progress: bool,
) -> None:
    part = Path(str(dest) + ".part")
    attempts = max(int(retries), 1)
    for attempt in range(attempts):
        try:
            _fetch(url, part, size, limits, guard, progress)
            break
        except _Fatal:
            raise
        except (_Permanent, _TooSlow):
            if guard.passed():  # a connection cut by the deadline can look like any broken answer
                raise guard.error() from None
            raise
        except (DownloadError, OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as exc:
            if guard.passed():
                raise guard.error() from None
            if _is_permanent(exc):
                raise _Permanent(_describe(exc)) from None
            if attempt + 1 >= attempts:
                raise DownloadError(_describe(exc)) from None
            guard.sleep(backoff * 2**attempt)
    got = _size_of(part)
    if size is not None and got != size:
        _discard(part)
        raise DownloadError(f"size {got} bytes instead of {size}")
    with _cache_errors(part.parent):
        if git_blob is not None and git_blob_id(part) != git_blob.lower():
            _discard(part)
            raise _HashMismatch(
                f"{dest.name} from {_printable(url)} does not have git blob id {git_blob}; the file was removed"
            )
        digest = sha256_file(part)
    if sha256 is not None and not digest.startswith(sha256.lower()):
        _discard(part)
        raise _HashMismatch(
            f"{dest.name} from {_printable(url)} has SHA-256 {digest}, expected {sha256.lower()}; the file was removed"
        )
    tofu = (sha256 is None or len(sha256) < 64) and git_blob is None
    if tofu:
        recorded, _ = _read_record(dest)
        if recorded is not None and recorded != digest:
            _discard(part)
            raise _HashMismatch(
                f"{dest.name} from {_printable(url)} has SHA-256 {digest}, not the {recorded} recorded when it was "
                f"first downloaded; the file was removed (if the new file is expected, delete {dest}.sha256)"
            )
        _record_hash(dest, digest)  # every check passed: only now is the file trusted
    with _cache_errors(dest.parent):
        os.replace(part, dest)


def _is_permanent(exc: BaseException) -> bool:
    """Errors that the same request would meet again: a malformed URL or a server that does not speak HTTP."""
    if isinstance(exc, (http.client.IncompleteRead, http.client.RemoteDisconnected)):
        return False
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return isinstance(exc.reason, (str, http.client.HTTPException, ValueError, socket.gaierror))
    return isinstance(exc, (http.client.HTTPException, ValueError))


class _Redirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def http_error_302(self, req, fp, code, msg, headers):
        try:
            return super().http_error_302(req, fp, code, msg, headers)
        except ValueError as exc:  # urllib parses the Location header before anything checks it
            fp.close()
            raise _Permanent(f"the server redirected to a malformed URL ({_printable(str(exc))[:100]})") from None

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            fp.close()
            raise _Permanent(f"the server redirected to a {scheme or 'non-http'}: URL, which is never followed")
        try:
            check_url(newurl)
        except DownloadError as exc:
            fp.close()
            raise _Permanent(f"the server redirected to a bad URL ({exc})") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _tracked(base: type[http.client.HTTPConnection], guard: _Guard) -> type[http.client.HTTPConnection]:
    class Tracked(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            create = self._create_connection

            def create_tracked(*a, **kw):
                sock = create(*a, **kw)
                guard.track(sock)
                return sock

            self._create_connection = create_tracked

    return Tracked


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, guard: _Guard) -> None:
        super().__init__()
        self._guard = guard

    def http_open(self, req):
        return self.do_open(_tracked(http.client.HTTPConnection, self._guard), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, guard: _Guard) -> None:
        super().__init__()
        self._guard = guard

    def https_open(self, req):
        kwargs = {"context": self._context}
        if hasattr(self, "_check_hostname"):  # Python < 3.12
            kwargs["check_hostname"] = self._check_hostname
        return self.do_open(_tracked(http.client.HTTPSConnection, self._guard), req, **kwargs)


def _opener(guard: _Guard) -> urllib.request.OpenerDirector:
    """http(s) and nothing else: urllib's default opener would also read ``file://``, ``ftp://`` and ``data:``."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        _HTTPHandler(guard),
        _HTTPSHandler(guard),
        urllib.request.HTTPDefaultErrorHandler(),
        _Redirects(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
    ):
        opener.add_handler(handler)
    return opener


def _fetch(url: str, part: Path, size: int | None, limits: _Limits, guard: _Guard, progress: bool) -> None:
    """Write ``url`` into ``part``, resuming from its current size when the server answers that range exactly."""
    opener = _opener(guard)
    have = _part_size(part)
    response, have = _answer(opener, url, have, limits, guard)
    if response.status == 206 and _range_start(response) != have:
        # A partial answer that does not start where the file stops would splice two files: start over.
        response.close()
        response, have = _answer(opener, url, 0, limits, guard)
        if response.status == 206 and _range_start(response) != 0:
            response.close()
            raise _Permanent("the server sends a part of the file that was not asked for (bad Content-Range)")
    with response:
        resumed = response.status == 206 and have > 0
        if not resumed:
            have = 0
        total = _expected_total(response, have)
        if size is not None and total is not None and total != size:
            raise _Permanent(f"the server announces {total} bytes, expected {size}")
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
        fd = _open_part(part, have)
        try:
            with bar:
                written = _copy(response, fd, part, have, size if size is not None else total, limits, guard, bar)
        finally:
            os.close(fd)
        guard.check()
        if total is not None and have + written < total:
            raise DownloadError(f"connection closed after {have + written} of {total} bytes")


def _copy(response, fd: int, part: Path, have: int, cap: int | None, limits: _Limits, guard: _Guard, bar) -> int:
    written = 0
    window_start, window_bytes = time.monotonic(), 0
    while True:
        try:
            block = response.read1(CHUNK)
        except TimeoutError:
            if guard.passed():
                raise guard.error() from None
            if limits.min_rate > 0 and time.monotonic() - window_start >= limits.window:
                raise _too_slow(limits) from None
            raise
        if not block:
            return written
        if cap is not None and have + written + len(block) > cap:
            _discard(part)
            raise _Permanent(f"the server sends more than the {cap} bytes the file has")
        _write_all(fd, block, part)
        written += len(block)
        bar.update(len(block))
        guard.check()
        now = time.monotonic()
        if now - window_start >= limits.window:
            if limits.min_rate > 0 and (written - window_bytes) / (now - window_start) < limits.min_rate:
                raise _too_slow(limits)
            window_start, window_bytes = now, written


def _too_slow(limits: _Limits) -> _TooSlow:
    return _TooSlow(
        f"slower than {limits.min_rate:g} bytes/s over {_seconds(limits.window)} (STYLECLIP_DOWNLOAD_MIN_RATE); "
        "try again later, it resumes where it stopped"
    )


def _answer(opener, url: str, have: int, limits: _Limits, guard: _Guard) -> tuple[http.client.HTTPResponse, int]:
    """The response carrying the file: a stale partial file restarts from zero, Drive's page is answered."""
    try:
        response = _open(opener, url, have, limits, guard)
    except _RangeNotSatisfiable:  # the partial file is longer than the file: start over
        have = 0
        response = _open(opener, url, 0, limits, guard)
    if not _is_html(response):
        return response, have
    where = response.geturl()  # after redirects: the page's real origin decides whether it may be followed
    page = response.read(2_000_000).decode("utf-8", "replace")
    response.close()
    if _host(where) not in GOOGLE_HOSTS:
        raise _Permanent("the server sent a web page instead of the file; give the file's direct URL")
    confirm = _drive_confirmation(where, page)
    if confirm is None:
        raise _Permanent("Google Drive sent a web page instead of the file (quota exceeded or link changed?)")
    if urllib.parse.urlsplit(confirm).scheme.lower() not in ("http", "https") or _host(confirm) not in GOOGLE_HOSTS:
        raise _Permanent("Google Drive's page points outside Google's download hosts; it was not followed")
    response = _open(opener, confirm, have, limits, guard)
    if _is_html(response):
        response.close()
        raise _Permanent("the server sent a web page instead of the file (quota exceeded or link changed?)")
    return response, have


def _open(opener, url: str, offset: int, limits: _Limits, guard: _Guard):
    check_url(url)
    if not url.isascii():  # as a browser does: http.client sends ASCII only
        url = urllib.parse.quote(url, safe=string.punctuation)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    guard.check()
    try:
        return opener.open(request, timeout=max(0.01, min(limits.timeout, guard.remaining())))
    except urllib.error.HTTPError as exc:
        with contextlib.suppress(Exception):  # an error answer that cannot even be closed changes nothing here
            exc.close()
        if exc.code == 416 and offset:
            raise _RangeNotSatisfiable() from None
        if 300 <= exc.code < 400 and "not allowed" in str(exc.reason):
            raise _Permanent("the server redirected to a URL that is not http(s), which is never followed") from None
        if 300 <= exc.code < 400:
            raise _Permanent(
                f"more than {MAX_REDIRECTS} redirects or a redirect loop (HTTP {exc.code}); check the URL"
            ) from None
        reason = _printable(str(exc.reason))[:100]
        if exc.code in (401, 403, 404, 410):
            raise _Permanent(f"HTTP {exc.code} {reason}") from None
        raise DownloadError(f"HTTP {exc.code} {reason}") from None


def _range_start(response) -> int | None:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", response.headers.get("Content-Range") or "")
    return int(match.group(1)) if match else None


def _expected_total(response, have: int) -> int | None:
    if response.status == 206:
        match = re.fullmatch(r"\s*bytes\s+\d+-\d+/(\d+)\s*", response.headers.get("Content-Range") or "")
        if match:
            return int(match.group(1))
    length = response.headers.get("Content-Length")
    return have + int(length) if length is not None and length.strip().isdigit() else None


def _is_html(response) -> bool:
    return response.headers.get_content_type() == "text/html"


def _host(url: str) -> str:
    try:
        return (urllib.parse.urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


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
    """One line for any error urllib, http.client or the socket layer raises."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused: is the server up and the port right?"
        if isinstance(reason, socket.gaierror):
            return f"unknown host ({_printable(str(reason))}); check the URL and your connection"
        if isinstance(reason, BaseException):
            return _describe(reason)
        return f"network error: {_printable(str(reason))}"
    if isinstance(exc, http.client.IncompleteRead):
        return f"the connection closed after {len(exc.partial)} bytes of a chunk; try again"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering; try again later"
    if isinstance(exc, http.client.LineTooLong):
        return "the server's answer has an over-long header line; it is not a download server"
    if isinstance(exc, http.client.HTTPException):
        return f"the server's answer is not valid HTTP ({type(exc).__name__}: {_printable(str(exc))[:80]})"
    if isinstance(exc, TimeoutError):
        return "the server stopped answering (timed out); try again later"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: is the server up and the port right?"
    if isinstance(exc, OSError):
        return f"network error: {_printable(exc.strerror or str(exc)) or type(exc).__name__}"
    if isinstance(exc, ValueError):
        return f"the URL cannot be requested ({_printable(str(exc))[:100]}); check it"
    return _printable(str(exc)) or type(exc).__name__


def _printable(text: object) -> str:
    """``text`` on one line without terminal control characters: servers and URLs choose what it says."""
    text = " ".join(str(text).split())
    return "".join(c if c.isprintable() else "?" for c in text)[:500]


# -- the cache folder: no write through a planted link, one line when it cannot be written


def _cache_message(folder: Path, exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some space or set STYLECLIP_HOME (or --cache) to another folder"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        fix = "a part of that path is a file; set STYLECLIP_HOME (or --cache) to a folder"
    elif exc.errno == errno.ENAMETOOLONG:
        fix = "set STYLECLIP_HOME (or --cache) to a shorter path"
    else:
        fix = "set STYLECLIP_HOME (or --cache) to a writable folder"
    return f"cannot write in the download cache {folder} ({reason}); {fix}"


class _cache_errors:
    """Turns an OSError of the cache's files into a one-line, non-retried error naming ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, OSError):
            raise _Fatal(_cache_message(self.folder, exc)) from None
        return False


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(_cache_message(folder, exc)) from None
    if not folder.is_dir():
        raise DownloadError(_cache_message(folder, OSError(errno.ENOTDIR, "not a folder")))


class _locked:
    """The per-file lock, waited for no longer than the deadline; a link planted at its name is removed first."""

    def __init__(self, dest: Path, guard: _Guard) -> None:
        self.path = Path(str(dest) + ".lock")
        self.guard = guard
        self.lock: FileLock | None = None

    def __enter__(self) -> None:
        try:
            _unlink_link(self.path)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
            os.close(fd)
            self.lock = FileLock(str(self.path))
            self.lock.acquire(timeout=max(0.0, self.guard.remaining()))
        except filelock.Timeout:
            raise DownloadError(
                f"another styleclip process kept {self.path} locked for {_seconds(self.guard.seconds)}; "
                "wait for it to finish, or delete the lock file if no such process is running"
            ) from None
        except OSError as exc:
            raise DownloadError(_cache_message(self.path.parent, exc)) from None

    def __exit__(self, *exc) -> bool:
        if self.lock is not None:
            self.lock.release()
        return False


def _unlink_link(path: Path) -> None:
    if path.is_symlink():
        path.unlink()


def _remove_stale(dest: Path) -> None:
    """A corrupt or stale copy (or a link planted at its name) goes before the download, never written through."""
    with _cache_errors(dest.parent):
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        elif dest.exists():
            raise _Fatal(f"{dest} is in the way of the download (not a regular file); remove it")


def _part_size(part: Path) -> int:
    with _cache_errors(part.parent):
        try:
            info = os.lstat(part)
        except FileNotFoundError:
            return 0
        if stat.S_ISREG(info.st_mode):
            return info.st_size
        if stat.S_ISDIR(info.st_mode):
            raise _Fatal(f"{part} is a folder where the download's partial file goes; remove it")
        part.unlink()  # a link or a device: never written through, started afresh
    return 0


def _size_of(path: Path) -> int:
    with _cache_errors(path.parent):
        return os.lstat(path).st_size


def _open_part(part: Path, have: int) -> int:
    with _cache_errors(part.parent):
        if have:
            fd = os.open(part, os.O_WRONLY | _NOFOLLOW | _BINARY)
            try:
                os.ftruncate(fd, have)
                os.lseek(fd, have, os.SEEK_SET)
            except OSError:
                os.close(fd)
                raise
            return fd
        _unlink_link(part)
        return os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW | _BINARY, 0o644)


def _write_all(fd: int, data: bytes, part: Path) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            _discard(part)  # a full disk is not left fuller by a file that cannot be finished
        raise _Fatal(_cache_message(part.parent, exc)) from None


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


# -- trust-on-first-use records


def _read_record(path: Path) -> tuple[str | None, bool]:
    """``(recorded SHA-256 or None, damaged)``: a record that is not a regular file holding a SHA-256 is damaged."""
    record = Path(str(path) + ".sha256")
    try:
        fd = os.open(record, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _BINARY)
    except FileNotFoundError:
        return None, False
    except OSError:
        return None, True
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, True
        text = os.read(fd, 4096)
    except OSError:
        return None, True
    finally:
        os.close(fd)
    words = text.split()
    if words and re.fullmatch(rb"[0-9a-fA-F]{64}", words[0]):
        return words[0].decode().lower(), False
    return None, True


def _recorded_hash(path: Path) -> str | None:
    """The SHA-256 recorded for ``path`` on first download, or None (none yet, or a damaged record)."""
    return _read_record(path)[0]


def _record_hash(path: Path, digest: str) -> None:
    record = Path(str(path) + ".sha256")
    with _cache_errors(path.parent):
        if record.is_dir() and not record.is_symlink():
            try:
                record.rmdir()
            except OSError:
                raise _Fatal(f"{record} is a folder where the file's SHA-256 is kept; remove it") from None
        fd, tmp = tempfile.mkstemp(prefix=record.name + ".", suffix=".tmp", dir=path.parent)
        try:
            try:
                _write_all(fd, f"{digest}  {path.name}\n".encode(), Path(tmp))
            finally:
                os.close(fd)
            os.replace(tmp, record)  # replaces a link planted at the record's name, never writes through it
        except BaseException:
            _discard(Path(tmp))
            raise


def _rerecord(dest: Path, sha256: str | None, git_blob: str | None) -> None:
    """A file verified by its published hash prefix gets its full SHA-256 recorded if the record is missing or
    damaged; a read-only cache simply stays as it is."""
    if sha256 is None or len(sha256) == 64 or git_blob is not None or _read_record(dest)[0] is not None:
        return
    with contextlib.suppress(OSError, DownloadError):
        _record_hash(dest, sha256_file(dest))
