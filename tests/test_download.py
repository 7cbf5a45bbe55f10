"""Downloads against a loopback HTTP server started here: resume, hashes, redirects, Drive, locks, offline."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

import styleclip.hub.download as download_module
from styleclip.hub.download import DownloadError, OfflineError, cache_dir, download, sha256_file, verify

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, not all zeros
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(BaseHTTPRequestHandler):
    counts: ClassVar[dict[str, int]] = {}
    ranges: ClassVar[list[str]] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        path = self.path.split("?")[0]
        Handler.counts[path] = Handler.counts.get(path, 0) + 1
        if self.headers.get("Range"):
            Handler.ranges.append(self.headers["Range"])
        if path == "/file":
            return self._serve(PAYLOAD)
        if path == "/norange":
            return self._serve(PAYLOAD, allow_range=False)
        if path == "/drop":
            # The first request dies half-way; later ones honour Range.
            if Handler.counts[path] == 1:
                self.send_response(200)
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
                self.wfile.flush()
                self.connection.shutdown(2)
                return None
            return self._serve(PAYLOAD)
        if path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/file")
            self.end_headers()
            return None
        if path == "/wrong":
            return self._serve(b"x" * len(PAYLOAD))
        if path == "/slow":
            import time

            time.sleep(0.3)
            return self._serve(PAYLOAD)
        if path == "/uc":  # Google Drive: a warning page first, the file once confirmed
            if "confirm=t" in self.path and "uuid=abc" in self.path:
                return self._serve(PAYLOAD)
            page = (
                b"<!DOCTYPE html><html><body>Google Drive can't scan this file for viruses."
                b'<form id="download-form" action="/uc" method="get">'
                b'<input type="hidden" name="id" value="FILEID"><input type="hidden" name="export" value="download">'
                b'<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="abc">'
                b"</form></body></html>"
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return None
        self.send_error(404, "Not Found")
        return None

    def _serve(self, data: bytes, allow_range: bool = True):
        start = 0
        rng = self.headers.get("Range")
        if rng and allow_range:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])
        return None


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def reset_counts():
    Handler.counts.clear()
    Handler.ranges.clear()


def test_download_verifies_and_leaves_no_temporary_files(server, tmp_path):
    dest = download([f"{server}/file"], tmp_path / "m.pkl", sha256=SHA, size=len(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pkl", "m.pkl.lock"]


def test_cache_hit_does_not_touch_the_network(server, tmp_path):
    dest = download([f"{server}/file"], tmp_path / "m.pkl", sha256=SHA, progress=False)
    download(["http://127.0.0.1:9/unreachable"], dest, sha256=SHA, progress=False)
    assert Handler.counts == {"/file": 1}


def test_resume_after_the_server_drops_the_connection(server, tmp_path):
    dest = download([f"{server}/drop"], tmp_path / "m.pkl", sha256=SHA, backoff=0.01, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert Handler.counts["/drop"] == 2
    assert Handler.ranges == [f"bytes={len(PAYLOAD) // 2}-"]


def test_server_without_range_support_restarts_cleanly(server, tmp_path):
    part = tmp_path / "m.pkl.part"
    part.write_bytes(b"garbage from an older attempt")
    dest = download([f"{server}/norange"], tmp_path / "m.pkl", sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_hash_mismatch_removes_the_file_and_says_so(server, tmp_path):
    with pytest.raises(DownloadError) as e:
        download([f"{server}/wrong"], tmp_path / "m.pkl", sha256=SHA, progress=False)
    assert "expected" in str(e.value) and "removed" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "m.pkl").exists() and not (tmp_path / "m.pkl.part").exists()


def test_404_names_the_url_and_where_to_put_the_file(server, tmp_path):
    with pytest.raises(DownloadError) as e:
        download([f"{server}/missing"], tmp_path / "m.pkl", progress=False)
    text = str(e.value)
    assert f"{server}/missing" in text and "404" in text and str(tmp_path / "m.pkl") in text


def test_falls_back_to_the_next_url_and_follows_redirects(server, tmp_path):
    dest = download([f"{server}/missing", f"{server}/redirect"], tmp_path / "m.pkl", sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_google_drive_confirmation_page(server, tmp_path, monkeypatch):
    # The confirmation page is answered only on Google's hosts: the loopback server stands in for one here.
    monkeypatch.setattr(download_module, "GOOGLE_HOSTS", frozenset({"127.0.0.1"}))
    dest = download([f"{server}/uc?export=download&id=FILEID"], tmp_path / "e4e.pt", sha256=SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert Handler.counts["/uc"] == 2


def test_trust_on_first_use_records_and_checks_the_hash(server, tmp_path):
    dest = download([f"{server}/file"], tmp_path / "m.pkl", progress=False)
    assert (tmp_path / "m.pkl.sha256").read_text().split()[0] == SHA
    assert verify(dest)
    dest.write_bytes(b"tampered")
    assert not verify(dest)
    download([f"{server}/file"], dest, progress=False)  # re-fetched because it no longer matches
    assert sha256_file(dest) == SHA


def test_published_hash_prefix_is_checked_and_the_full_hash_recorded(server, tmp_path):
    # torchvision publishes only the first 8 hex digits of its files' SHA-256.
    dest = download([f"{server}/file"], tmp_path / "vgg.pth", sha256=SHA[:8], progress=False)
    assert (tmp_path / "vgg.pth.sha256").read_text().split()[0] == SHA
    assert verify(dest, sha256=SHA[:8]) and not verify(dest, sha256="00000000")
    with pytest.raises(DownloadError, match="removed"):
        download([f"{server}/wrong"], tmp_path / "other.pth", sha256=SHA[:8], progress=False)


def test_offline_mode_refuses_and_names_the_missing_file(server, tmp_path, monkeypatch):
    monkeypatch.setenv("STYLECLIP_OFFLINE", "1")
    with pytest.raises(OfflineError, match=r"offline mode: m\.pkl is not in the cache"):
        download([f"{server}/file"], tmp_path / "m.pkl", progress=False)
    assert Handler.counts == {}


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLECLIP_HOME", str(tmp_path / "env"))
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert cache_dir() == tmp_path / "env"
    monkeypatch.delenv("STYLECLIP_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "styleclip"


def test_two_processes_downloading_at_once_end_with_one_good_file(server, tmp_path):
    code = (
        "import sys; from pathlib import Path; from styleclip.hub.download import download; "
        f"download([{server + '/slow'!r}], Path(sys.argv[1]), sha256={SHA!r}, progress=False)"
    )
    dest = tmp_path / "m.pkl"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(dest)]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert sha256_file(dest) == SHA
    assert Handler.counts["/slow"] == 1  # the second process waited on the lock and found the file
    assert not Path(str(dest) + ".part").exists()
