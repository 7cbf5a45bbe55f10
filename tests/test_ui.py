"""The web UI's logic (EditSession, Studio) and its Gradio handlers, with the tiny generator and tiny CLIP."""

from __future__ import annotations

import json
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from styleclip.errors import UsageError
from styleclip.guidance.clip import load_clip
from styleclip.io.images import to_uint8
from styleclip.ui.session import EditSession, Limits, OptimizeSettings, Studio

from conftest import tiny_generator, varied_generator


@pytest.fixture(scope="module")
def G():
    G = varied_generator()
    return G


@pytest.fixture(scope="module")
def guide(tiny_clip_file):
    return load_clip(str(tiny_clip_file), device="cpu")


@pytest.fixture(scope="module")
def studio(G, guide, tmp_path_factory):
    # the tests' files lie under pytest's temporary folder: the one server folder these page users may name
    studio = Studio(G, guide, "tiny", stats_samples=500, cache=tmp_path_factory.mktemp("cache"),
                    allow_paths=[tmp_path_factory.getbasetemp()])  # fmt: skip
    studio.compute_matrix(images=2)
    return studio


def shown(markdown: str) -> str:
    """What a page shows for the Markdown text the handlers return (escaped with ``plain``)."""
    import html
    import re

    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


def seed_pixels(G, seed, psi=0.7):
    with torch.no_grad():
        return to_uint8(G(G.z_from_seed(seed), truncation_psi=psi))[0]


def test_seed_source_is_the_generators_picture(session, G):
    assert np.array_equal(session.source.pixels, seed_pixels(G, 3))
    assert session.source.edit == {"source": "seed", "seed": 3, "truncation_psi": 0.7}


def test_slider_move_reuses_the_direction_and_the_source_styles(session, studio, G, monkeypatch):
    zero = session.preview_direction("a happy dog", "a dog", 0, 0.1)
    assert np.array_equal(zero.pixels, session.source.pixels)  # alpha 0 is the source exactly
    first = session.preview_direction("a happy dog", "a dog", 4, 0.1)
    assert np.abs(first.pixels.astype(int) - session.source.pixels).max() > 10

    def boom(*args, **kwargs):
        raise AssertionError("recomputed on a slider move")

    monkeypatch.setattr(studio.guide, "direction", boom)  # no text encoding
    monkeypatch.setattr(G, "styles", boom)  # no styles of the source
    monkeypatch.setattr(G, "synthesize", boom)  # and nothing but the one synthesis from styles
    again = session.preview_direction("a happy dog", "a dog", -4, 0.1)
    assert np.abs(again.pixels.astype(int) - first.pixels).max() > 0
    assert again.edit == {"method": "directions", "target": "a happy dog", "neutral": "a dog", "alpha": -4.0,
                          "beta": 0.1, "channels_changed": again.edit["channels_changed"]}  # fmt: skip


def test_automatic_beta_and_sweep(session, studio):
    p = session.preview_direction("a happy dog", "a dog", 3, None)
    assert 0.1 <= p.edit["beta"] <= 0.29
    strip = session.sweep("a happy dog", "a dog", 3, None)
    h = session.source.pixels.shape[0]
    assert strip.height > h and strip.width >= 7 * h


def test_accept_stacks_undo_redo_restore(session):
    source = session.source.pixels
    edited = session.preview_direction("a happy dog", "a dog", 5, 0.1).pixels
    session.accept()
    assert np.array_equal(session.source.pixels, edited)
    second = session.preview_direction("a sad dog", "a dog", 5, 0.1).pixels  # stacks on the accepted edit
    session.accept()
    assert session.index == 2 and np.array_equal(session.source.pixels, second)
    assert session.source.codes.in_stylespace
    assert np.array_equal(session.undo().pixels, edited)
    assert np.array_equal(session.undo().pixels, source)
    with pytest.raises(UsageError, match="nothing to undo"):
        session.undo()
    assert np.array_equal(session.redo().pixels, edited)
    session.restore(0)
    session.preview_direction("a cat", "a dog", 5, 0.1)
    session.accept()  # a new branch drops the redo steps
    assert len(session.history) == 2
    with pytest.raises(UsageError, match="nothing to redo"):
        session.redo()
    with pytest.raises(UsageError, match="nothing to accept"):
        session.accept()


def test_optimisation_streams_frames_writes_a_video_and_stacks(session):
    frames = []
    p = session.optimize(OptimizeSettings("a red dog", steps=3), on_frame=lambda k, px: frames.append(k))
    assert frames == [0, 1, 2, 3] and p.video.is_file() and p.video.suffix == ".mp4"
    assert p.edit["steps_done"] == 3 and p.edit["stopped"] == "completed"
    assert not np.array_equal(p.pixels, session.source.pixels)
    session.accept()
    # a StyleSpace edit on top, then optimisation of that in S (W+ would lose the style edit: refused)
    session.preview_direction("a happy dog", "a dog", 5, 0.1)
    session.accept()
    with pytest.raises(UsageError, match="optimise it in S"):
        session.optimize(OptimizeSettings("a red dog", steps=2, space="w+"))
    q = session.optimize(OptimizeSettings("a red dog", steps=2, space="s", layers="coarse"), video=False)
    assert q.codes.in_stylespace and q.video is None


