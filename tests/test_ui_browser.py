"""The web UI end to end in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

``styleclip ui`` runs as a subprocess on a free loopback port with a tiny generator, a tiny CLIP and a gradient
relevance matrix made beforehand; the browser draws a seed, moves α, accepts and undoes, runs a 3-step
optimisation, uploads a file that is not an image, and takes screenshots (``STYLECLIP_UI_SCREENSHOT=docs/ui.png``
also copies the one of the global-directions tab there, for the README). In CI (``CI=true``) a missing browser fails the test.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from styleclip.cli.main import main
from styleclip.hub.generators import save_generator

from conftest import varied_generator

CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip


def _browser() -> str:
    """Chromium's path, or skip (fail in CI) with the reason."""
    path = os.environ.get("STYLECLIP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install playwright)"
    if reason is None and not path:
        reason = "no Chromium found (apt install chromium, or set STYLECLIP_CHROMIUM)"
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the browser test must run in CI: {reason}")
        print(f"skipping the browser test: {reason}")
        pytest.skip(reason)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_clip_file):
    chromium = _browser()
    folder = tmp_path_factory.mktemp("ui")
    G = varied_generator()
    gen = save_generator(G, folder / "tiny.safetensors")
    common = ["--generator", str(gen), "--clip", str(tiny_clip_file), "--device", "cpu", "--samples", "500",
              "--cache", str(folder / "cache")]  # fmt: skip
    assert main(["directions", "precompute", *common, "--method", "gradient", "--images", "2"]) == 0
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(folder)}
    log = open(folder / "server.log", "w+")  # noqa: SIM115 - read while the server runs
    proc = subprocess.Popen(
        [sys.executable, "-m", "styleclip", "ui", *common, "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while "running on" not in (folder / "server.log").read_text():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"styleclip ui did not start:\n{(folder / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield url, chromium, folder
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the command closes the app and removes its session folders
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _pixels(page, selector: str) -> np.ndarray:
    src = page.locator(f"{selector} img").get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB"))


def _wait_new_src(page, selector: str, old: str | None, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        loc = page.locator(f"{selector} img")
        src = loc.get_attribute("src") if loc.count() else None
        if src and src != old:
            return src
        time.sleep(0.2)
    raise AssertionError(f"{selector} did not change within {timeout} s")


def _src(page, selector: str) -> str | None:
    loc = page.locator(f"{selector} img")
    return loc.get_attribute("src") if loc.count() else None


def test_the_page_edits_stacks_undoes_optimises_and_survives_bad_input(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, chromium, folder = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.wait_for_selector("#after img")

        # a seed
        old = _src(page, "#after")
        page.locator("#seed input").fill("5")
        page.locator("#seed-draw").click()
        _wait_new_src(page, "#after", old)
        expect(page.locator("#history-text")).to_contain_text("seed 5")
        source = _pixels(page, "#after")

        # neutral and target, then move alpha: the edited image changes
        page.locator("#neutral textarea").fill("a dog")
        page.locator("#target textarea").fill("a happy dog")
        old = _src(page, "#after")
        page.locator("#alpha input[type=range]").fill("6")
        _wait_new_src(page, "#after", old)
        expect(page.locator("#channels")).to_contain_text("channels changed")
        edited = _pixels(page, "#after")
        assert np.abs(edited.astype(int) - source.astype(int)).max() > 10

        # accept: the edit becomes the source; undo: the seed's picture is back
        page.locator("#accept").click()
        expect(page.locator("#history-text")).to_contain_text("Step 1 of 1")
        assert np.array_equal(_pixels(page, "#before"), edited)
        old = _src(page, "#after")
        page.locator("#alpha input[type=range]").fill("-4")  # a second edit, stacked on the first
        _wait_new_src(page, "#after", old)
        directions_shot = tmp_path / "ui-directions.png"
        page.screenshot(path=str(directions_shot))
        page.locator("#undo").click()
        expect(page.locator("#history-text")).to_contain_text("Step 0 of 1")
        assert np.array_equal(_pixels(page, "#after"), source)
        assert np.array_equal(_pixels(page, "#before"), source)

        # a 3-step optimisation streams to the page and ends with the trajectory video
        page.get_by_role("tab", name="Optimisation").click()
        page.locator("#steps input").fill("3")
        page.locator("#run").click()
        video = page.locator("#video video")
        expect(video).to_have_attribute("src", re.compile(r"\.mp4"), timeout=120_000)
        expect(page.locator("#opt-status")).to_contain_text("completed after 3 steps")
        video_src = video.get_attribute("src")
        assert page.request.get(video_src).ok

        # the Style tab is there: its picker, the two pictures side by side, and training behind an accordion
        page.get_by_role("tab", name="Style").click()
        expect(page.locator("#style-name")).to_be_visible()
        expect(page.locator("#style-base")).to_be_visible()
        expect(page.locator("#style-after")).to_be_visible()
        expect(page.get_by_text("Train a style from two texts")).to_be_visible()

        # a file that is not an image: a readable message, and the server keeps serving
        bad = tmp_path / "holiday.jpg"
        bad.write_text("this is not a picture")
        page.get_by_role("tab", name="Photo").click()
        page.locator("#photo input[type=file]").set_input_files(str(bad))
        page.wait_for_timeout(500)
        page.locator("#photo-invert").click()
        expect(page.get_by_text("not an image").first).to_be_visible()
        page.get_by_role("tab", name="Seed").click()
        old = _src(page, "#after")
        page.locator("#seed input").fill("7")
        page.locator("#seed-draw").click()
        _wait_new_src(page, "#after", old)
        expect(page.locator("#history-text")).to_contain_text("seed 7")

        shot = tmp_path / "ui.png"
        page.screenshot(path=str(shot), full_page=True)
        sessions = list(folder.glob("styleclip-ui-*/session-*"))
        assert len(sessions) == 1  # this browser's own folder
        browser.close()
    deadline = time.time() + 30
    while sessions[0].exists() and time.time() < deadline:  # closing the page ends the session
        time.sleep(0.5)
    assert not sessions[0].exists()
    assert shot.stat().st_size > 10_000 and directions_shot.stat().st_size > 10_000
    if os.environ.get("STYLECLIP_UI_SCREENSHOT"):  # e.g. docs/ui.png for the README
        Path(os.environ["STYLECLIP_UI_SCREENSHOT"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(directions_shot, os.environ["STYLECLIP_UI_SCREENSHOT"])
    log = (folder / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]
