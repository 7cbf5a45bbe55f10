"""Every method on a StyleGAN3 generator: generate (with translate/rotate), edit in W / W+ / S, global
directions, projection with pivotal tuning - end to end on a tiny random StyleGAN3 network."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from styleclip.cli.main import main
from styleclip.guidance.perceptual import LPIPS
from styleclip.hub.generators import load_generator, save_generator
from styleclip.inversion.invert import invert
from styleclip.inversion.projection import ProjectionConfig
from styleclip.io.images import to_pil
from styleclip.latents import select_ws
from styleclip.nets.stylegan3 import Generator3, make_transform

from conftest import tiny_generator3


@pytest.fixture(scope="module")
def G3():
    G = tiny_generator3(resolution=32, seed=2)
    for name, p in G.mapping.named_parameters():  # trained-like mapping scale: styles that vary
        if name.endswith("weight"):
            p.data.mul_(100)
    return G


@pytest.fixture(scope="module")
def assets(G3, tmp_path_factory, tiny_clip_file):
    folder = tmp_path_factory.mktemp("sg3-assets")
    gen = save_generator(G3, folder / "tiny-sg3.safetensors")
    return gen, ["--generator", str(gen), "--clip", str(tiny_clip_file), "--device", "cpu"], folder / "cache"


def test_generate_with_translate_and_rotate(assets, tmp_path, capsys):
    gen, _, _ = assets
    out = tmp_path / "gen"
    assert main(["generate", "--generator", str(gen), "--seeds", "3", "--trunc", "0.7", "--translate", "0.2,-0.1",
                 "--rotate", "15", "--outdir", str(out)]) == 0  # fmt: skip
    G = load_generator(gen, device="cpu")
    ws = G.mapping_forward(G.z_from_seed(3), truncation_psi=0.7)
    np.testing.assert_array_equal(np.load(out / "seed0003.npy"), ws.numpy())
    expected = np.asarray(to_pil(G.synthesize(ws, transform=make_transform((0.2, -0.1), 15)))[0])
    png = Image.open(out / "seed0003.png")
    np.testing.assert_array_equal(np.asarray(png), expected)
    assert png.text["styleclip:rotate"] == "15.0"
    assert main(["generate", "--generator", str(gen), "--translate", "1", "--outdir", str(tmp_path / "x")]) == 2
    assert "two numbers" in capsys.readouterr().err


def test_generate_draws_with_the_identity_transform_as_gen_images_does(G3, tmp_path):
    """gen_images.py sets the transform from --translate/--rotate every time (0, 0 = identity), whatever the
    pickle stored; the API keeps the stored one."""
    import copy

    moved = copy.deepcopy(G3)
    moved.set_transform((0.3, 0.1), 40)
    gen = save_generator(moved, tmp_path / "moved.safetensors")
    assert main(["generate", "--generator", str(gen), "--seeds", "3", "--outdir", str(tmp_path / "out")]) == 0
    G = load_generator(gen, device="cpu")
    ws = G.mapping_forward(G.z_from_seed(3), truncation_psi=1.0)
    identity = np.asarray(to_pil(G.synthesize(ws, transform=make_transform((0, 0), 0)))[0])
    stored = np.asarray(to_pil(G.synthesize(ws))[0])
    png = Image.open(tmp_path / "out" / "seed0003.png")
    assert np.abs(identity.astype(int) - stored.astype(int)).max() > 10  # the stored matrix does move the picture
    np.testing.assert_array_equal(np.asarray(png), identity)
    assert png.text["styleclip:rotate"] == "0.0"


@pytest.mark.parametrize(("space", "layers"), [("w+", None), ("w", None), ("s", "coarse"), ("w+", "medium")])
def test_edit_in_every_space(assets, tmp_path, space, layers):
    _, argv, _ = assets
    out = tmp_path / "edit"
    extra = ["--layers", layers] if layers else []
    assert main(["edit", *argv, "--prompt", "a red dog", "--seed", "1", "--steps", "3", "--space", space, *extra,
                 "--no-video", "--outdir", str(out)]) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    G = load_generator(assets[0], device="cpu")
    source = G.mapping_forward(G.z_from_seed(1), truncation_psi=0.7)
    latent = torch.from_numpy(np.load(out / "latent.npy"))
    assert latent.shape == (1, G.num_ws, G.w_dim) and report["config"]["space"] == space
    if space == "w":
        assert torch.equal(latent, latent[:, :1].expand_as(latent))
    if space == "w+" and layers == "medium":
        chosen = select_ws("medium", G)
        assert 0 < chosen.sum() < G.num_ws and not chosen[0]
        assert torch.equal(latent[:, ~chosen], source[:, ~chosen])
        assert not torch.equal(latent[:, chosen], source[:, chosen])
    assert Image.open(out / "after.png").size == (32, 32)


def test_global_directions_precompute_and_apply(assets, tmp_path):
    _, argv, cache = assets
    common = [*argv, "--samples", "300", "--cache", str(cache)]
    matrix = tmp_path / "fd.npz"
    assert main(["directions", "precompute", *common, "--images", "2", "--max-resolution", "16", "--batch-size",
                 "64", "--out", str(matrix)]) == 0  # fmt: skip
    with np.load(matrix) as data:
        names = json.loads(str(data["layout"]))["names"]
    assert "input" not in names and all(n.startswith("L") for n in names)  # conv layers only, never ToRGB
    out = tmp_path / "apply"
    assert main(["directions", "apply", *common, "--relevance", str(matrix), "--neutral", "a dog", "--target",
                 "a red dog", "--beta", "auto", "--seeds", "0-1", "--no-video", "--outdir", str(out)]) == 0  # fmt: skip
    with np.load(out / "delta.npz") as delta:
        assert set(delta.files) <= set(names) and delta.files
    assert (out / "sweep.png").is_file()


def test_projection_and_pivotal_tuning(G3, tmp_path):
    torch.manual_seed(0)
    lpips = LPIPS("alex", max_size=None)
    with torch.no_grad():
        for lin in lpips.lins:
            lin.weight.abs_()
        img = G3.synthesize(G3.mapping_forward(G3.z_from_seed(5), truncation_psi=0.8))
    photo = tmp_path / "photo.png"
    to_pil(img)[0].save(photo)
    cfg = ProjectionConfig(steps=40, w_avg_samples=200)
    inv = invert(photo, G3, method="project", lpips=lpips, align="none", projection=cfg, progress=False)
    start = invert(photo, G3, method="project", lpips=lpips, align="none", projection=ProjectionConfig(steps=1,
                   w_avg_samples=200), progress=False)  # fmt: skip
    assert inv.metrics["psnr"] > start.metrics["psnr"] + 1
    tuned = invert(photo, G3, method="project", lpips=lpips, align="none", projection=cfg, pti=True, pti_steps=20,
                   pti_stop=0, progress=False)  # fmt: skip
    assert isinstance(tuned.generator, Generator3) and tuned.generator is not G3
    assert tuned.metrics["psnr"] > inv.metrics["psnr"]