def test_cancel_keeps_the_best_result(session):
    def cancel_at_step_2(step, pixels):
        if step == 2:
            session.request_cancel()

    p = session.optimize(OptimizeSettings("a red dog", steps=50), on_frame=cancel_at_step_2, video=False)
    assert p.edit["stopped"] == "interrupted" and p.edit["steps_done"] == 3


def test_downloads_and_png_round_trip(session, studio, tmp_path):
    session.preview_direction("a happy dog", "a dog", 5, 0.1)
    session.accept()
    session.preview_direction("a sad dog", "a dog", 3, 0.1)  # the preview is what gets downloaded
    png, codes, report, history = session.downloads()
    with Image.open(png) as im:
        assert np.array_equal(np.asarray(im), session.current.pixels)
    assert json.loads(report.read_text())["steps"][-1]["edit"]["target"] == "a sad dog"
    with zipfile.ZipFile(history) as z:
        names = z.namelist()
    assert "history.json" in names and sum(n.endswith(".png") for n in names) == 3

    other = EditSession(studio, tmp_path)
    settings = other.from_png(png)  # the whole history comes back, exactly
    assert settings["target"] == "a sad dog" and settings["alpha"] == 3.0
    assert [s.label for s in other.history] == [s.label for s in session._chain()]
    assert np.array_equal(other.source.pixels, session.current.pixels)
    assert np.array_equal(other.undo().pixels, session.source.pixels)
    again = EditSession(studio, tmp_path)
    again.from_latent_file(codes)  # the codes file: W+ and the edited styles
    assert np.array_equal(again.source.pixels, session.current.pixels)
    assert other.folder != session.folder
    other.close()
    assert not other.folder.exists()


def test_png_from_styleclip_edit_restores_seed_and_prompt(studio, G, tmp_path):
    from styleclip.io.images import save_png
    from styleclip.reports import REPORT_KEY

    report = {"generator": {"name": "tiny"}, "config": {"prompts": ["a red dog"], "seeds": [4], "truncation_psi": 0.5,
              "steps": 80, "l2_weight": 0.02, "space": "w+", "mode": "edit"}}  # fmt: skip
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "after.png", text={REPORT_KEY: json.dumps(report)})
    s = EditSession(studio, tmp_path)
    settings = s.from_png(path)
    assert settings["prompt"] == "a red dog" and settings["steps"] == 80 and settings["l2_weight"] == 0.02
    assert np.array_equal(s.source.pixels, seed_pixels(G, 4, 0.5))
    text = {
        "styleclip:target": "a happy dog",
        "styleclip:neutral": "a dog",
        "styleclip:alpha": "3.5",
        "styleclip:beta": "0.12",
        "styleclip:seed": "6",
        "styleclip:truncation_psi": "0.7",
    }  # directions apply
    settings = s.from_png(save_png(Image.new("RGB", (8, 8)), tmp_path / "dir.png", text=text))
    assert settings == {"method": "directions", "target": "a happy dog", "neutral": "a dog", "alpha": 3.5, "beta": 0.12}
    assert np.array_equal(s.source.pixels, seed_pixels(G, 6))
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    with pytest.raises(UsageError, match="no styleclip metadata"):
        s.from_png(plain)


def test_photo_source_inverts_with_progress(studio, G, tmp_path, tiny_lpips):
    photo = tmp_path / "me.png"
    Image.fromarray(seed_pixels(G, 1)).resize((48, 40)).save(photo)
    s = EditSession(studio, tmp_path)
    step = s.from_photo(photo, method="project", steps=3)
    assert step.edit["method"] == "project" and "psnr" in step.edit["metrics"]
    assert s.source.codes.ws.shape == (1, G.num_ws, G.w_dim)


def test_bad_uploads_are_refused_before_decoding(studio, tmp_path):
    limits = Limits(max_upload_mb=0.01, max_megapixels=0.001)
    s = EditSession(Studio(studio.G, studio.guide, limits=limits, allow_paths=[tmp_path]), tmp_path)
    big = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(big)  # 4096 pixels > 1000
    with pytest.raises(UsageError, match="megapixels"):
        s.from_photo(big)
    heavy = tmp_path / "heavy.jpg"
    heavy.write_bytes(b"\xff" * 20_000)
    with pytest.raises(UsageError, match="MB"):
        s.from_photo(heavy)
    text = tmp_path / "holiday.jpg"
    text.write_text("not a picture")
    with pytest.raises(UsageError, match="not an image"):
        s.from_photo(text)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.preview_direction("", "a dog", 1, 0.1), "target is empty"),
        (lambda s: s.preview_direction("x" * 10_000, "a dog", 1, 0.1), "10000 characters"),
        (lambda s: s.preview_direction("a cat", "a dog", float("nan"), 0.1), "alpha must be a finite number"),
        (lambda s: s.preview_direction("a cat", "a dog", 1, float("nan")), "beta must be a finite number"),
        (lambda s: s.optimize(OptimizeSettings("a cat", steps=float("nan"))), "steps must be a finite number"),
        (lambda s: s.optimize(OptimizeSettings("a cat", steps=2, l2_weight=None)), "λ_L2 must be a number"),
        (lambda s: s.from_seed(-1), "seed must be between"),
        (lambda s: s.restore(9), "no step 9"),
    ],
)
def test_bad_input_is_one_readable_line(session, call, message):
    with pytest.raises(UsageError, match=message):
        call(session)


