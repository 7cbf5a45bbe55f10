"""Hostile page users of the web UI: server paths and URLs typed in boxes, PNGs that name files, declare a
million steps or a 10-gigapixel canvas, markup in labels, many mappers. Each is refused in one line (through
``EditSession``/``Studio`` or the page's handlers) under a memory bound, and nothing outside is read or changed."""

from __future__ import annotations

import base64
import io
import json
import struct
import threading
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

import styleclip.ui.session as session_module
from styleclip.guidance.clip import load_clip
from styleclip.hub.mappers import save_mapper
from styleclip.io.images import save_png
from styleclip.nets.mapper import LatentMapper, MapperConfig
from styleclip.stylespace import generator_fingerprint
from styleclip.ui.app import Handlers, plain, readable_errors
from styleclip.ui.session import SESSION_KEY, EditSession, Limits, Preview, Studio

from conftest import tiny_generator, tiny_generator3, varied_generator
from hostile import memory_bound, refused, refused_by

SECRET = "TOP-SECRET-7f3a"


@pytest.fixture(scope="module")
def G():
    return varied_generator()


@pytest.fixture(scope="module")
def guide(tiny_clip_file):
    return load_clip(str(tiny_clip_file), device="cpu")


@pytest.fixture
def uploads(tmp_path):
    folder = tmp_path / "uploads"  # stands for Gradio's upload folder
    folder.mkdir()
    return folder


@pytest.fixture
def server_files(tmp_path):
    """A server folder no page user was allowed: a secret, a mapper, a latent."""
    folder = tmp_path / "server"
    folder.mkdir()
    (folder / "secret.txt").write_text(SECRET)
    return folder


@pytest.fixture
def studio(G, guide, tmp_path, uploads):
    """The UI as ``styleclip ui`` serves it by default: uploads and catalogue names only."""
    return Studio(G, guide, "tiny", stats_samples=200, cache=tmp_path / "cache", offline=True, upload_dirs=[uploads])


