"""The catalogue and name resolution: `--generator afhqdog` style names, URLs and the models command."""

from __future__ import annotations

import io
import subprocess
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import torch

import styleclip
from styleclip.cli.main import main
from styleclip.hub import catalog, registry
from styleclip.hub.catalog import ASSETS, KINDS, Asset
from styleclip.hub.download import OfflineError

from checkpoint_writers import nvidia_pickle_bytes
from conftest import tiny_generator


class Files(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    hits: ClassVar[list[str]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        Files.hits.append(self.path)
        data = Files.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(handler=Files):
    """A loopback HTTP server for ``handler`` while the generator runs: yields its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def server():
    yield from serve()


@pytest.fixture
def tiny_asset(server, monkeypatch, tmp_path):
    """A catalogue entry for a tiny NVIDIA pickle served by the loopback server; cache in tmp_path."""
    G = tiny_generator()
    Files.files = {"/pretrained/tiny.pkl": nvidia_pickle_bytes(G)}
    Files.hits.clear()
    asset = Asset(
        name="stylegan2-ada:tiny",
        kind="generator",
        domain="test",
        filename="stylegan2-ada-tiny.pkl",
        urls=(f"{server}/dead-mirror/tiny.pkl", f"{server}/pretrained/tiny.pkl"),
        licence="test",
        file_format="stylegan2-ada-pytorch",
        resolution=32,
        aliases=("tiny",),
    )
    monkeypatch.setattr(catalog, "ASSETS", [*ASSETS, asset])
    monkeypatch.setattr(registry, "ASSETS", [*ASSETS, asset])
    monkeypatch.setenv("STYLECLIP_HOME", str(tmp_path / "cache"))
    return asset, G


def test_every_entry_is_complete_and_names_are_unique():
    seen = set()
    for a in ASSETS:
        assert a.name and ":" in a.name and a.kind in KINDS and a.licence and a.urls and a.file_format
        assert all(u.startswith("https://") for u in a.urls)
        for key in (a.name, *a.aliases):
            assert key.lower() not in seen, key
            seen.add(key.lower())
    names = {a.name for a in ASSETS}
    for needed in ("ffhq", "metfaces", "afhqcat", "afhqdog", "afhqwild", "brecahad", "cifar10"):
        assert f"stylegan2-ada:{needed}" in names
    assert {"rosinality:ffhq", "e4e:ffhq", "restyle-e4e:ffhq", "restyle-e4e:afhqwild", "arcface:ir-se50"} <= names
    assert {"styleclip-fs3:ffhq", "styleclip-fs3:afhqdog", "styleclip-fs3:afhqcat"} <= names
    assert all(a.git_blob for a in ASSETS if a.kind == "directions")


def test_generator_by_short_name_downloads_once_and_loads(tiny_asset):
    asset, G = tiny_asset
    loaded = styleclip.load_generator("tiny", device="cpu")
    ws = G.mapping_forward(G.z_from_seed(0))
    assert (loaded.synthesize(ws) - G.synthesize(ws)).abs().max() < 1e-5
    assert Files.hits == ["/dead-mirror/tiny.pkl", "/pretrained/tiny.pkl"]  # second URL after a 404
    styleclip.load_generator("stylegan2-ada:tiny", device="cpu")  # cache hit: no new request
    assert len(Files.hits) == 2
    assert registry.trust(asset).startswith("trust on first use (")


def test_edit_resolves_afhqdog_through_the_registry(server, monkeypatch, tmp_path, tiny_clip_file):
    """`styleclip edit --generator afhqdog`: the real catalogue entry, its URLs pointed at the loopback server."""
    import dataclasses
    import json

    from styleclip.cli.main import main

    real = registry.get_asset("afhqdog")
    Files.files = {"/afhqdog.pkl": nvidia_pickle_bytes(tiny_generator(seed=3))}
    local = dataclasses.replace(real, urls=(f"{server}/afhqdog.pkl",))
    patched = [local if a.name == real.name else a for a in ASSETS]
    monkeypatch.setattr(catalog, "ASSETS", patched)
    monkeypatch.setattr(registry, "ASSETS", patched)
    monkeypatch.setenv("STYLECLIP_HOME", str(tmp_path / "cache"))
    argv = ["edit", "--generator", "afhqdog", "--clip", str(tiny_clip_file), "--prompt", "a happy dog"]
    assert main([*argv, "--steps", "2", "--no-video", "--device", "cpu", "--outdir", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["generator"]["asset"] == "stylegan2-ada:afhqdog" and report["generator"]["domain"] == "dog"
    assert report["result"]["identity_similarity"] is None  # dogs get no face-identity loss
    assert (tmp_path / "cache" / "generators" / real.filename).is_file()


def test_offline_mode_with_a_missing_model_says_what_is_missing(tiny_asset, monkeypatch):
    monkeypatch.setenv("STYLECLIP_OFFLINE", "1")
    with pytest.raises(OfflineError, match=r"stylegan2-ada-tiny\.pkl is not in the cache"):
        styleclip.load_generator("tiny")
    assert Files.hits == []


def test_url_is_downloaded_into_the_cache(tiny_asset, server):
    loaded = styleclip.load_generator(f"{server}/pretrained/tiny.pkl", device="cpu")
    assert loaded.img_resolution == 32
    assert "urls" in loaded.meta["source"]


def test_clip_and_lpips_load_from_urls(server, monkeypatch, tmp_path, tiny_clip_file):
    import torchvision

    from styleclip.guidance.perceptual import load_lpips

    monkeypatch.setenv("STYLECLIP_HOME", str(tmp_path / "cache"))
    lin = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate((64, 192, 384, 256, 256))}
    buf = io.BytesIO()
    torch.save(lin, buf)
    backbone = tmp_path / "alexnet.pth"
    torch.save({k: v for k, v in torchvision.models.alexnet().state_dict().items() if "features" in k}, backbone)
    Files.files = {"/clip.pt": tiny_clip_file.read_bytes(), "/alex.pth": buf.getvalue()}
    guide = styleclip.load_clip(f"{server}/clip.pt", device="cpu")
    assert guide.embed_dim == 32
    lp = load_lpips("alex", lin=f"{server}/alex.pth", backbone=backbone)
    assert torch.equal(lp.lins[1].weight, lin["lin1.model.1.weight"])
    assert {"/alex.pth", "/clip.pt"} <= set(Files.hits)


def test_git_blob_verified_entry(server, monkeypatch, tmp_path):
    data = b"fs3 matrix bytes"
    Files.files = {"/fs3.npy": data}
    blob = subprocess.run(["git", "hash-object", "--stdin"], input=data, capture_output=True, check=True).stdout
    asset = Asset(
        "styleclip-fs3:test",
        "directions",
        "test",
        "fs3.npy",
        (f"{server}/fs3.npy",),
        "MIT",
        "styleclip-fs3",
        git_blob=blob.decode().strip(),
    )
    path = registry.fetch(asset, cache=tmp_path, progress=False)
    assert path.read_bytes() == data and registry.trust(asset, tmp_path) == "git blob id"
    wrong = replace(asset, filename="other.npy", git_blob="0" * 40)
    with pytest.raises(styleclip.StyleclipError, match="git blob id"):
        registry.fetch(wrong, cache=tmp_path, progress=False)


def test_models_command(tiny_asset, capsys):
    assert main(["models", "list", "--kind", "generator"]) == 0
    out = capsys.readouterr().out
    assert "stylegan2-ada:afhqdog (afhqdog)" in out and "non-commercial" in out and "stylegan2-ada:tiny" in out
    assert main(["models", "download", "tiny"]) == 0
    assert main(["models", "verify"]) == 0
    assert "stylegan2-ada:tiny: ok (trust on first use" in capsys.readouterr().out
    path = registry.asset_path(tiny_asset[0])
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    assert main(["models", "verify", "tiny"]) == 1
    assert "CORRUPT" in capsys.readouterr().out
    assert main(["models", "remove", "tiny"]) == 0 and not path.exists()
    assert main(["models", "path", "tiny"]) == 0 and capsys.readouterr().out.strip().endswith("stylegan2-ada-tiny.pkl")
    assert main(["models", "download", "afhqdgo"]) == 2
    assert "did you mean afhqdog" in capsys.readouterr().err


def test_every_kind_has_a_cache_folder():
    assert set(registry.FOLDERS) == set(KINDS)


def test_the_docs_list_every_catalogue_entry():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "docs" / "models.md").read_text()
    missing = [a.name for a in ASSETS if f"`{a.name}`" not in readme]
    assert not missing, f"add to the table in docs/models.md: {missing}"