def test_no_relevance_matrix_names_the_command(G, guide, tmp_path):
    studio = Studio(G, guide, "tiny.safetensors", stats_samples=200, cache=tmp_path)
    s = EditSession(studio, tmp_path)
    s.from_seed(0)
    with pytest.raises(UsageError, match=r"styleclip directions precompute --generator tiny\.safetensors"):
        s.preview_direction("a cat", "a dog", 1, 0.1)
    assert not studio.has_matrix()
    studio.compute_matrix(images=1)
    assert studio.has_matrix()
    s.preview_direction("a cat", "a dog", 1, 0.1)


def test_handlers_turn_errors_into_page_messages(studio, tmp_path):
    import gradio as gr

    from styleclip.ui.app import KEEP, Handlers, readable_errors

    h = Handlers(studio, tmp_path)
    s, _before, _after, _gallery, text, note = h.start(None, 2, 0.7)
    assert isinstance(s, EditSession) and text.startswith("Step 0 of 0") and note == ""
    with pytest.raises(gr.Error, match="not an image"):
        bad = tmp_path / "x.jpg"
        bad.write_text("no")
        readable_errors(h.photo)(s, str(bad), "project", 2)
    with pytest.raises(gr.Error, match=r"something went wrong \(RuntimeError: kaput\)"):
        readable_errors(lambda: (_ for _ in ()).throw(RuntimeError("kaput")))()
    s, _after, info, text = h.direction(s, "a happy dog", "a dog", 4, 0.1, False)
    assert "channels changed" in info and "previewing" in text
    outputs = list(h.optimize(s, "a red dog", 2, 0.008, 0, "w+", "all", "global", ""))
    assert outputs[0][3] is KEEP and outputs[-1][3].endswith(".mp4") and "completed" in outputs[-1][2]
    s, *_ = h.accept(s)
    assert len(h.downloads(s)) == 4  # png, codes, report, history (the accepted edit has no pending video)


def test_build_app_and_the_missing_extra(studio, monkeypatch):
    import gradio as gr

    from styleclip.ui import build_app
    from styleclip.ui.app import _gradio, remove_workdir

    demo = build_app(studio.G, studio.guide, stats_samples=200)
    assert isinstance(demo, gr.Blocks) and demo.styleclip_root.is_dir()
    remove_workdir(demo)
    assert not demo.styleclip_root.exists()
    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(UsageError, match=r'pip install "styleclip\[ui\]"'):
        _gradio()


def test_conditional_generators_take_a_class(guide, tmp_path):
    from styleclip.ui.app import Handlers

    G = tiny_generator(c_dim=3)
    h = Handlers(Studio(G, guide, stats_samples=200, cache=tmp_path), tmp_path)
    s, *_ = h.seed(None, 1, 0.7, 2)
    assert s.source.edit["seed"] == 1
    with pytest.raises(UsageError, match="conditional"):
        h.seed(s, 1, 0.7, None)


def test_cli_without_gradio_says_how_to_install(monkeypatch, capsys):
    from styleclip.cli.main import main

    monkeypatch.setitem(sys.modules, "gradio", None)
    assert main(["ui", "--generator", "nothing.pkl"]) == 2
    assert 'pip install "styleclip[ui]"' in capsys.readouterr().err


def test_only_loopback_addresses_count_as_private():
    from styleclip.cli.ui import _is_loopback

    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("localhost")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("192.168.1.5") and not _is_loopback("example.org")


def test_mapper_tab_previews_and_stacks_with_directions(session, G, tmp_path):
    from styleclip.hub.mappers import save_mapper
    from styleclip.nets.mapper import LatentMapper, MapperConfig
    from styleclip.stylespace import generator_fingerprint
    from styleclip.ui.app import Handlers

    torch.manual_seed(0)
    mapper = LatentMapper(MapperConfig(w_dim=G.w_dim, num_ws=G.num_ws, groups=("coarse", "medium")))
    meta = {"prompt": "a red dog", "generator": {"fingerprint": generator_fingerprint(G)}}
    path = str(save_mapper(mapper, tmp_path / "m.safetensors", meta=meta))
    source = session.source.codes.ws
    p = session.preview_mapper(path, 2.0)
    assert torch.equal(p.codes.ws.cpu(), mapper.edit(source, 2.0))  # w + s·M(w)
    assert p.edit == {"method": "mapper", "mapper": p.edit["mapper"], "prompt": "a red dog", "strength": 2.0}
    _, _, info, _ = Handlers(session.studio, tmp_path).mapper(session, path, 1.0)
    assert "a red dog" in shown(info) and "coarse rows 0-3" in shown(info)
    session.accept()
    session.preview_direction("a happy dog", "a dog", 3, 0.1)  # a direction on top of the mapper's edit
    session.accept()
    with pytest.raises(UsageError, match="mapper edits W\\+"):
        session.preview_mapper(path, 1.0)