class Counter(BaseHTTPRequestHandler):
    """Serves ``/mN.safetensors`` (the mapper bytes set by a test) and ``/junk``; counts every request."""

    requests: ClassVar[list[str]] = []
    payload: ClassVar[bytes] = b""

    def log_message(self, *args):
        pass

    def do_GET(self):
        Counter.requests.append(self.path)
        body = Counter.payload if self.path.endswith(".safetensors") else f"<html>{SECRET}</html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def web():
    Counter.requests.clear()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def write_mapper(G, path: Path, prompt: str = "a red dog", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    mapper = LatentMapper(MapperConfig(w_dim=G.w_dim, num_ws=G.num_ws, groups=("coarse",)))
    meta = {"prompt": prompt, "generator": {"fingerprint": generator_fingerprint(G)}}
    return save_mapper(mapper, path, meta=meta)


def session_png(path: Path, data: dict) -> Path:
    return save_png(Image.new("RGB", (8, 8)), path, text={SESSION_KEY: json.dumps(data)})


def npz_bytes(arrays: dict[str, np.ndarray]) -> str:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def png_declaring(width: int, height: int, text: dict[str, str]) -> bytes:
    """A PNG whose header declares ``width x height`` RGB pixels (its data holds none)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    body = b"".join(chunk(b"tEXt", k.encode("latin-1") + b"\0" + v.encode("latin-1")) for k, v in text.items())
    return b"\x89PNG\r\n\x1a\n" + header + body + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def never_draw(monkeypatch, session):
    def boom(codes):
        raise AssertionError("drew a picture for a refused PNG")

    monkeypatch.setattr(session, "_render", boom)


# -- 1. page users name catalogue names and uploads, never server paths or URLs --------------------------


@pytest.mark.parametrize(
    "spec", ["/etc/passwd", "../x", "~/.ssh/id_rsa", "file:///etc/passwd", "SERVER/secret.txt", "SERVER/m.safetensors"]
)
def test_the_mapper_box_opens_no_server_path(session, server_files, tmp_path, spec):
    write_mapper(session.G, server_files / "m.safetensors")
    spec = spec.replace("SERVER", str(server_files))
    refused_by(lambda: session.preview_mapper(spec, 1.0), match="catalogue|--allow-paths", watch=[tmp_path])
    assert not session.studio._mappers


def test_the_mapper_box_downloads_no_url_unless_allowed(session, web, tmp_path):
    Counter.payload = write_mapper(session.G, tmp_path / "m.safetensors").read_bytes()
    for spec in (f"{web}/m1.safetensors", f"{web.replace('http', 'HTTP')}/m2.safetensors", "ftp://127.0.0.1/m.pt"):
        refused_by(lambda spec=spec: session.preview_mapper(spec, 1.0), match="--allow-urls|http", watch=[tmp_path])
    assert Counter.requests == []  # not even asked


@pytest.mark.parametrize("handler", ["latent", "png", "photo"])
def test_the_upload_handlers_open_only_uploads(session, server_files, tmp_path, handler):
    h = Handlers(session.studio, tmp_path)
    calls = {
        "latent": lambda p: h.latent(session, p),
        "png": lambda p: h.png(session, p, "t", "n", 1, 0.1, "p"),
        "photo": lambda p: h.photo(session, p, "auto", 0),
    }
    for path in ("/etc/passwd", str(server_files / "secret.txt"), "http://127.0.0.1:9/x.png", "../../x"):
        refused_by(lambda path=path: readable_errors(calls[handler])(path), error=gr.Error, match="upload",
                   watch=[tmp_path])  # fmt: skip
    assert session.source.label == "seed 3"


def test_uploads_and_allowed_folders_are_open(G, guide, tmp_path, uploads, server_files):
    allowed = tmp_path / "mappers"
    allowed.mkdir()
    mine = write_mapper(G, allowed / "mine.safetensors")
    outside = write_mapper(G, server_files / "outside.safetensors", seed=1)
    (allowed / "link.safetensors").symlink_to(outside)  # symlinks are resolved before the check
    studio = Studio(G, guide, stats_samples=200, cache=tmp_path / "cache", offline=True, upload_dirs=[uploads],
                    allow_paths=[allowed])  # fmt: skip
    s = EditSession(studio, tmp_path)
    s.from_seed(2)
    assert s.preview_mapper(str(mine), 1.0).edit["mapper"] == str(mine)
    for spec in (allowed / "link.safetensors", allowed / ".." / "server" / "outside.safetensors", outside):
        refused_by(lambda spec=spec: s.preview_mapper(str(spec), 1.0), match="--allow-paths")
    np.save(uploads / "w.npy", G.mapping_forward(G.z_from_seed(5), None).detach().numpy())
    assert s.from_latent_file(uploads / "w.npy").label == "w.npy"


def test_the_cli_passes_its_allowances_and_checks_them_first(monkeypatch, capsys, tmp_path, G, guide):
    import styleclip.guidance.clip as clip_module
    import styleclip.hub.generators as generators_module
    import styleclip.ui.app as app_module
    from styleclip.errors import UsageError

    refused(["ui", "--generator", "nothing.pkl", "--allow-paths", tmp_path / "missing"], capsys,
            match="--allow-paths .*not a folder", watch=[tmp_path])  # fmt: skip
    seen = {}

    def build_app(*args, **kwargs):
        seen.update(kwargs)
        raise UsageError("stop here")

    monkeypatch.setattr(generators_module, "load_generator", lambda *a, **k: G)
    monkeypatch.setattr(clip_module, "load_clip", lambda *a, **k: guide)
    monkeypatch.setattr(app_module, "build_app", build_app)
    refused(["ui", "--allow-paths", tmp_path, "--allow-urls"], capsys, match="stop here")
    assert seen["allow_paths"] == [tmp_path.resolve()] and seen["allow_urls"] is True


# -- 2. refusals say nothing about the server's files ---------------------------------------------------


def test_refusals_read_the_same_for_missing_and_existing_files(session, server_files, tmp_path):
    (server_files / "link").symlink_to(server_files / "secret.txt")
    paths = [server_files / "secret.txt", server_files / "missing.txt", server_files, server_files / "link"]
    h = Handlers(session.studio, tmp_path)
    by_mapper = {refused_by(lambda p=p: session.preview_mapper(str(p), 1)) for p in paths}
    by_latent = {refused_by(lambda p=p: readable_errors(h.latent)(session, str(p)), error=gr.Error) for p in paths}
    by_png = {refused_by(lambda p=p: session.from_png(p)) for p in paths}
    for messages in (by_mapper, by_latent, by_png):
        assert len(messages) == 1, messages
        assert SECRET not in messages.pop()


def test_an_allowed_file_that_is_no_mapper_is_not_echoed(G, guide, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "notes.pt").write_text(SECRET * 10)
    s = EditSession(Studio(G, guide, cache=tmp_path / "cache", offline=True, allow_paths=[allowed]), tmp_path)
    s.from_seed(0)
    assert SECRET not in refused_by(lambda: s.preview_mapper(str(allowed / "notes.pt"), 1.0))


# -- 3. a PNG names files: never opened ------------------------------------------------------------------


def test_a_png_that_names_a_latent_file_never_opens_it(session, uploads, server_files, web, monkeypatch):
    from styleclip.reports import REPORT_KEY

    latent = server_files / "latent.npy"
    np.save(latent, np.zeros((1, session.G.w_dim), np.float32))
    monkeypatch.setattr("styleclip.latents.load_latent", lambda *a: pytest.fail("opened a path a PNG names"))
    monkeypatch.setattr(EditSession, "from_latent_file", lambda *a: pytest.fail("opened a path a PNG names"))
    messages = set()
    for i, named in enumerate((latent, server_files / "missing.npy", f"{web}/latent.npy", "file:///etc/passwd")):
        report = {"config": {"latent": str(named), "prompts": ["a red dog"], "seeds": [1], "mode": "edit"}}
        png = save_png(Image.new("RGB", (8, 8)), uploads / f"after{i}.png", text={REPORT_KEY: json.dumps(report)})
        messages.add(refused_by(lambda png=png: session.from_png(png), match="Latent tab", watch=[server_files]))
    assert len(messages) == 1 and Counter.requests == []
    assert session.source.label == "seed 3"  # the session is as it was


def test_a_png_report_of_the_wrong_types_is_one_line(session, uploads):
    from styleclip.reports import REPORT_KEY

    for i, cfg in enumerate(([1, 2], {"seeds": 4}, {"seeds": ["x"]}, {"seeds": [-1]}, {"seeds": [2**70]},
                             {"seeds": [1], "prompts": ["x" * 5000]}, {"seeds": [1], "truncation_psi": 1e308})):  # fmt: skip
        text = {REPORT_KEY: json.dumps({"config": cfg})}
        png = save_png(Image.new("RGB", (8, 8)), uploads / f"r{i}.png", text=text)
        refused_by(lambda png=png: session.from_png(png))
    bad = {"styleclip:target": "a cat", "styleclip:alpha": "lots", "styleclip:seed": "6"}
    refused_by(lambda: session.from_png(save_png(Image.new("RGB", (8, 8)), uploads / "d.png", text=bad)),
               match="alpha must be a number")  # fmt: skip


def test_damaged_session_metadata_is_one_line(session, uploads, monkeypatch):
    never_draw(monkeypatch, session)
    cases = ["[" * 100_000 + "]" * 100_000, "[]", '{"steps": "x"}', '{"steps": [{"label": 1, "edit": {}}]}',
             '{"steps": [{"label": "x", "edit": {}}], "codes": "not base64!"}',
             '{"steps": [{"label": "x", "edit": {}}], "codes": "AAAA"}']  # fmt: skip
    for i, text in enumerate(cases):
        png = save_png(Image.new("RGB", (8, 8)), uploads / f"m{i}.png", text={SESSION_KEY: text})
        refused_by(lambda png=png: session.from_png(png), match="damaged")


# -- 4. what users typed is escaped where the page shows HTML --------------------------------------------

HOSTILE = '<img src=x onerror="alert(1)"> ![t](http://127.0.0.1:9/t.png) [go](javascript:alert(1)) **b** www.x.org'


def test_labels_prompts_and_channel_lists_are_escaped(session, uploads, tmp_path, G, guide):
    h = Handlers(session.studio, tmp_path)
    data = json.loads(session.png_text()[SESSION_KEY])
    data["steps"][0]["label"] = HOSTILE
    data["steps"][0]["edit"] = {"method": "directions", "target": HOSTILE, "neutral": "a dog", "alpha": 2, "beta": 0.1}
    png = session_png(uploads / "shared.png", data)
    s, _before, _after, gallery, text, target, *_ = h.png(session, str(png), "t", "n", 0, 0.1, "p")
    for forbidden in ("<img", "![", "](", "**", "www."):
        assert forbidden not in text, text
    assert html_shown(text).endswith(HOSTILE) and gallery[0][1] == f"0: {HOSTILE}"  # captions are text, not HTML
    assert target == HOSTILE  # back into a text box, as typed

    allowed = tmp_path / "allowed"
    allowed.mkdir()
    path = write_mapper(G, allowed / "m.safetensors", prompt=HOSTILE)
    s.studio.allow_paths = [allowed.resolve()]
    _, _, info, _ = h.mapper(s, str(path), 1.0)
    assert "<img" not in info and "![" not in info and HOSTILE in html_shown(info)


def test_error_messages_on_the_page_are_escaped_and_one_line(session, tmp_path):
    h = Handlers(session.studio, tmp_path)
    message = refused_by(lambda: readable_errors(h.seed)(session, "<b>1</b>", 0.7), error=gr.Error)
    assert "&lt;b&gt;" in message and "<b>" not in message

    def two_lines():
        raise session_module.UsageError("first\nsecond")

    with pytest.raises(gr.Error) as caught:
        readable_errors(two_lines)()
    assert caught.value.message == "first second"


def html_shown(markdown: str) -> str:
    import html
    import re

    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


def test_plain_leaves_ordinary_text_readable():
    assert plain("Step 1 of 2: seed 5") == "Step 1 of 2\\: seed 5"
    assert html_shown(plain(HOSTILE)) == HOSTILE


# -- 5. a history is bounded and drawn once per step -----------------------------------------------------


def test_a_png_declaring_a_million_steps_is_refused_before_drawing(session, uploads, monkeypatch):
    png = session_png(uploads / "million.png", {"steps": [0] * 10**6, "codes": ""})
    never_draw(monkeypatch, session)
    refused_by(lambda: session.from_png(png), match="1000000 steps.*at most 100")
    assert len(session.history) == 1


def test_a_history_step_of_many_rows_is_refused_before_drawing(session, uploads, monkeypatch, G):
    steps = [{"label": "x", "edit": {}}]
    many = np.zeros((5000, G.num_ws, G.w_dim), np.float32)
    never_draw(monkeypatch, session)
    png = session_png(uploads / "rows.png", {"steps": steps, "codes": npz_bytes({"0/ws": many})})
    refused_by(lambda: session.from_png(png), match="5000 rows.*one picture")
    crowd = {f"0/junk{i}": np.zeros(1, np.float32) for i in range(5000)}
    png = session_png(uploads / "members.png", {"steps": steps, "codes": npz_bytes(crowd)})
    refused_by(lambda: session.from_png(png), match="damaged.*more arrays")
    other = np.zeros((1, G.num_ws, G.w_dim + 1), np.float32)
    png = session_png(uploads / "other.png", {"steps": steps, "codes": npz_bytes({"0/ws": other})})
    refused_by(lambda: session.from_png(png), match="another generator")
    nan = np.full((1, G.num_ws, G.w_dim), np.nan, np.float32)
    png = session_png(uploads / "nan.png", {"steps": steps, "codes": npz_bytes({"0/ws": nan})})
    refused_by(lambda: session.from_png(png), match="NaN")
    assert session.source.label == "seed 3"


def test_a_codes_upload_declaring_ten_million_rows_is_read_one_row_deep(session, uploads, G):
    """Each member's header declares 10^7 rows (gigabytes) and holds one: only that row is read and drawn."""
    rows = 10**7

    def member(*shape: int) -> bytes:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (rows, *shape)})
        return header.getvalue() + np.full(shape, 0.5, np.float32).tobytes()

    upload = uploads / "codes.npz"
    with zipfile.ZipFile(upload, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ws.npy", member(G.num_ws, G.w_dim))
        for layer in G.style_layers:
            z.writestr(f"styles/{layer.name}.npy", member(layer.channels))
    with memory_bound(1 << 30):
        step = session.from_latent_file(upload)
    assert step.codes.ws.shape == (1, G.num_ws, G.w_dim) and float(step.codes.ws.min()) == 0.5
    assert step.codes.in_stylespace and step.pixels.shape[0] == G.img_resolution


def test_history_restores_one_picture_per_step_and_accept_is_bounded(session, uploads, monkeypatch, G):
    session.preview = Preview(session.source.codes, session.source.pixels, {"method": "x"}, "again")
    session.accept()
    png = session.export_png()
    shutil_copy = uploads / "mine.png"
    shutil_copy.write_bytes(png.read_bytes())
    drawn = []
    render = EditSession._render

    def counting(self, codes):
        drawn.append(codes.ws.shape[0])
        return render(self, codes)

    monkeypatch.setattr(EditSession, "_render", counting)
    other = EditSession(session.studio, uploads)
    other.from_png(shutil_copy)
    assert drawn == [1, 1] and len(other.history) == 2
    monkeypatch.setattr(session_module, "MAX_HISTORY", 2)
    other.preview = Preview(other.source.codes, other.source.pixels, {}, "one more")
    refused_by(other.accept, match="holds 2 steps")
    other.restore(0)
    other.preview = Preview(other.source.codes, other.source.pixels, {}, "from the first step")
    other.accept()  # from an earlier step there is room again
    assert len(other.history) == 2
    other.close()


# -- 6. the PNG drop applies the megapixel and size limits ------------------------------------------------


@pytest.mark.parametrize(("width", "height", "megapixels"), [(100_000, 100_000, "10000"), (12_000, 10_000, "120")])
def test_a_png_declaring_a_huge_canvas_is_refused_before_decoding(session, uploads, width, height, megapixels):
    import warnings

    png = uploads / "canvas.png"
    png.write_bytes(png_declaring(width, height, {SESSION_KEY: "{}"}))
    h = Handlers(session.studio, uploads)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's decompression-bomb warning must not surface either
        refused_by(lambda: session.from_png(png), match=f"{megapixels} megapixels; the limit is 40")
        refused_by(lambda: readable_errors(h.png)(session, str(png), "t", "n", 0, 0.1, "p"), error=gr.Error,
                   match="megapixels")  # fmt: skip


def test_png_drop_and_latent_uploads_obey_the_size_limit(G, guide, uploads, tmp_path):
    studio = Studio(G, guide, limits=Limits(max_upload_mb=0.001), upload_dirs=[uploads])
    s = EditSession(studio, tmp_path)
    big = uploads / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(big)
    refused_by(lambda: s.from_png(big), match="MB; the limit is 0.001 MB")
    np.save(uploads / "w.npy", np.zeros((400, G.w_dim), np.float32))
    refused_by(lambda: s.from_latent_file(uploads / "w.npy"), match="MB")


# -- 7. the mapper cache is bounded ----------------------------------------------------------------------


def test_the_mapper_cache_keeps_the_most_recently_used(G, guide, tmp_path, monkeypatch):
    import styleclip.hub.mappers as mappers_module

    allowed = tmp_path / "mappers"
    allowed.mkdir()
    paths = [str(write_mapper(G, allowed / f"m{i}.safetensors", seed=i)) for i in range(5)]
    studio = Studio(G, guide, cache=tmp_path / "cache", offline=True, allow_paths=[allowed], max_mappers=2)
    loads = []
    load = mappers_module.load_mapper
    monkeypatch.setattr(mappers_module, "load_mapper", lambda p, **k: loads.append(p) or load(p, **k))
    for i in (0, 1, 0, 2, 0, 3, 4):
        studio.mapper(paths[i])
        assert len(studio._mappers) <= 2
    assert [Path(p).name for p in loads] == ["m0.safetensors", "m1.safetensors", "m2.safetensors",
                                             "m3.safetensors", "m4.safetensors"]  # fmt: skip
    assert list(studio._mappers) == [f"path:{paths[3]}", f"path:{paths[4]}"]


def test_mapper_downloads_are_bounded_on_disk(G, guide, tmp_path, web):
    Counter.payload = write_mapper(G, tmp_path / "m.safetensors").read_bytes()
    cache = tmp_path / "cache"
    (cache / "urls" / "earlier").mkdir(parents=True)  # a download of someone else: never removed
    studio = Studio(G, guide, cache=cache, allow_urls=True, max_mappers=2)
    for i in range(6):
        studio.mapper(f"{web}/m{i}.safetensors")
        assert len(list((cache / "urls").iterdir())) <= 3
    assert len(Counter.requests) == 6
    before = sorted(p.name for p in (cache / "urls").iterdir())
    message = refused_by(lambda: studio.mapper(f"{web}/junk"), watch=[cache / "urls"])  # a page, not a mapper
    assert SECRET not in message and str(cache) not in message and message.startswith(f"{web}/junk: ")
    assert sorted(p.name for p in (cache / "urls").iterdir()) == before
    assert (cache / "urls" / "earlier").is_dir()


# -- sessions stay apart --------------------------------------------------------------------------------


def test_sessions_cannot_open_each_others_files(studio, tmp_path):
    a, b = EditSession(studio, tmp_path), EditSession(studio, tmp_path)
    a.from_seed(3)
    png, codes, *_ = a.downloads()
    assert a.from_png(png) == {} and a.from_latent_file(codes).label == codes.name  # its own folder: fine
    b.from_seed(4)
    for path in (png, codes, a.folder / "0001" / ".." / "0001" / png.name):
        refused_by(lambda path=path: b.from_png(path), match="upload")
        refused_by(lambda path=path: b.from_latent_file(path), match="upload")
    assert b.source.label == "seed 4"
    a.close()
    b.close()


def test_a_mapper_apply_png_is_named_for_what_it_is_not_called_damaged(session, uploads):
    from styleclip.reports import REPORT_KEY

    report = {"mapper": "mohawk", "prompt": "mohawk hairstyle", "strength": 0.1, "source": "seeds 0"}
    png = save_png(Image.new("RGB", (8, 8)), uploads / "after.png", text={REPORT_KEY: json.dumps(report)})
    message = refused_by(lambda: session.from_png(png), match="mapper edit.*Latent tab")
    assert "damaged" not in message


# -- the Style tab: adapted generators named, uploaded and trained by page users ----------------------------


@pytest.mark.parametrize(
    "spec", ["/etc/passwd", "../x", "~/.ssh/id_rsa", "file:///etc/passwd", "SERVER/secret.txt", "SERVER/g.safetensors"]
)
def test_the_style_box_opens_no_server_path(session, server_files, tmp_path, spec, monkeypatch):
    import styleclip.hub.generators as generators_module
    from styleclip.hub.generators import save_generator

    save_generator(session.G, server_files / "g.safetensors")
    monkeypatch.setattr(generators_module, "load_generator", lambda *a, **k: pytest.fail("opened a server file"))
    spec = spec.replace("SERVER", str(server_files))
    message = refused_by(lambda: session.draw_style(spec), match="catalogue|--allow-paths", watch=[tmp_path])
    assert SECRET not in message and str(server_files) not in message
    assert not session._adapted and session.style is None


def test_the_style_box_downloads_no_url_unless_allowed(session, web, tmp_path):
    for spec in (f"{web}/g.safetensors", f"{web.replace('http', 'HTTP')}/g.pkl", "ftp://127.0.0.1/g.pt"):
        refused_by(lambda spec=spec: session.draw_style(spec), match="--allow-urls|http", watch=[tmp_path])
    assert Counter.requests == []  # not even asked


def test_another_sessions_trained_style_is_not_open(studio, tmp_path):
    from styleclip.hub.generators import save_generator

    a, b = EditSession(studio, tmp_path), EditSession(studio, tmp_path)
    b.from_seed(1)
    theirs = save_generator(studio.G, a.folder / "styles" / "0001-sketch" / "generator.safetensors")
    a.own_styles["trained:sketch"] = theirs
    refused_by(lambda: b.draw_style(str(theirs)), match="--allow-paths")
    refused_by(lambda: b.draw_style("trained:sketch"), match="unknown model name")  # a's names are a's
    a.close()
    b.close()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: tiny_generator(resolution=16), r"W\+ rows 6 \(needs 8\); resolution 16 \(needs 32\)"),
        (lambda: tiny_generator3(resolution=32), r"family StyleGAN3 \(needs StyleGAN2\)"),
        (lambda: tiny_generator(channel_max=16), "other style layers"),
    ],
)
def test_an_incompatible_generator_is_one_line(session, uploads, make, match):
    from styleclip.hub.generators import save_generator

    path = save_generator(make(), uploads / "other.safetensors")
    h = Handlers(session.studio, uploads.parent)
    s, update = h.style_upload(session, str(path))
    assert update["value"] == "upload:other.safetensors" and update["value"] in update["choices"]
    message = refused_by(lambda: readable_errors(h.style)(s, update["value"]), error=gr.Error, match=match)
    assert "cannot draw the codes of this server" in message and "adapted from the one this server edits" in message
    assert not session._adapted and session.style is None


