"""Hostile and broken download servers on 127.0.0.1: each is refused in one line, nothing outside the cache is read
or written, nothing unverified is trusted, and no download outlives its deadline."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import styleclip.hub.download as download_module
from styleclip.cli.main import main
from styleclip.hub.download import download, sha256_file
from styleclip.hub.registry import url_file_name

from checkpoint_writers import nvidia_pickle_bytes
from conftest import tiny_generator
from hostile import refused, refused_by

PAYLOAD = bytes(range(256)) * 1024  # 256 KiB, every offset distinguishable
SHA = hashlib.sha256(PAYLOAD).hexdigest()
SECRET = b"a file of the machine that serves styleclip, never to be copied into its cache\n"


class Hostile(BaseHTTPRequestHandler):
    """One path per misbehaviour; ``Hostile.body`` is what the well-behaved paths serve."""

    protocol_version = "HTTP/1.1"
    counts: ClassVar[dict[str, int]] = {}
    ranges: ClassVar[list[str]] = []
    body: ClassVar[bytes] = PAYLOAD
    form_action: ClassVar[str] = "/secret"
    location: ClassVar[str] = "/file"
    last_path: ClassVar[str] = ""

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.split("?")[0]
        Hostile.counts[path] = Hostile.counts.get(path, 0) + 1
        Hostile.last_path = self.path
        if self.headers.get("Range"):
            Hostile.ranges.append(self.headers["Range"])
        name = path.rsplit("/", 1)[-1]
        handler = getattr(self, "_" + name.split(".")[0].replace("-", "_"), None)
        if handler is None:
            return self._send(404, b"not found", "text/plain")
        return handler()

    def _send(self, code: int, data: bytes, ctype: str = "application/octet-stream", headers: dict | None = None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _raw(self, data: bytes):
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True

    # -- well-behaved
    def _file(self):
        self._send(200, Hostile.body)

    def _secret(self):
        self._send(200, SECRET)

    # -- bullet 1: web pages, forms and redirects
    def _form(self):  # a "download form" on a page that is not Google Drive's
        page = (
            f'<html><body><form id="download-form" action="{Hostile.form_action}" method="get">'
            '<input type="hidden" name="confirm" value="t"></form></body></html>'
        ).encode()
        self._send(200, page, "text/html; charset=utf-8")

    def _redirect(self):
        self.send_response(302)
        self.send_header("Location", Hostile.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- bullet 2: partial answers
    def _badrange(self):  # answers a Range request with bytes from somewhere else
        data, rng = Hostile.body, self.headers.get("Range")
        if not rng:
            return self._send(200, data)
        start = int(rng.split("=")[1].split("-")[0])
        wrong = (start + 100) % len(data)
        return self._send(206, data[wrong:], headers={"Content-Range": f"bytes {wrong}-{len(data) - 1}/{len(data)}"})

    def _norangeheader(self):  # 206 without any Content-Range, the bytes from zero
        if not self.headers.get("Range"):
            return self._send(200, Hostile.body)
        return self._send(206, Hostile.body)

    def _always206(self):  # a partial answer even to a request that asked for everything
        return self._send(206, Hostile.body[7:], headers={"Content-Range": f"bytes 7-{len(Hostile.body) - 1}/*"})

    # -- bullet 4: trickles
    def _trickle(self):  # a body at a few bytes per second
        self.send_response(200)
        self.send_header("Content-Length", str(len(Hostile.body)))
        self.end_headers()
        self._drip(Hostile.body, 1, 0.05)

    def _steady(self):  # fast enough for any minimum rate, far too slow for a short deadline
        self.send_response(200)
        self.send_header("Content-Length", str(len(Hostile.body)))
        self.end_headers()
        self._drip(Hostile.body, 2048, 0.02)

    def _slowheaders(self):  # never finishes its headers
        self._drip(b"HTTP/1.1 200 OK\r\n" + b"X-Filler: a\r\n" * 10_000, 1, 0.02)

    def _drip(self, data: bytes, step: int, pause: float):
        end = time.monotonic() + 30  # the server gives up on its own: no thread outlives the test for long
        try:
            for i in range(0, len(data), step):
                self.wfile.write(data[i : i + step])
                self.wfile.flush()
                if time.monotonic() > end:
                    break
                time.sleep(pause)
        except OSError:
            pass
        self.close_connection = True

    # -- bullet 5: answers that are not HTTP
    def _badstatus(self):
        self._raw(b"HELLO THERE\r\n\r\n")

    def _hugeheader(self):
        self._raw(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")

    def _manyheaders(self):
        self._raw(b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 500 + b"\r\n")

    def _badchunk(self):
        self._raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz-not-a-size\r\nabc\r\n0\r\n\r\n")

    def _loop(self):
        self.send_response(302)
        self.send_header("Location", "/loop.pkl")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def fresh(monkeypatch, tmp_path):
    Hostile.counts.clear()
    Hostile.ranges.clear()
    Hostile.body = PAYLOAD
    Hostile.form_action = "/secret"
    Hostile.location = "/file"
    monkeypatch.setenv("STYLECLIP_HOME", str(tmp_path / "home"))
    for name in ("STYLECLIP_DOWNLOAD_DEADLINE", "STYLECLIP_DOWNLOAD_MIN_RATE", "STYLECLIP_DOWNLOAD_RATE_WINDOW"):
        monkeypatch.delenv(name, raising=False)


def generate_from(url: str, tmp_path: Path, *extra: str) -> list[str]:
    return ["generate", "--generator", url, "--seeds", "0", "--outdir", str(tmp_path / "out"), *map(str, extra)]


def cached_files(cache: Path) -> list[str]:
    """The names of files a later run would take as done (not partial files, locks or records)."""
    if not cache.exists():
        return []
    skip = (".part", ".lock", ".sha256")
    return sorted(p.name for p in cache.rglob("*") if p.is_file() and not p.name.endswith(skip))


def url_dest(cache: Path, url: str) -> Path:
    return cache / "urls" / hashlib.sha256(url.encode()).hexdigest()[:16] / url_file_name(url)


# -- 1. only http(s); forms only on Google Drive's pages, only to Google


@pytest.mark.parametrize("action", ["/secret", "file:///etc/hostname", "http://localhost:{port}/secret"])
def test_a_download_form_on_any_other_page_is_not_followed(server, capsys, tmp_path, action):
    Hostile.form_action = action.format(port=server.rsplit(":", 1)[1])
    cache = tmp_path / "home"
    refused(generate_from(f"{server}/form.pkl", tmp_path), capsys, match="web page instead of the file",
            watch=[tmp_path], may_write=[cache])  # fmt: skip
    assert "/secret" not in Hostile.counts and cached_files(cache) == []


@pytest.mark.parametrize(
    "action",
    ["file:///etc/hostname", "ftp://127.0.0.1/secret", "data:,secret", "http://localhost:{port}/secret"],
)
def test_google_drive_page_is_followed_only_to_google(server, capsys, tmp_path, monkeypatch, action):
    monkeypatch.setattr(download_module, "GOOGLE_HOSTS", frozenset({"127.0.0.1"}))  # the server plays Drive
    Hostile.form_action = action.format(port=server.rsplit(":", 1)[1])
    cache = tmp_path / "home"
    refused(generate_from(f"{server}/form.pkl", tmp_path), capsys, match="outside Google",
            watch=[tmp_path], may_write=[cache])  # fmt: skip
    assert "/secret" not in Hostile.counts and cached_files(cache) == []


def test_a_page_reached_by_redirect_from_google_is_judged_by_where_it_came_from(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download_module, "GOOGLE_HOSTS", frozenset({"127.0.0.1"}))
    Hostile.location = f"http://localhost:{server.rsplit(':', 1)[1]}/form.pkl"  # leaves "Google" for another host
    refused_by(lambda: download([f"{server}/redirect.pkl"], tmp_path / "c" / "m.pkl", progress=False),
               match="web page instead of the file", watch=[tmp_path], may_write=[tmp_path / "c"])  # fmt: skip
    assert "/secret" not in Hostile.counts


@pytest.mark.parametrize("target", ["file:///etc/hostname", "ftp://127.0.0.1/secret", "data:,secret"])
def test_a_redirect_to_another_scheme_is_refused(server, capsys, tmp_path, target):
    Hostile.location = target
    cache = tmp_path / "home"
    refused(generate_from(f"{server}/redirect.pkl", tmp_path), capsys, match="not http|never followed",
            watch=[tmp_path], may_write=[cache])  # fmt: skip
    assert cached_files(cache) == []


@pytest.mark.parametrize("url", ["file:///etc/hostname", "ftp://127.0.0.1/x.pkl", "data:,abc", "gopher://h/x"])
def test_only_http_urls_are_downloaded(capsys, tmp_path, url):
    refused(generate_from(url, tmp_path), capsys, match="only http:// and https://", watch=[tmp_path])
    refused_by(lambda: download([url], tmp_path / "m.pkl", progress=False), match="only http", watch=[tmp_path])


def test_the_opener_cannot_read_local_files(tmp_path):
    guard = download_module._Guard(5)
    try:
        with pytest.raises(urllib.error.URLError, match="unknown url type"):
            download_module._opener(guard).open(f"file://{tmp_path}")
    finally:
        guard.close()


# -- 2. a partial answer that does not start where it was asked to


@pytest.mark.parametrize("path", ["/badrange.pkl", "/norangeheader.pkl"])
def test_a_resume_answered_from_the_wrong_offset_restarts_from_zero(server, tmp_path, path):
    dest = tmp_path / "m.pkl"
    Path(f"{dest}.part").write_bytes(PAYLOAD[: len(PAYLOAD) // 2])
    download([server + path], dest, progress=False)  # trust on first use: nothing else would catch a splice
    assert dest.read_bytes() == PAYLOAD
    assert Path(f"{dest}.sha256").read_text().split()[0] == SHA
    assert Hostile.ranges == [f"bytes={len(PAYLOAD) // 2}-"] and Hostile.counts[path] == 2


def test_a_partial_answer_to_a_full_request_is_refused(server, tmp_path):
    refused_by(lambda: download([f"{server}/always206.pkl"], tmp_path / "m.pkl", progress=False),
               match="not asked for", watch=[tmp_path], may_write=[tmp_path])  # fmt: skip
    assert cached_files(tmp_path) == [] and not Path(f"{tmp_path / 'm.pkl'}.sha256").exists()


def test_the_cli_resumes_a_generator_byte_exact_despite_a_wrong_range(server, capsys, tmp_path):
    Hostile.body = nvidia_pickle_bytes(tiny_generator())
    url = f"{server}/badrange.pkl"
    dest = url_dest(tmp_path / "home", url)
    dest.parent.mkdir(parents=True)
    Path(f"{dest}.part").write_bytes(Hostile.body[:1000])
    assert main(generate_from(url, tmp_path)) == 0, capsys.readouterr().err
    assert dest.read_bytes() == Hostile.body and (tmp_path / "out" / "seed0000.png").is_file()


# -- 3. nothing that failed a check is trusted; a damaged record is checked again, never a traceback


def test_a_file_that_fails_verification_is_never_recorded(server, tmp_path):
    Hostile.body = b"x" * len(PAYLOAD)
    dest = tmp_path / "m.pkl"
    refused_by(lambda: download([f"{server}/file.pkl"], dest, sha256=SHA[:8], progress=False), match="removed",
               watch=[tmp_path], may_write=[tmp_path])  # fmt: skip
    refused_by(lambda: download([f"{server}/file.pkl"], dest, size=len(PAYLOAD) + 1, progress=False),
               match="announces", watch=[tmp_path], may_write=[tmp_path])  # fmt: skip
    assert cached_files(tmp_path) == [] and not Path(f"{dest}.sha256").exists()


def test_a_changed_file_does_not_replace_the_one_trusted_on_first_use(server, tmp_path):
    dest = tmp_path / "m.pkl"
    download([f"{server}/file.pkl"], dest, progress=False)
    dest.write_bytes(b"tampered")
    Hostile.body = b"y" * 1000  # the source changed too
    refused_by(lambda: download([f"{server}/file.pkl"], dest, progress=False), match="recorded when it was first",
               watch=[tmp_path], may_write=[tmp_path])  # fmt: skip
    assert Path(f"{dest}.sha256").read_text().split()[0] == SHA and not dest.exists()


def damage(record: Path, how: str) -> None:
    if how == "folder":
        record.mkdir()
    elif how == "link":
        record.symlink_to("/dev/zero")
    else:
        record.write_bytes({"empty": b"", "short": b"abc123  m.pkl\n", "garbage": bytes(range(256)) * 4,
                            "not-hex": b"z" * 64 + b"  m.pkl\n"}[how])  # fmt: skip


@pytest.mark.parametrize("how", ["empty", "short", "garbage", "not-hex", "folder", "link"])
def test_a_damaged_record_is_checked_again(server, capsys, tmp_path, how):
    url = f"{server}/file.pkl"
    dest = url_dest(tmp_path / "home", url)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"tampered")
    damage(Path(f"{dest}.sha256"), how)
    assert not download_module.verify(dest)
    assert download([url], dest, progress=False) == dest  # fetched again, recorded only once it is whole
    assert dest.read_bytes() == PAYLOAD and Path(f"{dest}.sha256").read_text().split()[0] == SHA


@pytest.mark.parametrize("how", ["empty", "garbage", "folder"])
def test_the_cli_reports_a_damaged_record_without_a_traceback(capsys, tmp_path, how):
    cache = tmp_path / "cache"
    assert main(["models", "--cache", str(cache), "path", "afhqdog"]) == 0
    dest = Path(capsys.readouterr().out.strip())
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"a cached file")
    damage(Path(f"{dest}.sha256"), how)
    assert main(["models", "--cache", str(cache), "list"]) == 0
    assert main(["models", "--cache", str(cache), "verify", "afhqdog"]) == 1
    out, err = capsys.readouterr()
    assert "CORRUPT" in out and err == ""
    # Downloading again is refused in one line (offline here), not a traceback.
    refused(["models", "--cache", cache, "--offline", "download", "afhqdog"], capsys, match="offline mode",
            watch=[tmp_path])  # fmt: skip


def test_a_published_prefix_re_records_a_damaged_record(server, tmp_path):
    dest = tmp_path / "vgg.pth"
    download([f"{server}/file.pkl"], dest, sha256=SHA[:8], progress=False)
    Path(f"{dest}.sha256").write_bytes(b"")
    download([f"{server}/file.pkl"], dest, sha256=SHA[:8], progress=False)
    assert Path(f"{dest}.sha256").read_text().split()[0] == SHA and Hostile.counts["/file.pkl"] == 1


# -- 4. a deadline and a minimum rate


def test_a_trickle_below_the_minimum_rate_is_given_up(server, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("STYLECLIP_DOWNLOAD_MIN_RATE", "1000")
    monkeypatch.setenv("STYLECLIP_DOWNLOAD_RATE_WINDOW", "0.5")
    cache = tmp_path / "home"
    start = time.monotonic()
    refused(generate_from(f"{server}/trickle.pkl", tmp_path), capsys, match="slower than 1000 bytes/s",
            watch=[tmp_path], may_write=[cache])  # fmt: skip
    assert time.monotonic() - start < 10 and cached_files(cache) == []


@pytest.mark.parametrize("path", ["/steady.pkl", "/slowheaders.pkl"])
def test_a_download_past_its_deadline_stops(server, capsys, tmp_path, monkeypatch, path):
    monkeypatch.setenv("STYLECLIP_DOWNLOAD_DEADLINE", "1.5")
    cache = tmp_path / "home"
    start = time.monotonic()
    line = refused(generate_from(server + path, tmp_path), capsys, match="did not finish within 1.5 s",
                   watch=[tmp_path], may_write=[cache])  # fmt: skip
    assert server + path in line
    assert time.monotonic() - start < 8 and cached_files(cache) == []


@pytest.mark.parametrize(("name", "value"), [("STYLECLIP_DOWNLOAD_DEADLINE", "soon"),
                                             ("STYLECLIP_DOWNLOAD_MIN_RATE", "-5"),
                                             ("STYLECLIP_DOWNLOAD_DEADLINE", "0")])  # fmt: skip
def test_a_bad_limit_setting_is_one_line(server, capsys, tmp_path, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    refused(generate_from(f"{server}/file.pkl", tmp_path), capsys, match=name, watch=[tmp_path])


def test_limits_are_parameters_too(server, tmp_path):
    start = time.monotonic()
    refused_by(lambda: download([f"{server}/trickle.pkl"], tmp_path / "m.pkl", min_rate=1000, rate_window=0.3,
                                progress=False), match="slower than", watch=[tmp_path], may_write=[tmp_path])  # fmt: skip
    refused_by(lambda: download([f"{server}/steady.pkl"], tmp_path / "n.pkl", deadline=0.7, progress=False),
               match="within 0.7 s", watch=[tmp_path], may_write=[tmp_path])  # fmt: skip
    assert time.monotonic() - start < 8


# -- 5. every http.client / URL error is one line


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("/badstatus.pkl", "not valid HTTP"),
        ("/hugeheader.pkl", "over-long header"),
        ("/manyheaders.pkl", "not valid HTTP"),
        ("/loop.pkl", "redirect loop"),
        ("/" + "a" * 400 + ".pkl", "404"),
    ],
)
def test_a_broken_server_is_one_line(server, capsys, tmp_path, path, match):
    cache = tmp_path / "home"
    line = refused(generate_from(server + path, tmp_path), capsys, match=match, watch=[tmp_path], may_write=[cache])
    assert server in line and "by hand" in line and cached_files(cache) == []


def test_a_broken_chunked_body_is_one_line(server, tmp_path):
    refused_by(lambda: download([f"{server}/badchunk.pkl"], tmp_path / "m.pkl", backoff=0.01, progress=False),
               match="connection closed|not valid HTTP", watch=[tmp_path], may_write=[tmp_path])  # fmt: skip
    assert Hostile.counts["/badchunk.pkl"] == 3  # a cut-off body is worth retrying, a few times


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://[::1/x.pkl", "not a valid URL"),
        ("http://[zz::1]/x.pkl", "not a valid URL"),
        ("http://127.0.0.1:99999/x.pkl", "not a valid URL"),
        ("http://127.0.0.1:8/a b.pkl", "spaces or control characters"),
        ("http://127.0.0.1:8/a\nb.pkl", "spaces or control characters"),
        ("http:///x.pkl", "names no host"),
    ],
)
def test_a_malformed_url_is_one_line(capsys, tmp_path, url, match):
    refused(generate_from(url, tmp_path), capsys, match=match, watch=[tmp_path])


def test_a_refused_connection_is_one_line(capsys, tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    refused_by(lambda: download([f"http://127.0.0.1:{port}/x.pkl"], tmp_path / "m.pkl", backoff=0.01, progress=False),
               match="connection refused.*by hand", watch=[tmp_path], may_write=[tmp_path])  # fmt: skip


def test_a_redirect_to_a_malformed_url_is_one_line(server, capsys, tmp_path):
    Hostile.location = "http://[::1/x.pkl"
    cache = tmp_path / "home"
    refused(generate_from(f"{server}/redirect.pkl", tmp_path), capsys, match="redirected to a (bad|malformed) URL",
            watch=[tmp_path], may_write=[cache])  # fmt: skip


def test_a_url_with_non_ascii_characters_is_percent_encoded(server, tmp_path):
    assert download([f"{server}/file.pkl?name=é"], tmp_path / "m.pkl", progress=False).read_bytes() == PAYLOAD
    assert Hostile.last_path == "/file.pkl?name=%C3%A9"


def test_url_file_names_stay_short_and_inside_their_folder():
    assert url_file_name("http://h/" + "a" * 400 + ".pkl") == "a" * 96 + ".pkl"
    assert url_file_name("http://h/..") == "download" and url_file_name("http://h/%2e%2e%2fetc") == "_etc"
    assert url_file_name("http://h/my%20model.pkl?x=1") == "my_model.pkl"


# -- 6. a cache that cannot be written: one line naming the folder, nothing half-written counted as done


def test_a_cache_under_a_file_is_one_line_naming_it(server, capsys, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache should be")
    monkeypatch.setenv("STYLECLIP_HOME", str(blocker))
    line = refused(generate_from(f"{server}/file.pkl", tmp_path), capsys, match="cannot write in the download cache",
                   watch=[tmp_path])  # fmt: skip
    assert str(blocker) in line and "STYLECLIP_HOME" in line and Hostile.counts == {}
    line = refused(generate_from(f"{server}/file.pkl", tmp_path, "--cache", blocker / "sub"), capsys,
                   match="cannot write in the download cache", watch=[tmp_path])  # fmt: skip
    assert str(blocker) in line


def test_a_lock_that_cannot_be_created_is_one_line(server, tmp_path):
    dest = tmp_path / "m.pkl"
    Path(f"{dest}.lock").mkdir()
    refused_by(lambda: download([f"{server}/file.pkl"], dest, progress=False), match=f"download cache {tmp_path}",
               watch=[tmp_path])  # fmt: skip


def test_waiting_for_another_process_s_lock_ends_at_the_deadline(server, tmp_path):
    dest = tmp_path / "m.pkl"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from filelock import FileLock; lock = FileLock(sys.argv[1]); lock.acquire(); "
         "print('held', flush=True); time.sleep(60)", f"{dest}.lock"], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        refused_by(lambda: download([f"{server}/file.pkl"], dest, deadline=1, progress=False),
                   match="another styleclip process kept .* locked", watch=[tmp_path])  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert Hostile.counts == {}


def _fail_on(monkeypatch, suffix: str) -> None:
    real = os.write

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(suffix):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(download_module.os, "write", write)


def test_a_full_disk_leaves_nothing_counted_as_done(server, tmp_path, monkeypatch):
    dest = tmp_path / "c" / "m.pkl"
    _fail_on(monkeypatch, ".part")
    refused_by(lambda: download([f"{server}/file.pkl"], dest, progress=False), match="free some space",
               watch=[tmp_path], may_write=[dest.parent])  # fmt: skip
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m.pkl.lock"]  # the partial file freed its space
    assert Hostile.counts == {"/file.pkl": 1}  # a full disk is not retried


def test_a_full_disk_while_recording_leaves_nothing_trusted(server, tmp_path, monkeypatch):
    dest = tmp_path / "c" / "m.pkl"
    _fail_on(monkeypatch, ".tmp")
    line = refused_by(lambda: download([f"{server}/file.pkl"], dest, progress=False), match="free some space",
                      watch=[tmp_path], may_write=[dest.parent])  # fmt: skip
    assert str(dest.parent) in line
    assert not dest.exists() and not Path(f"{dest}.sha256").exists()


# -- links planted at the names the download writes


def test_nothing_is_written_through_a_planted_link(server, tmp_path):
    victims = {name: tmp_path / f"victim-{name}" for name in ("dest", "part", "lock")}
    for victim in victims.values():
        victim.write_bytes(SECRET)
    cache = tmp_path / "c"
    cache.mkdir()
    dest = cache / "m.pkl"
    dest.symlink_to(victims["dest"])
    Path(f"{dest}.part").symlink_to(victims["part"])
    Path(f"{dest}.lock").symlink_to(victims["lock"])
    download([f"{server}/file.pkl"], dest, sha256=SHA, progress=False)
    assert all(v.read_bytes() == SECRET for v in victims.values())
    assert not dest.is_symlink() and dest.read_bytes() == PAYLOAD
    assert Hostile.ranges == []  # the link's target was not taken for a partial download


def test_generate_from_a_url_still_works(server, capsys, tmp_path):
    Hostile.body = nvidia_pickle_bytes(tiny_generator())
    assert main(generate_from(f"{server}/file.pkl", tmp_path)) == 0, capsys.readouterr().err
    assert np.load(tmp_path / "out" / "seed0000.npy").ndim >= 1
    assert sha256_file(url_dest(tmp_path / "home", f"{server}/file.pkl")) == hashlib.sha256(Hostile.body).hexdigest()