def test_stylegan3_generators_work_in_the_ui(guide, tmp_path):
    from conftest import tiny_generator3

    studio = Studio(tiny_generator3(), guide, "tiny-sg3", stats_samples=200, cache=tmp_path)
    studio.compute_matrix(images=1)
    s = EditSession(studio, tmp_path)
    s.from_seed(1)
    zero = s.preview_direction("a happy dog", "a dog", 0, 0.05)
    assert np.array_equal(zero.pixels, s.source.pixels)
    s.preview_direction("a happy dog", "a dog", 5, 0.05)
    s.accept()
    p = s.optimize(OptimizeSettings("a red dog", steps=2, space="s"), video=False)
    assert p.edit["steps_done"] == 2 and p.codes.in_stylespace


def test_a_png_with_damaged_metadata_is_one_line(studio, tmp_path):
    from styleclip.io.images import save_png
    from styleclip.ui.session import SESSION_KEY

    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "x.png", text={SESSION_KEY: "{not json"})
    with pytest.raises(UsageError, match="metadata is damaged"):
        EditSession(studio, tmp_path).from_png(path)


# -- the Style tab: adapted generators -------------------------------------------------------------------


def adapted_copy(G, seed: int = 0):
    """``G`` with its synthesis (affines included) moved at random: an adapted generator's shape, its own styles."""
    import copy

    A = copy.deepcopy(G)
    A.meta = {"adapted": {"method": "stylegan-nada", "source": "photo", "target": f"test {seed}", "steps": 7}}
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in A.synthesis.parameters():
            p.add_(0.3 * (p.abs().mean() + 0.01) * torch.randn(p.shape, generator=g))
    return A


def test_style_tab_draws_w_and_stylespace_edits_with_the_adapted_generator(session, G, tmp_path, monkeypatch):
    import styleclip.hub.generators as generators
    from styleclip.hub.generators import save_generator

    A = adapted_copy(G)
    path = str(save_generator(A, tmp_path / "sketch.safetensors"))  # in the folder the studio allows
    ws = session.source.codes.ws
    view = session.draw_style(path)
    assert np.array_equal(view.base, session.source.pixels)
    with torch.no_grad():
        assert np.abs(view.adapted.astype(int) - to_uint8(A.synthesize(ws))[0]).max() <= 1  # W+ drawn directly
    assert "photo → test 0, 7 steps" in view.info and np.abs(view.adapted.astype(int) - view.base).max() > 10
    assert "records no base generator" in view.info

    def boom(*args, **kwargs):
        raise AssertionError("loaded the adapted generator again")

    monkeypatch.setattr(generators, "load_generator", boom)
    preview = session.preview_direction("a happy dog", "a dog", 5, 0.1)  # a StyleSpace edit: its Δs transfers
    followed = session.follow_style()
    with torch.no_grad():
        base_styles, own = G.styles(ws), A.styles(ws)
        moved = {k: own[k] + (preview.codes.styles[k] - base_styles[k]) for k in own}
        expected = to_uint8(A.synthesis_from_styles(moved))[0]
        unedited = to_uint8(A.synthesize(ws))[0]
        foreign = to_uint8(A.synthesis_from_styles(preview.codes.styles))[0]  # the base's styles, not transferred
    assert np.array_equal(followed.base, preview.pixels)
    assert np.abs(followed.adapted.astype(int) - expected).max() <= 1
    assert np.abs(followed.adapted.astype(int) - unedited).max() > 10  # the edit shows in the style
    assert np.abs(followed.adapted.astype(int) - foreign).max() > 10
    session.accept()
    assert np.array_equal(session.follow_style().adapted, followed.adapted)  # accepted: the same picture

    other = adapted_copy(G, 1)
    other.meta["adapted"]["base"] = {"fingerprint": "0123456789abcdef", "name": "ffhq", "source": None}
    monkeypatch.undo()
    info = session.draw_style(str(save_generator(other, tmp_path / "other.safetensors"))).info
    assert "adapted from ffhq (weights 0123456789abcdef), not from this base" in info  # drawn, with a warning


def test_style_tab_keeps_a_few_adapted_generators_loaded(session, G, tmp_path, monkeypatch):
    import styleclip.hub.generators as generators
    from styleclip.hub.generators import save_generator
    from styleclip.ui.session import MAX_STYLES

    paths = [str(save_generator(adapted_copy(G, i), tmp_path / f"a{i}.safetensors")) for i in range(MAX_STYLES + 1)]
    loads = []
    load = generators.load_generator
    monkeypatch.setattr(generators, "load_generator", lambda p, **k: loads.append(p) or load(p, **k))
    for path in [*paths, paths[-1], paths[1]]:
        session.draw_style(path)
        assert len(session._adapted) <= MAX_STYLES
    assert len(loads) == MAX_STYLES + 1  # the repeat was cached, and a[1] still was (the least recent, a[0], went)
    session.draw_style(paths[0])
    assert len(loads) == MAX_STYLES + 2
    session.close()
    assert not session._adapted