def test_an_uploaded_file_that_is_no_generator_is_not_echoed(session, uploads):
    (uploads / "notes.pt").write_text(SECRET * 10)
    name = session.add_style_upload(uploads / "notes.pt")
    message = refused_by(lambda: session.draw_style(name))
    assert SECRET not in message and str(uploads) not in message and name in message


@pytest.mark.parametrize(
    ("texts", "match"),
    [
        (("photo", ""), "target text is empty"),
        (("photo", "   "), "target text is empty"),
        (("", "sketch"), "source text is empty"),
        (("photo", "x" * 10_000), "10000 characters"),
        (("Photo", "photo"), "the same"),
    ],
)
def test_bad_adaptation_texts_are_one_line_before_training(session, tmp_path, texts, match, monkeypatch):
    import styleclip.training.adapt as adapt_module

    monkeypatch.setattr(adapt_module, "Adapter", lambda *a, **k: pytest.fail("started training"))
    h = Handlers(session.studio, tmp_path)
    refused_by(lambda: list(readable_errors(h.adapt)(session, *texts, 2, "auto")), error=gr.Error, match=match,
               watch=[tmp_path])  # fmt: skip
    for steps, layers, said in ((float("nan"), "auto", "finite"), (10**9, "auto", "between"), (2, "x", "layers")):
        refused_by(lambda s=steps, l=layers: session.adapt_style("photo", "sketch", s, l), match=said)
    assert not (session.folder / "styles").exists()


