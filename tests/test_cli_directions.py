"""``styleclip directions precompute`` and ``apply`` end to end on tiny assets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from styleclip.cli.main import main
from styleclip.hub.generators import save_generator
from styleclip.io.video import read_video

from conftest import tiny_generator, varied_generator


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_clip_file):
    folder = tmp_path_factory.mktemp("dir-assets")
    G = varied_generator()
    gen = save_generator(G, folder / "tiny.safetensors")
    cache = folder / "cache"
    return ["--generator", str(gen), "--clip", str(tiny_clip_file), "--device", "cpu", "--samples", "500",
            "--cache", str(cache)], cache  # fmt: skip


@pytest.fixture(scope="module")
def precomputed(assets, tmp_path_factory):
    argv, _ = assets
    out = tmp_path_factory.mktemp("rel") / "fd.npz"
    common = ["--images", "2", "--max-resolution", "16", "--batch-size", "64"]
    assert main(["directions", "precompute", *argv, *common, "--out", str(out)]) == 0
    return out


def test_precompute_writes_a_matrix_and_no_checkpoint(precomputed):
    with np.load(precomputed) as data:
        assert data["matrix"].shape[1] == 32 and json.loads(str(data["meta"]))["method"] == "finite-difference"
    assert not list(precomputed.parent.glob("*.partial.npz"))


def test_gradient_precompute_goes_to_the_cache_and_apply_finds_it(assets, tmp_path):
    argv, cache = assets
    assert main(["directions", "precompute", *argv, "--method", "gradient", "--images", "2", "--batch-size", "16"]) == 0
    assert list(cache.rglob("relevance-gradient-*.npz"))
    out = tmp_path / "out"
    assert main(["directions", "apply", *argv, "--neutral", "a dog", "--target", "a red dog", "--beta", "auto",
                 "--no-video", "--outdir", str(out)]) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["beta_automatic"] and report["relevance"]["method"] == "gradient"


def test_apply_writes_images_sweep_video_delta_and_report(assets, precomputed, tmp_path):
    argv, _ = assets
    out = tmp_path / "out"
    code = main(["directions", "apply", *argv, "--relevance", str(precomputed), "--neutral", "a dog",
                 "--target", "a happy dog", "--alpha", "4", "--beta", "0.05", "--seeds", "0-1",
                 "--sweep", "4", "--sweep-count", "5", "--outdir", str(out)])  # fmt: skip
    assert code == 0
    for seed in ("seed0000", "seed0001"):
        assert Image.open(out / seed / "before.png").size == (32, 32)
        assert (out / seed / "after.png").is_file()
    assert Image.open(out / "sweep.png").width > 5 * 32
    frames = read_video(out / "sweep.mp4")
    assert len(frames) == 5 + 3 and frames[0].shape == (32, 64, 3)  # there and back; two sources side by side
    report = json.loads((out / "report.json").read_text())
    assert report["channels_changed"] == sum(report["channels_per_layer"].values()) > 0
    assert report["beta"] == 0.05 and report["sweep_alphas"] == [-4.0, -2.0, 0.0, 2.0, 4.0]
    with np.load(out / "delta.npz") as delta:
        assert set(delta.files) <= {"b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1"}


def test_apply_refuses_a_matrix_of_another_generator(assets, precomputed, tmp_path, capsys):
    argv, _ = assets
    other = save_generator(tiny_generator(seed=7), tmp_path / "other.safetensors")
    argv = [*argv]
    argv[1] = str(other)
    code = main(["directions", "apply", *argv, "--relevance", str(precomputed), "--neutral", "a dog",
                 "--target", "a happy dog", "--outdir", str(tmp_path / "o")])  # fmt: skip
    assert code == 2 and "made for generator" in capsys.readouterr().err


def test_apply_without_a_matrix_says_how_to_make_one(tiny_clip_file, tmp_path, capsys):
    gen = save_generator(tiny_generator(seed=8), tmp_path / "g.safetensors")
    code = main(["directions", "apply", "--generator", str(gen), "--clip", str(tiny_clip_file), "--device", "cpu",
                 "--samples", "100", "--cache", str(tmp_path / "c"), "--neutral", "a", "--target", "b",
                 "--outdir", str(tmp_path / "o")])  # fmt: skip
    assert code == 2 and "styleclip directions precompute" in capsys.readouterr().err