def test_style_picker_lists_the_catalogues_adapted_generators(session):
    from styleclip.hub.registry import all_assets

    published = sorted(a.name for a in all_assets() if a.name.startswith("nada:"))
    assert session.style_choices() == published
    for name in published[:1]:  # a catalogue name, with or without its family, is a generator asset
        short = name.split(":", 1)[1]
        assert session._style_source(short)[:2] == (f"asset:{name}", name)


def test_a_style_trained_in_the_page_streams_samples_and_joins_the_picker(session, studio, G, monkeypatch):
    import styleclip.hub.generators as generators
    from styleclip.ui.app import KEEP, Handlers

    h = Handlers(studio, session.folder.parent)
    outputs = list(h.adapt(session, "photo", "a pencil sketch", 2, "nada"))
    assert [o[1] for o in outputs[:-1]] == ["step 1 of 2", "step 2 of 2"]
    assert all(o[2].ndim == 3 and o[2].shape[2] == 3 for o in outputs[:-1])  # a sample grid after every step
    assert all(o[3] is KEEP and o[4] is KEEP for o in outputs[:-1])
    s, status, _samples, picker, path = outputs[-1]
    assert picker["value"] == "trained:a-pencil-sketch" and picker["choices"][-1] == picker["value"]
    assert "done after 2 steps" in shown(status) and path.endswith("generator.safetensors")
    assert str(session.folder) in path and not list((session.folder / "styles").glob("*/checkpoints/*"))  # no resume
    adapted = generators.load_generator(path, device="cpu")
    assert adapted.meta["adapted"]["target"] == "a pencil sketch" and adapted.meta["adapted"]["steps"] == 2

    monkeypatch.setattr(generators, "load_generator", lambda *a, **k: pytest.fail("reloaded what it trained"))
    s, base, drawn, info = h.style(s, picker["value"])
    assert np.array_equal(base, session.current.pixels) and "photo → a pencil sketch" in shown(info)
    assert "note" not in shown(info)  # it records this server's generator as its base
    with torch.no_grad():
        expected = to_uint8(adapted.synthesize(session.source.codes.ws))[0]
    assert np.abs(drawn.astype(int) - expected).max() <= 1
    assert np.abs(drawn.astype(int) - base).max() > 0  # two steps moved it
    assert h.style(s, "")[1:] == (None, None, "") and h.follow_style(s)[1] is KEEP  # cleared: nothing follows


def test_a_cancelled_adaptation_keeps_the_steps_done(session):
    def cancel_at_step_1(step, steps, grid):
        if step == 1:
            session.request_cancel()

    run = session.adapt_style("photo", "sketch", 50, "nada", on_step=cancel_at_step_1, progress=False)
    assert run.stopped == "interrupted" and run.steps_done == 1 and run.path.is_file()
    assert run.name in session.style_choices()


# -- a photo inverted with HyperStyle: its own weights draw it and every step derived from it ------------------


@pytest.fixture(scope="module")
def hyper(guide, tmp_path_factory):
    """A 128-px server generator whose catalogue inversion is HyperStyle: ``hyperstyle:ffhq`` and its W encoder
    answer (offline) with tiny files in the published layout, as a fresh server's cache would after a download."""
    import dataclasses

    from styleclip.guidance import perceptual
    from styleclip.hub import registry
    from styleclip.io.images import to_pil

    from conftest import tiny_lpips_model
    from hyperstyle_writers import hyperstyle_generator, write_hyperstyle, write_w_encoder

    home = tmp_path_factory.mktemp("hyper-home")
    G = hyperstyle_generator(128)
    G.meta["defaults"] = {"inversions": {"hyperstyle": "hyperstyle:ffhq"}}
    names = ("hyperstyle:ffhq", "hyperstyle-w:ffhq")
    assets = [dataclasses.replace(a, sha256=None, git_blob=None, size=None, urls=()) if a.name in names else a
              for a in registry.all_assets()]  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "ASSETS", assets)
        mp.setenv("STYLECLIP_HOME", str(home))
        mp.setenv("STYLECLIP_OFFLINE", "1")
        mp.setattr(perceptual, "load_lpips", tiny_lpips_model)
        for name, write in zip(names, (write_hyperstyle, write_w_encoder), strict=True):
            path = registry.asset_path(registry.find_asset(name))
            path.parent.mkdir(parents=True, exist_ok=True)
            write(G, path)
        studio = Studio(G, guide, "tiny-128", stats_samples=200, cache=home,
                        allow_paths=[tmp_path_factory.getbasetemp()])  # fmt: skip
        studio.compute_matrix(images=1)
        with torch.no_grad():
            picture = G.synthesize(G.mapping_forward(G.z_from_seed(11), truncation_psi=0.6))
        photo = home / "me.png"
        to_pil(picture)[0].resize((150, 150), Image.Resampling.BICUBIC).save(photo)
        yield studio, photo


def hyper_reference(studio, photo, steps=2):
    """The same photo inverted by ``styleclip.invert`` itself: its offset generator draws what the page should."""
    import styleclip

    return styleclip.invert(photo, studio.G, method="hyperstyle", steps=steps, align="center", progress=False)