# -- 7. HyperStyle: the page names an inversion, never a model file ---------------------------------------


def test_the_photo_tab_opens_no_hyperstyle_model_the_page_names(session, uploads, server_files, tmp_path, monkeypatch):
    """No box takes a HyperStyle model: the method radio's value is checked against the CLI's list, and HyperStyle
    runs only with the model the catalogue pairs with the server's generator (here none: refused before loading)."""
    import styleclip.inversion.encoders as encoders
    import styleclip.inversion.hyperstyle as hyperstyle

    def never(*args, **kwargs):
        raise AssertionError(f"opened a model the page named: {args}")

    monkeypatch.setattr(hyperstyle, "load_hyperstyle", never)
    monkeypatch.setattr(encoders, "load_encoder", never)
    (server_files / "hyperstyle_ffhq.pt").write_bytes(SECRET.encode())
    photo = uploads / "me.png"
    Image.new("RGB", (40, 40), "gray").save(photo)
    h = Handlers(session.studio, tmp_path)
    for method in (str(server_files / "hyperstyle_ffhq.pt"), "../server/hyperstyle_ffhq.pt", "hyperstyle:ffhq",
                   "http://127.0.0.1:9/hyperstyle_ffhq.pt", HOSTILE):  # fmt: skip
        message = refused_by(lambda m=method: readable_errors(h.photo)(session, str(photo), m, 0), error=gr.Error,
                             match="the inversion must be one of auto, hyperstyle", watch=[tmp_path])  # fmt: skip
        assert SECRET not in message and "<img" not in message
    refused_by(lambda: readable_errors(h.photo)(session, str(photo), "hyperstyle", 0), error=gr.Error,
               match="knows no HyperStyle model for this server", watch=[tmp_path])  # fmt: skip
    assert session.source.label == "seed 3" and session.weights is None


