"""Adapted generators (StyleGAN-NADA): the published models in the catalogue, and ``--adapted`` on every command that
draws an edit: the base maps seeds and inverts photos, the adapted network draws."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import styleclip
from styleclip import sources
from styleclip.adapted import compose, load_adapted, load_pair
from styleclip.cli.main import main
from styleclip.errors import UsageError
from styleclip.hub import catalog, registry
from styleclip.hub.catalog import ASSETS, NVIDIA_NC_DERIVED
from styleclip.io.images import to_uint8
from styleclip.stylespace import generator_fingerprint

from checkpoint_writers import rosinality_state_dict
from conftest import tiny_generator, varied_generator
from hostile import refused, refused_by
from test_registry import Files, serve

NADA = (
    "pixar",
    "ukiyoe",
    "edvard_munch",
    "botero",
    "joker",
    "anime",
    "modigliani",
    "disney_princess",
    "vintage_comics",
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest.one_thread


def adapted_from(base, seed: int = 7, scale: float = 0.3, w_avg_shift: float = 0.0):
    """``base`` with its synthesis weights perturbed (what NADA trains) and, for tests that must tell whose mapping
    mapped a seed, its truncation centre moved; the record a trained run's generator carries."""
    A = copy.deepcopy(base)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in A.synthesis.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
        A.mapping.w_avg.add_(w_avg_shift)
    A.meta = {
        "adapted": {
            "method": "stylegan-nada",
            "source": "photo",
            "target": "sketch",
            "steps": 3,
            "base": {"fingerprint": generator_fingerprint(base), "name": None, "source": "base.safetensors"},
            "training": {"lr": 0.002},
        }
    }
    return A


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def drawn(G, ws) -> np.ndarray:
    with torch.no_grad():
        return to_uint8(G.synthesize(ws))[0].astype(int)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A base (whose styles vary, for directions) and an adapted copy, saved as files."""
    folder = tmp_path_factory.mktemp("adapted")
    base = varied_generator()
    A = adapted_from(base, w_avg_shift=0.5)
    base_file = styleclip.save_generator(base, folder / "base.safetensors")
    adapted_file = styleclip.save_generator(A, folder / "generator.safetensors")
    return base, A, base_file, adapted_file


def base_ws(base, seeds, trunc):
    with torch.no_grad():
        return base.mapping_forward(base.z_from_seed(seeds), truncation_psi=trunc)


# -- composition -------------------------------------------------------------------------------------------------


def test_composed_generator_maps_with_the_base_and_draws_with_the_adapted(pair):
    base, A, _, _ = pair
    G = load_adapted(A, base)
    ws = base_ws(base, [0, 1], 0.7)
    with torch.no_grad():
        assert torch.equal(G.mapping_forward(base.z_from_seed([0, 1]), truncation_psi=0.7), ws)
        assert torch.equal(G.synthesize(ws), A.synthesize(ws))
        assert not torch.allclose(G.synthesize(ws), base.synthesize(ws), atol=1e-3)
        styles = G.styles(ws)
        assert all(torch.equal(styles[k], v) for k, v in A.styles(ws).items())  # the adapted affines' S codes
    assert G.mapping is base.mapping and A.mapping is not base.mapping  # A itself untouched
    assert G.meta["adapted"]["target"] == "sketch" and G.meta["adapted_note"] is None
    assert compose(G, base) is G


def test_api_sources_take_an_adapted_generator(pair):
    base, A, _, adapted_file = pair
    src = sources.from_seeds(base, [3], 0.5, adapted=adapted_file)
    assert torch.equal(src.ws, base_ws(base, [3], 0.5))
    assert np.array_equal(drawn(src.generator, src.ws), drawn(A, src.ws))
    assert sources.from_seeds(base, [3], 0.5).generator is base
    with pytest.raises(UsageError, match="--pti tunes the base generator"):
        sources.from_photo(base, "no-photo-needed.png", adapted=A, pti=True)


def test_a_base_mismatch_is_a_note_not_an_error(pair):
    base, A, _, _ = pair
    other = tiny_generator(seed=4)
    G = compose(A, other, "sketch-run")
    assert "was adapted from base.safetensors" in G.meta["adapted_note"]
    bare = copy.deepcopy(A)
    bare.meta = {}
    assert "records no base" in compose(bare, base).meta["adapted_note"]


# -- the catalogue -----------------------------------------------------------------------------------------------


def test_the_published_nada_models_are_listed_with_their_base(capsys):
    entries = {a.name: a for a in ASSETS if a.name.startswith("nada:")}
    assert set(entries) == {f"nada:{n}" for n in NADA}
    for key in NADA:
        a = entries[f"nada:{key}"]
        assert a.urls == (f"https://huggingface.co/rinong/stylegan-nada-models/resolve/main/{key}.pt",)
        assert (a.file_format, a.kind, a.domain, a.resolution, a.sha256) == ("rosinality", "generator", "face", 1024,
                                                                              None)  # fmt: skip
        assert a.licence == NVIDIA_NC_DERIVED and a.defaults["base"] == "rosinality:ffhq"
        assert registry.find_asset(a.defaults["base"]) is not None
    assert main(["models", "list", "--kind", "generator"]) == 0
    out = capsys.readouterr().out
    assert all(f"nada:{key} " in out for key in NADA)


def nada_checkpoint(G, path: Path, g_optim: object = "adam") -> Path:
    """NADA's train.py layout: ``{'g_ema': rosinality state dict, 'g_optim': Adam's state dict}`` (no latent_avg)."""
    ckpt: dict = {"g_ema": rosinality_state_dict(G)}
    if g_optim == "adam":
        params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(4))]
        opt = torch.optim.Adam(params, lr=0.002 * 0.8, betas=(0.0, 0.99**0.8))
        sum(p.square().sum() for p in params).backward()
        opt.step()
        ckpt["g_optim"] = opt.state_dict()
    elif g_optim is not None:
        ckpt["g_optim"] = g_optim
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def server():
    yield from serve()


@pytest.fixture
def nada_assets(server, monkeypatch, tmp_path):
    """The real nada: entries, their URLs pointed at the loopback server, a tiny base as rosinality:ffhq."""
    base = varied_generator()
    A = adapted_from(base, seed=11)
    base_file = tmp_path / "ffhq.pt"
    ckpt = {"g_ema": rosinality_state_dict(base), "latent_avg": base.mapping.w_avg.clone()}
    torch.save(ckpt, base_file)
    nada_file = nada_checkpoint(A, tmp_path / "pixar.pt")
    Files.files = {"/rosinality/ffhq.pt": base_file.read_bytes(), "/nada/pixar.pt": nada_file.read_bytes()}
    Files.hits.clear()
    patched = []
    for a in ASSETS:
        if a.name == "rosinality:ffhq":
            a = dataclasses.replace(a, urls=(f"{server}/rosinality/ffhq.pt",))
        elif a.name.startswith("nada:"):
            a = dataclasses.replace(a, urls=(f"{server}/nada/{a.name[5:]}.pt",))
        patched.append(a)
    monkeypatch.setattr(catalog, "ASSETS", patched)
    monkeypatch.setattr(registry, "ASSETS", patched)
    monkeypatch.setenv("STYLECLIP_HOME", str(tmp_path / "cache"))
    return base, A


def test_a_nada_file_with_its_optimiser_state_downloads_loads_and_records_its_base(nada_assets, monkeypatch):
    base, A = nada_assets
    G = styleclip.load_generator("nada:pixar", device="cpu")
    assert Files.hits == ["/nada/pixar.pt"]
    assert G.meta["format"] == "rosinality" and G.meta["asset"] == "nada:pixar"
    record = G.meta["adapted"]
    assert record["method"] == "stylegan-nada" and record["target"] == "Pixar character"
    assert record["base"] == {"fingerprint": None, "name": "rosinality:ffhq", "source": None}
    ws = base_ws(base, [0], 0.7)
    assert torch.allclose(G.synthesize(ws), A.synthesize(ws), atol=1e-5)
    base2, name, D = load_pair(None, "nada:pixar", device="cpu")
    assert name == "rosinality:ffhq" and Files.hits == ["/nada/pixar.pt", "/rosinality/ffhq.pt"]
    monkeypatch.setenv("STYLECLIP_OFFLINE", "1")  # the verified cache from now on
    assert load_pair(None, "nada:pixar", device="cpu")[1] == "rosinality:ffhq" and len(Files.hits) == 2
    assert D.meta["adapted_note"] is None  # recorded by catalogue name, and this base is that name
    assert torch.allclose(D.synthesize(ws), A.synthesize(ws), atol=1e-5)
    assert torch.equal(D.mapping_forward(base.z_from_seed(0)), base2.mapping_forward(base.z_from_seed(0)))


def test_generate_with_a_published_model_names_its_base_itself(nada_assets, tmp_path, monkeypatch):
    base, A = nada_assets
    assert main(["generate", "--adapted", "nada:pixar", "--seeds", "2", "--trunc", "0.7", "--device", "cpu",
                 "--outdir", str(tmp_path / "out")]) == 0  # fmt: skip
    ws = base_ws(base, [2], 0.7)
    assert np.abs(pixels(tmp_path / "out" / "seed0002.png") - drawn(A, ws)).max() <= 1
    text = Image.open(tmp_path / "out" / "seed0002.png").text
    assert json.loads(text["styleclip:adapted"])["name"] == "nada:pixar"
    assert np.allclose(np.load(tmp_path / "out" / "seed0002.npy"), ws.numpy(), atol=1e-6)


# -- the commands ------------------------------------------------------------------------------------------------


def test_generate_draws_the_base_codes_with_the_adapted_generator(pair, tmp_path):
    base, A, base_file, adapted_file = pair
    common = ["generate", "--generator", str(base_file), "--seeds", "0-1", "--trunc", "0.7", "--device", "cpu"]
    assert main([*common, "--adapted", str(adapted_file), "--outdir", str(tmp_path / "a")]) == 0
    assert main([*common, "--outdir", str(tmp_path / "b")]) == 0
    for seed in (0, 1):
        ws = base_ws(base, [seed], 0.7)  # the base's truncation centre, not the adapted file's moved one
        got = pixels(tmp_path / "a" / f"seed{seed:04d}.png")
        assert np.abs(got - drawn(A, ws)).max() <= 1
        assert np.abs(got - pixels(tmp_path / "b" / f"seed{seed:04d}.png")).max() > 10


def test_edit_optimises_the_base_codes_judged_on_the_adapted_pictures(pair, tmp_path, tiny_clip_file, capsys):
    base, A, base_file, adapted_file = pair
    out = tmp_path / "edit"
    argv = ["edit", "--generator", str(base_file), "--adapted", str(adapted_file), "--clip", str(tiny_clip_file),
            "--prompt", "a sketch of a face", "--seed", "5", "--steps", "3", "--no-video", "--device", "cpu"]  # fmt: skip
    assert main([*argv, "--outdir", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["generator"]["name"] == str(base_file)
    assert report["adapted"]["name"] == str(adapted_file) and report["adapted"]["target"] == "sketch"
    assert report["adapted"]["source"] == "photo" and report["adapted"]["file"] == str(adapted_file)
    assert "training" not in report["adapted"]
    ws0 = base_ws(base, [5], 0.7)
    assert np.abs(pixels(out / "before.png") - drawn(A, ws0)).max() <= 1
    latent = torch.from_numpy(np.load(out / "latent.npy"))
    assert np.abs(pixels(out / "after.png") - drawn(A, latent)).max() <= 1
    assert np.abs(pixels(out / "before.png") - drawn(base, ws0)).max() > 10
    png = json.loads(Image.open(out / "after.png").text["styleclip:report"])
    assert png["adapted"]["name"] == str(adapted_file)

    # the report repeats the adapted generator; a path it names is opened only when trusted
    capsys.readouterr()
    again = ["edit", "--from-report", str(out / "report.json"), "--generator", str(base_file), "--clip",
             str(tiny_clip_file), "--steps", "1",
             "--no-video", "--device", "cpu"]  # fmt: skip
    refused([*again, "--outdir", str(tmp_path / "again")], capsys, match="adapted generator.*--adapted")
    assert main([*again, "--trust-report", "--outdir", str(tmp_path / "again")]) == 0
    repeated = json.loads((tmp_path / "again" / "report.json").read_text())
    assert repeated["adapted"]["name"] == str(adapted_file)
    assert np.abs(pixels(tmp_path / "again" / "before.png") - drawn(A, ws0)).max() <= 1


def test_a_photo_is_inverted_with_the_base_and_edited_in_the_adapted_style(pair, tmp_path, tiny_clip_file):
    base, A, base_file, adapted_file = pair
    photo = tmp_path / "me.png"
    Image.fromarray(drawn(base, base_ws(base, [9], 0.7)).astype(np.uint8)).save(photo)
    out = tmp_path / "edit"
    assert main(["edit", "--generator", str(base_file), "--adapted", str(adapted_file), "--image", str(photo),
                 "--method", "project", "--invert-steps", "3", "--lpips", "off", "--align", "none",
                 "--clip", str(tiny_clip_file), "--prompt", "a sketch", "--steps", "2", "--no-video",
                 "--device", "cpu", "--outdir", str(out)]) == 0  # fmt: skip
    inverted = torch.from_numpy(np.load(out / "inversion" / "latent.npy"))
    # the inversion reconstructs the photo with the base; the edit starts from that code, drawn by the adapted one
    assert json.loads((out / "inversion" / "report.json").read_text())["generator"] == str(base_file)
    assert np.abs(pixels(out / "inversion" / "reconstruction.png") - drawn(base, inverted)).max() <= 1
    assert np.abs(pixels(out / "before.png") - drawn(A, inverted)).max() <= 1
    report = json.loads((out / "report.json").read_text())
    assert report["adapted"]["name"] == str(adapted_file) and report["generator"]["name"] == str(base_file)


def test_stylegan3_generators_compose_too():
    from conftest import tiny_generator3

    base = tiny_generator3(seed=1)
    A = adapted_from(base, seed=3, w_avg_shift=0.5)
    G = styleclip.load_adapted(A, base)
    ws = base_ws(base, [0], 0.7)
    assert torch.equal(G.mapping_forward(base.z_from_seed(0), truncation_psi=0.7), ws)
    assert np.array_equal(drawn(G, ws), drawn(A, ws)) and not np.array_equal(drawn(G, ws), drawn(base, ws))


def test_directions_apply_moves_the_adapted_style_codes_by_the_base_delta(pair, tmp_path, tiny_clip_file):
    base, A, base_file, adapted_file = pair
    cache = tmp_path / "cache"
    common = ["--generator", str(base_file), "--clip", str(tiny_clip_file), "--device", "cpu", "--samples", "200",
              "--cache", str(cache)]  # fmt: skip
    assert main(["directions", "precompute", *common, "--method", "gradient", "--images", "2"]) == 0
    out = tmp_path / "dir"
    assert main(["directions", "apply", *common, "--adapted", str(adapted_file), "--neutral", "a face",
                 "--target", "a smiling face", "--alpha", "3", "--beta", "0.01", "--seeds", "4", "--no-video",
                 "--sweep-count", "3", "--outdir", str(out)]) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["adapted"]["name"] == str(adapted_file) and report["generator"]["name"] == str(base_file)
    assert report["channels_changed"] > 0
    ws = base_ws(base, [4], 0.7)
    with np.load(out / "delta.npz") as d:
        delta = {k: torch.from_numpy(d[k]) for k in d.files}
    with torch.no_grad():
        styles = A.styles(ws)
        moved = {k: s + 3 * delta[k] if k in delta else s for k, s in styles.items()}
        expected = to_uint8(A.synthesis_from_styles(moved))[0].astype(int)
    assert np.abs(pixels(out / "before.png") - drawn(A, ws)).max() <= 1
    assert np.abs(pixels(out / "after.png") - expected).max() <= 1


def test_mapper_apply_draws_the_mapped_codes_with_the_adapted_generator(pair, tmp_path, tiny_clip_file):
    from styleclip.hub.mappers import save_mapper
    from styleclip.nets.mapper import LatentMapper, MapperConfig

    base, A, base_file, adapted_file = pair
    torch.manual_seed(1)
    mapper = LatentMapper(MapperConfig(w_dim=base.w_dim, num_ws=base.num_ws, groups=("coarse", "medium")))
    mapper_file = save_mapper(mapper, tmp_path / "m.safetensors", meta={
        "prompt": "a sketch", "generator": {"fingerprint": generator_fingerprint(base)}})  # fmt: skip
    out = tmp_path / "map"
    assert main(["mapper", "apply", "--mapper", str(mapper_file), "--generator", str(base_file), "--adapted",
                 str(adapted_file), "--clip", str(tiny_clip_file), "--seeds", "6", "--strength", "0.5",
                 "--sweep-count", "2", "--no-video", "--device", "cpu", "--outdir", str(out)]) == 0  # fmt: skip
    ws = base_ws(base, [6], 0.7)
    with torch.no_grad():
        edited = mapper.edit(ws, 0.5)
    assert np.abs(pixels(out / "before.png") - drawn(A, ws)).max() <= 1
    assert np.abs(pixels(out / "after.png") - drawn(A, edited)).max() <= 1
    assert json.loads((out / "report.json").read_text())["adapted"]["name"] == str(adapted_file)


# -- refusals, one line each -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wrong_size(tmp_path_factory):
    big = adapted_from(tiny_generator(resolution=64), seed=2)
    return styleclip.save_generator(big, tmp_path_factory.mktemp("big") / "generator.safetensors")


def test_an_adapted_generator_of_another_size_is_refused_naming_the_fix(pair, wrong_size, tmp_path, capsys):
    _, _, base_file, _ = pair
    line = refused(["generate", "--generator", str(base_file), "--adapted", str(wrong_size), "--device", "cpu",
                    "--outdir", str(tmp_path / "o")], capsys, match="adapted from a 64-px generator",
                   watch=[tmp_path])  # fmt: skip
    assert "pass its base with --generator" in line


def test_a_stylegan3_adapted_generator_on_a_stylegan2_base_is_refused(pair):
    from conftest import tiny_generator3

    base = pair[0]
    refused_by(lambda: load_adapted(tiny_generator3(resolution=32), base), match="StyleGAN3 generator")


@pytest.mark.parametrize("command", ["edit", "directions", "mapper"])
def test_pti_with_an_adapted_generator_is_refused_before_any_inversion(pair, command, tmp_path, capsys):
    _, _, base_file, adapted_file = pair
    photo = tmp_path / "me.png"
    Image.new("RGB", (32, 32)).save(photo)
    tail = ["--generator", str(base_file), "--adapted", str(adapted_file), "--image", str(photo), "--pti",
            "--device", "cpu", "--outdir", str(tmp_path / "o")]  # fmt: skip
    argv = {
        "edit": ["edit", "--prompt", "a sketch", *tail],
        "directions": ["directions", "apply", "--neutral", "a", "--target", "b", *tail],
        "mapper": ["mapper", "apply", "--mapper", str(tmp_path / "unused.safetensors"), *tail],
    }[command]
    refused(argv, capsys, match="--pti tunes the base generator's weights", watch=[tmp_path])


def test_an_adapted_generator_without_a_recorded_base_needs_generator(pair, tmp_path, capsys):
    _, A, _, _ = pair
    bare = copy.deepcopy(A)
    bare.meta = {"adapted": {**A.meta["adapted"], "base": {"fingerprint": "0" * 16, "name": None, "source": "x"}}}
    path = styleclip.save_generator(bare, tmp_path / "bare.safetensors")
    refused(["generate", "--adapted", str(path), "--device", "cpu", "--outdir", str(tmp_path / "o")], capsys,
            match="records no catalogue base generator; name its base with --generator")  # fmt: skip


def test_a_nada_file_whose_optimiser_state_asks_for_code_is_refused(nada_assets, tmp_path, capsys):
    import os

    _, A = nada_assets
    forged = nada_checkpoint(A, tmp_path / "forged.pt", g_optim={"state": {}, "hook": os.system})
    line = refused(["generate", "--generator", str(forged), "--device", "cpu", "--outdir", str(tmp_path / "o")],
                   capsys, match="refusing", watch=[tmp_path])  # fmt: skip
    assert "system" in line


@pytest.mark.parametrize("command", [["generate"], ["directions", "apply", "--neutral", "a", "--target", "b"]])
def test_without_generator_or_adapted_the_command_asks_for_a_generator(command, tmp_path, capsys):
    refused([*command, "--device", "cpu", "--outdir", str(tmp_path / "o")], capsys, match="name a generator")


def test_another_base_than_the_recorded_one_is_warned_about_once_and_recorded(pair, tmp_path, capsys):
    _, _, _, adapted_file = pair
    other = styleclip.save_generator(tiny_generator(seed=4), tmp_path / "other.safetensors")
    capsys.readouterr()
    assert main(["generate", "--generator", str(other), "--adapted", str(adapted_file), "--seeds", "0",
                 "--device", "cpu", "--outdir", str(tmp_path / "o")]) == 0  # fmt: skip
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "was adapted from base.safetensors" in warnings[0]
    recorded = json.loads(Image.open(tmp_path / "o" / "seed0000.png").text["styleclip:adapted"])
    assert "was adapted from base.safetensors" in recorded["note"]