def close_to(pixels, expected, tolerance=1):
    return np.abs(pixels.astype(int) - expected.astype(int)).max() <= tolerance


def test_a_hyperstyle_photo_and_every_edit_of_it_are_drawn_with_its_offsets(hyper, tmp_path, monkeypatch):
    import copy
    import gc
    import weakref

    import styleclip.inversion.hyperstyle as hyperstyle
    from styleclip.inversion.hyperstyle import load_offsets

    studio, photo = hyper
    G = studio.G
    s = EditSession(studio, tmp_path)
    step = s.from_photo(photo, method="auto", steps=2, align="center")
    assert step.edit["method"] == "hyperstyle" and step.edit["offsets"] > 0
    why = step.edit["why"]
    assert why.startswith("auto: the most faithful inversion the catalogue knows") and "hyperstyle:ffhq" in why
    inv = hyper_reference(studio, photo)
    own = s.drawer
    assert own is not G and s.weights.generator is own
    with torch.no_grad():
        assert close_to(step.pixels, to_uint8(inv.generator.synthesize(inv.ws))[0])
        assert not close_to(step.pixels, to_uint8(G.synthesize(inv.ws))[0], 10)  # the offsets show

    # slider moves, sweeps and mapper-free previews: drawn by the photo's weights, and no generator is copied
    def no_copy(*args, **kwargs):
        raise AssertionError("copied a generator on a slider move")

    monkeypatch.setattr(hyperstyle, "_fresh_copy", no_copy)
    monkeypatch.setattr(copy, "deepcopy", no_copy)
    p = s.preview_direction("a happy dog", "a dog", 5, 0.1)
    assert p.weights is s.weights
    with torch.no_grad():
        assert close_to(p.pixels, to_uint8(p.codes.image(inv.generator))[0])
        assert not close_to(p.pixels, to_uint8(p.codes.image(G))[0], 10)
    strip = np.asarray(s.sweep("a happy dog", "a dog", 5, 0.1, count=3))
    assert strip.shape[1] >= 3 * G.img_resolution
    monkeypatch.undo()
    s.accept()
    assert s.source.weights is s.weights and s.drawer is own  # an accepted edit keeps the photo's weights
    q = s.optimize(OptimizeSettings("a red dog", steps=2, space="s"), video=False, progress=False)
    with torch.no_grad():
        assert close_to(q.pixels, to_uint8(q.codes.image(inv.generator))[0], 2)
        assert not close_to(q.pixels, to_uint8(q.codes.image(G))[0], 10)
    s.accept()
    assert s.undo().weights is s.weights and s.drawer is own

    # the downloads carry the offsets the PNG cannot: they reload for the CLI (styleclip edit --offsets)
    files = s.downloads()
    assert files[-1].name == "offsets.safetensors" and s.downloads()[-1] == files[-1]  # written once per photo
    saved = load_offsets(files[-1], G)
    assert set(saved) == set(inv.offsets)
    torch.testing.assert_close(saved[next(iter(saved))], s.weights.offsets[next(iter(saved))])
    report = json.loads(files[2].read_text())
    assert report["generator"]["photo_weights"]["method"] == "hyperstyle"

    # a new source goes back to the shared generator, and the photo's weights are let go
    gone = weakref.ref(own)
    del own, step, p, q
    s.from_seed(4)
    assert s.weights is None and s.drawer is G
    assert np.array_equal(s.source.pixels, seed_pixels(G, 4))
    with torch.no_grad():
        assert close_to(s.preview_direction("a happy dog", "a dog", 5, 0.1).pixels,
                        to_uint8(s.preview.codes.image(G))[0])  # fmt: skip
    gc.collect()
    assert gone() is None
    s.close()


def test_the_style_tab_draws_a_hyperstyle_photo_with_its_offsets_from_128_px(hyper, tmp_path, monkeypatch):
    import styleclip.inversion.hyperstyle as hyperstyle
    from styleclip.hub.generators import save_generator
    from styleclip.sources import apply_offsets

    studio, photo = hyper
    G = studio.G
    s = EditSession(studio, tmp_path)
    s.from_photo(photo, method="hyperstyle", steps=1, align="center")
    A = adapted_copy(G, 3)
    view = s.draw_style(str(save_generator(A, tmp_path / "style.safetensors")))
    ws = s.source.codes.ws
    with torch.no_grad():
        expected = to_uint8(apply_offsets(A, s.weights.offsets, adapted=True).synthesize(ws))[0]
        plain_style = to_uint8(A.synthesize(ws))[0]
    assert close_to(view.adapted, expected) and not close_to(view.adapted, plain_style, 0)
    assert "HyperStyle offsets from 128 px up" in view.info and np.array_equal(view.base, s.source.pixels)

    def no_copy(*args, **kwargs):
        raise AssertionError("copied a generator on a slider move")

    monkeypatch.setattr(hyperstyle, "_fresh_copy", no_copy)  # the style's offset copy is made once per photo
    preview = s.preview_direction("a happy dog", "a dog", 5, 0.1)
    followed = s.follow_style()
    assert np.array_equal(followed.base, preview.pixels) and not np.array_equal(followed.adapted, view.adapted)
    monkeypatch.undo()
    s.from_seed(2)  # a seed: the adapted generator alone, and the photo's style copy is dropped
    assert s._styled is None
    with torch.no_grad():
        assert close_to(s.follow_style().adapted, to_uint8(A.synthesize(s.source.codes.ws))[0])
    s.close()