def test_a_png_claiming_a_hyperstyle_photo_restores_codes_only_with_a_note(session, uploads, tmp_path):
    """A dropped PNG cannot bring per-photo weights (nor name a file for them): its codes are drawn by the shared
    generator and the page says so in one line; what the PNG says about offsets is never opened or shown raw."""
    from styleclip.ui.session import NO_OFFSETS

    h = Handlers(session.studio, tmp_path)
    data = json.loads(session.png_text()[SESSION_KEY])
    data["steps"][0]["edit"] = {"source": "photo", "file": HOSTILE, "method": "hyperstyle", "offsets": "/etc/passwd",
                                "why": HOSTILE}  # fmt: skip
    png = session_png(uploads / "claims.png", data)
    s, before, _after, _gallery, text, *_ = h.png(session, str(png), "t", "n", 0, 0.1, "p")
    assert s.weights is None and s.notice == NO_OFFSETS and s.drawer is s.G
    assert np.array_equal(before, session.history[0].pixels)  # the seed's codes, drawn by the shared generator
    assert text.count("note:") == 1 and "<img" not in text and "passwd" not in text


# -- the Video tab ------------------------------------------------------------------------------------------------


def _no_decoding(monkeypatch):
    """Fail the test if anything tries to open a video (a refusal must come before ffmpeg sees the file)."""
    import imageio_ffmpeg

    from styleclip.video import frames

    def boom(*args, **kwargs):
        raise AssertionError("a video was opened")

    monkeypatch.setattr(frames, "probe", boom)
    monkeypatch.setattr(imageio_ffmpeg, "read_frames", boom)
    monkeypatch.setattr(imageio_ffmpeg, "count_frames_and_secs", boom)


def test_the_video_tab_opens_no_server_path(session, server_files, tmp_path, monkeypatch):
    from test_ui import short_clip

    clip = short_clip(server_files / "clip.mp4")
    h = Handlers(session.studio, tmp_path)
    _no_decoding(monkeypatch)
    for path in ("/etc/passwd", str(clip), str(server_files / "secret.txt"), "http://127.0.0.1:9/x.mp4", "../../x"):
        message = refused_by(lambda path=path: readable_errors(h.video_upload)(session, path), error=gr.Error,
                             match="opens only files uploaded", watch=[server_files])  # fmt: skip
        assert str(server_files) not in message and SECRET not in message
    assert session.video is None


def test_a_file_that_is_not_a_video_is_one_line(session, uploads, tmp_path):
    from test_ui import short_clip

    session.load_video(short_clip(uploads / "good.mp4", frames=2))
    (uploads / "clip.mp4").write_text(SECRET)
    (uploads / "empty.mov").write_bytes(b"")
    for name in ("clip.mp4", "empty.mov"):
        message = refused_by(lambda name=name: session.load_video(uploads / name), match="not a video|no video",
                             watch=[uploads])  # fmt: skip
        assert str(uploads) not in message and SECRET not in message  # the upload by its name, never its contents
        assert session.video is None  # the Render button cannot go on with the clip uploaded before
    h = Handlers(session.studio, tmp_path)
    refused_by(lambda: readable_errors(h.video_upload)(session, str(uploads / "clip.mp4")), error=gr.Error,
               match="clip.mp4: not a video")  # fmt: skip