def test_a_restored_hyperstyle_session_says_its_offsets_are_lost(hyper, tmp_path):
    from styleclip.ui.app import Handlers
    from styleclip.ui.session import NO_OFFSETS

    studio, photo = hyper
    h = Handlers(studio, tmp_path)
    s, *_view, info = h.photo(None, str(photo), "auto", 1)
    text = shown(info)
    assert text.startswith("Inverted with hyperstyle (auto: the most faithful inversion the catalogue knows")
    assert "psnr" in text and "weight offsets" in text
    assert "drawn with the photo's own hyperstyle weights" in shown(h.view(s)[3])
    s.preview_direction("a happy dog", "a dog", 4, 0.1)
    png = s.downloads()[0]
    other, *view, _t, _n, _a, _b, _p = h.png(None, png, "t", "n", 1, 0.1, "p")
    assert other.notice == NO_OFFSETS and "a PNG does not carry them" in shown(view[3])
    assert other.weights is None  # drawn by the shared generator, as the note says
    with torch.no_grad():
        assert close_to(other.source.pixels, to_uint8(other.source.codes.image(studio.G))[0])
    assert json.loads(other.export_report().read_text())["note"] == NO_OFFSETS
    other.from_seed(1)
    assert other.notice == "" and "note" not in h.view(other)[3]


def test_the_photo_tab_offers_the_clis_inversions(hyper, studio):
    from styleclip.inversion.invert import METHODS
    from styleclip.ui import build_app
    from styleclip.ui.app import PHOTO_METHODS, remove_workdir

    assert list(METHODS) == PHOTO_METHODS and "hyperstyle" in PHOTO_METHODS
    demo = build_app(hyper[0].G, hyper[0].guide, stats_samples=200)
    try:
        [radio] = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "method"]
        assert [c[1] for c in radio.choices] == list(METHODS)
        assert radio.label == "inversion (this generator: hyperstyle:ffhq)"
    finally:
        remove_workdir(demo)
    s = EditSession(studio, studio.cache)
    with pytest.raises(UsageError, match="knows no HyperStyle model for this server's generator"):
        s.from_photo(hyper[1], method="hyperstyle")
    with pytest.raises(UsageError, match="pivotal tuning"):
        s.from_photo(hyper[1], method="project", pti=True)
    s.close()


# -- the Video tab: a short synthetic clip, the tiny generator and an e4e encoder written for it ------------------

TINY_IRSE_W16 = [(16, 16, 1), (16, 24, 1), (24, 32, 1), (32, 16, 1)]  # 16-wide codes: the UI generator's W


def tiny_video_encoder(G, path):
    """An e4e checkpoint (official layout, random weights) for ``G``: the encoder a server's catalogue would pair."""
    from styleclip.nets.encoders import IRSEEncoder

    from test_encoders import write_checkpoint

    return write_checkpoint(path, IRSEEncoder(G.num_ws, 3, True, TINY_IRSE_W16, stem=16), G)


def short_clip(path, frames: int = 6, audio: bool = False):
    """The tests' synthetic clip (a photo panned and zoomed as a camera would), cut to ``frames`` frames (silent:
    the sound kept is test_video.py's subject)."""
    from test_video import synthetic_frames, write_clip

    return write_clip(path, synthetic_frames()[:frames], audio=audio)


@pytest.fixture(scope="module")
def clip_world(G, tmp_path_factory):
    folder = tmp_path_factory.mktemp("video-tab")
    return {"clip": short_clip(folder / "clip.mp4"), "encoder": str(tiny_video_encoder(G, folder / "e4e.pt"))}


def direction_args(alpha=4.0):
    """The Video tab's inputs: the Global directions tab's edit, e4e, the frame's centre square."""
    return ("direction", "a happy dog", "a dog", alpha, 0.1, False, "", 0.1, "e4e", "auto")


def test_the_video_tab_previews_three_frames_then_only_draws(session, clip_world, tmp_path, monkeypatch):
    from styleclip.inversion import encoders
    from styleclip.ui.app import Handlers

    h = Handlers(session.studio, tmp_path)
    s, info, cleared = h.video_upload(session, str(clip_world["clip"]))
    assert "6 frames" in shown(info) and "320x240" in shown(info) and "no sound" in shown(info) and cleared is None
    s, grid, info = h.video_preview(s, *direction_args(), encoder=clip_world["encoder"])
    assert "frames 0, 3, 5" in shown(info) and "e4e" in shown(info)
    side = session.G.img_resolution
    assert grid.dtype == np.uint8 and grid.shape[0] > 2 * side and grid.shape[1] >= 3 * side
    top, bottom = grid[-2 * side - 4 : -side - 4], grid[-side:]  # the crops' row above the edits' row
    assert np.abs(top.astype(int) - bottom).mean() > 3  # the edit shows
    # the frames are aligned and inverted once: another α is one synthesis per frame, no encoder pass
    monkeypatch.setattr(encoders, "encode", lambda *a, **k: pytest.fail("re-inverted on a slider move"))
    _, again, _ = h.video_preview(s, *direction_args(-4.0), encoder=clip_world["encoder"])
    assert again.shape == grid.shape and not np.array_equal(again, grid)
    _, zero, _ = h.video_preview(s, *direction_args(0.0), encoder=clip_world["encoder"])
    assert not np.array_equal(zero[-side:], grid[-side:])  # α 0 draws the frames' codes unedited


def test_the_video_tab_renders_streams_progress_and_downloads(session, clip_world, tmp_path):
    from styleclip.ui.app import KEEP, Handlers
    from styleclip.video.frames import probe

    h = Handlers(session.studio, tmp_path)
    h.video_upload(session, str(clip_world["clip"]))
    outputs = list(h.video_render(session, *direction_args(), encoder=clip_world["encoder"]))
    statuses = [shown(o[1]) for o in outputs[:-1]]
    assert any(t.startswith("inverting:") for t in statuses) and any(
        t.startswith("stitching: 6 of 6") for t in statuses
    )
    assert all(o[2] is KEEP and o[3] is KEEP for o in outputs[:-1])
    _, status, edited, files = outputs[-1]
    assert "6 frames edited" in shown(status) and "frame-to-frame change" in shown(status)
    assert [p.split("/")[-1] for p in files] == ["edited.mp4", "comparison.mp4", "report.json"]
    assert all(p.startswith(str(session.folder)) for p in files)  # inside the session's folder, removed with it
    info = probe(edited)
    assert (info.frames, info.size, info.fps) == (6, (320, 240), 12.0)
    with open(files[2]) as f:
        report = json.load(f)
    assert report["inversion"]["method"] == "e4e" and report["alignment"]["mode"] == "center"
    assert len(report["metrics"]["clip_score"]["per_frame"]) == 6  # scored against the target text
    # the same render again: the finished files, nothing recomputed
    assert list(h.video_render(session, *direction_args(), encoder=clip_world["encoder"]))[-1][3] == files


def test_a_cancelled_render_resumes_and_another_edit_reuses_the_inverted_frames(session, clip_world, tmp_path):
    from styleclip.video.frames import probe

    session.load_video(clip_world["clip"])
    inversion = session.studio.video_inversion("e4e", clip_world["encoder"])
    first, _, prompt = session.video_edit("direction", "a happy dog", "a dog", 4, 0.1)
    done = session.render_video(first, prompt, inversion)
    assert not done.stopped and probe(done.edited).frames == 6
    stages = []

    def cancel_while_editing(stage, n, total):
        stages.append(stage)
        if stage == "edit" and n == 2:
            session.request_cancel()

    second = session.video_edit("direction", "a happy dog", "a dog", -4, 0.1)[0]
    stopped = session.render_video(second, prompt, inversion, on_progress=cancel_while_editing)
    assert stopped.stopped and stopped.files == [] and not done.folder.exists()  # the earlier render's files went
    assert set(stages) == {"edit"}  # the frames found, aligned and inverted for the first edit were reused
    stages.clear()
    resumed = session.render_video(
        second, prompt, inversion, on_progress=lambda stage, n, total: stages.append((stage, total))
    )
    assert not resumed.stopped and resumed.folder == stopped.folder and probe(resumed.edited).frames == 6
    assert {stage for stage, _ in stages} == {"edit", "stitch"} and ("edit", 4) in stages  # from the third frame


def test_the_video_tab_takes_a_mapper(session, clip_world, G, tmp_path):
    from styleclip.hub.mappers import save_mapper
    from styleclip.nets.mapper import LatentMapper, MapperConfig
    from styleclip.stylespace import generator_fingerprint
    from styleclip.ui.app import Handlers

    torch.manual_seed(0)
    mapper = LatentMapper(MapperConfig(w_dim=G.w_dim, num_ws=G.num_ws, groups=("coarse", "medium")))
    meta = {"prompt": "a red dog", "generator": {"fingerprint": generator_fingerprint(G)}}
    path = str(save_mapper(mapper, tmp_path / "m.safetensors", meta=meta))
    h = Handlers(session.studio, tmp_path)
    h.video_upload(session, str(clip_world["clip"]))
    args = ("mapper", "", "", 0, 0.1, False, path, 2.0, "auto", "center")
    _, grid, info = h.video_preview(session, *args, encoder=clip_world["encoder"])
    assert "mapper a red dog (strength 2)" in shown(info) and grid.ndim == 3


def test_the_video_tab_needs_a_clip_first(session, tmp_path):
    from styleclip.ui.app import Handlers, readable_errors

    with pytest.raises(gr_error(), match="upload a video clip"):
        readable_errors(Handlers(session.studio, tmp_path).video_preview)(session, *direction_args())


def gr_error():
    import gradio as gr

    return gr.Error