def test_too_many_frames_is_one_line_naming_the_limit(G, guide, uploads, tmp_path, monkeypatch):
    from test_ui import short_clip

    studio = Studio(G, guide, "tiny", stats_samples=200, cache=tmp_path / "cache", offline=True,
                    upload_dirs=[uploads], limits=Limits(max_video_frames=4))  # fmt: skip
    s = EditSession(studio, tmp_path)
    six = short_clip(uploads / "six.mp4")
    message = refused_by(lambda: s.load_video(six), match="6 frames; the page edits clips of at most 4 frames")
    assert "--max-video-frames" in message and str(uploads) not in message
    # a clip whose header declares far more frames than the limit is refused before its frames are counted
    twelve = short_clip(uploads / "twelve.mp4", frames=12)
    studio.limits = Limits(max_video_frames=5)
    import imageio_ffmpeg

    monkeypatch.setattr(imageio_ffmpeg, "count_frames_and_secs", lambda *a, **k: pytest.fail("frames counted"))
    refused_by(lambda: s.load_video(twelve), match="about 12 frames; the page edits clips of at most 5")
    assert s.video is None
    s.close()


def test_no_face_in_any_frame_is_one_line(session, uploads, tmp_path, G):
    pytest.importorskip("dlib")
    from test_ui import tiny_video_encoder

    from test_video import write_clip

    blank = [np.full((240, 320, 3), 90 + 10 * t, np.uint8) for t in range(4)]
    clip = write_clip(uploads / "wall.mp4", blank, audio=False)
    session.load_video(clip)
    encoder = str(tiny_video_encoder(G, tmp_path / "e4e.pt"))
    inversion = session.studio.video_inversion("e4e", encoder)
    mapper = str(write_mapper(G, uploads / "m.safetensors"))
    edit = session.video_edit("mapper", mapper=mapper, strength=1)[0]
    h = Handlers(session.studio, tmp_path)
    args = ("mapper", "", "", 0, 0.1, False, mapper, 1.0, "e4e", "face")
    refused_by(lambda: readable_errors(h.video_preview)(session, *args, encoder=encoder), error=gr.Error,
               match="no face found in the previewed frames \\(0, 2, 3\\) of wall.mp4: for another subject pick the center framing")  # fmt: skip
    message = refused_by(lambda: session.render_video(edit, None, inversion, "face"), match="no face found in any")
    assert (
        "pick the center framing in the Video tab" in message
        and str(uploads) not in message
        and "--align" not in message
    )
    # the center framing edits the same clip
    assert session.preview_video(edit, inversion, "center").ndim == 3


@pytest.mark.parametrize(
    ("kind", "method", "align", "match"),
    [
        ("sideways", "e4e", "auto", "edit is .*direction.* or .*mapper"),
        ("mapper", "project", "auto", "inverted with"),
        ("mapper", "e4e", "diagonal", "framing must be"),
        ("mapper", "hyperstyle", "auto", "knows no HyperStyle"),
        ("mapper", "auto", "auto", "pairs no encoder"),
    ],
)
def test_bad_video_settings_are_one_line(session, uploads, G, kind, method, align, match):
    from test_ui import short_clip

    session.load_video(short_clip(uploads / "clip.mp4", frames=3))
    h = Handlers(session.studio, uploads)
    mapper = str(write_mapper(G, uploads / "m.safetensors"))
    args = (kind, "", "", 0, 0.1, False, mapper, 1.0, method, align)
    refused_by(lambda: readable_errors(h.video_preview)(session, *args), error=gr.Error, match=match)
