"""styleclip.invert end to end on tiny networks: encoders, projection, PTI, photo preparation, metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from styleclip import UsageError
from styleclip.guidance.perceptual import LPIPS
from styleclip.inversion.invert import invert, prepare_photo
from styleclip.inversion.projection import ProjectionConfig
from styleclip.io.images import to_uint8
from styleclip.nets.encoders import IRSEEncoder

from conftest import tiny_lpips_model
from test_encoders import TINY_IRSE, tiny_generator_w64, write_checkpoint


@pytest.fixture(scope="module")
def G():
    return tiny_generator_w64(seed=3)


@pytest.fixture(scope="module")
def e4e_path(tmp_path_factory, G):
    net = IRSEEncoder(G.num_ws, 3, True, TINY_IRSE, stem=16)
    return write_checkpoint(tmp_path_factory.mktemp("enc") / "e4e.pt", net, G)


@pytest.fixture(scope="module")
def lpips():
    torch.manual_seed(0)
    model = LPIPS("alex", max_size=None)
    with torch.no_grad():
        for lin in model.lins:
            lin.weight.abs_()
    return model


@pytest.fixture(scope="module")
def photo(G, tmp_path_factory):
    with torch.no_grad():
        img = G.synthesize(G.mapping_forward(G.z_from_seed(5), truncation_psi=0.8))
    a = ((img[0].permute(1, 2, 0) + 1) * 127.5).clamp(0, 255).round().byte().numpy()
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(a).resize((48, 40)).save(path)  # not square, not the generator's size
    return path


def test_e4e_inversion_with_metrics(G, e4e_path, photo, lpips):
    inv = invert(photo, G, method="e4e", encoder=str(e4e_path), lpips=lpips, align="center", progress=False)
    assert inv.method == "e4e" and inv.ws.shape == (1, G.num_ws, G.w_dim) and len(inv.steps) == 1
    assert inv.target.shape == inv.reconstruction.shape == (1, 3, 32, 32) and inv.aligned.size == (32, 32)
    assert inv.metrics["lpips"] >= 0 and np.isfinite(inv.metrics["psnr"]) and inv.metrics["identity"] is None


def test_projection_from_the_encoder_answer_then_pti_gets_closer(G, e4e_path, photo, lpips):
    enc = invert(photo, G, method="e4e", encoder=str(e4e_path), lpips=lpips, align="center", progress=False)
    cfg = ProjectionConfig(steps=30, space="w+", w_avg_samples=200)
    proj = invert(photo, G, method="project", encoder=str(e4e_path), lpips=lpips, align="center",
                  projection=cfg, progress=False)  # fmt: skip
    assert proj.method == "project" and proj.metrics["psnr"] > enc.metrics["psnr"]
    tuned = invert(photo, G, method="project", lpips=lpips, align="center", projection=cfg, pti=True, pti_steps=30, pti_stop=0,
                   progress=False)  # fmt: skip
    assert tuned.method == "project+pti" and tuned.generator is not G and tuned.generator.meta["pti"]
    plain = invert(photo, G, method="project", lpips=lpips, align="center", projection=cfg, progress=False)
    assert tuned.metrics["psnr"] > plain.metrics["psnr"]
    assert all(not p.requires_grad for p in tuned.generator.parameters())
    for (name, a), b in zip(G.state_dict().items(), tuned.generator.state_dict().values(), strict=True):
        if name.startswith("mapping"):
            assert torch.equal(a, b)  # only the synthesis network is tuned


def test_auto_method_without_an_encoder_projects(G, photo, lpips):
    inv = invert(
        photo, G, lpips=lpips, align="none", projection=ProjectionConfig(steps=3, w_avg_samples=50), progress=False
    )
    assert inv.method == "project"


def test_prepare_photo_modes(photo):
    assert prepare_photo(photo, 16, "center").size == (16, 16)
    assert prepare_photo(photo, 16, "none").size == (16, 16)
    assert prepare_photo(photo, 16, box=(0, 0, 20, 20)).size == (16, 16)
    with pytest.raises(UsageError, match="align must be"):
        prepare_photo(photo, 16, "sideways")
    with pytest.raises(UsageError, match="method must be"):
        invert(photo, tiny_generator_w64(), method="magic")


def test_encoder_with_another_generator_warns(e4e_path, photo, lpips):
    other = tiny_generator_w64(seed=11)
    with pytest.warns(UserWarning, match="differs from the one given"):
        invert(photo, other, method="e4e", encoder=str(e4e_path), lpips=lpips, align="center", progress=False)


def test_a_tuned_generator_does_not_inherit_the_fingerprint(G, photo, lpips):
    from styleclip.stylespace import generator_fingerprint

    original = generator_fingerprint(G)
    inv = invert(photo, G, method="project", lpips=lpips, align="center", pti=True, pti_steps=3, pti_stop=0,
                 projection=ProjectionConfig(steps=2, w_avg_samples=20), progress=False)  # fmt: skip
    assert generator_fingerprint(inv.generator) != original == generator_fingerprint(G)


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU with native bf16, on which 'auto' means bf16 (this file otherwise pins fp32 like every test)."""
    from styleclip.utils import precision

    monkeypatch.delenv("STYLECLIP_PRECISION", raising=False)
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: ("amx_bf16",))


def _encoders(tmp_path):
    G = tiny_generator_w64(seed=3)
    e4e = write_checkpoint(tmp_path / "e4e.pt", IRSEEncoder(G.num_ws, 3, True, TINY_IRSE, stem=16), G)
    restyle = IRSEEncoder(G.num_ws, 6, False, TINY_IRSE, stem=16)
    restyle = write_checkpoint(tmp_path / "rs.pt", restyle, G, latent_avg_rows=False, extra={"global_step": 1})
    return G, {"e4e": e4e, "restyle": restyle}


@pytest.mark.parametrize("method", ["e4e", "restyle"])
def test_auto_keeps_encoder_inversion_in_fp32_where_bf16_is_native(bf16_cpu, tmp_path, method):
    G, encoders = _encoders(tmp_path)
    photo = Image.fromarray((np.random.RandomState(2).rand(48, 40, 3) * 255).astype(np.uint8))
    kwargs = dict(method=method, encoder=encoders[method], align="center", lpips=tiny_lpips_model(), progress=False)
    auto = invert(photo, G, precision="auto", **kwargs)
    fp32 = invert(photo, G, precision="fp32", **kwargs)
    bf16 = invert(photo, G, precision="bf16", **kwargs)
    assert auto.precision["used"] == "fp32" and "encoder" in auto.precision["why"]
    torch.testing.assert_close(auto.ws, fp32.ws, rtol=0, atol=0)
    assert np.array_equal(to_uint8(auto.reconstruction), to_uint8(fp32.reconstruction))
    # asked for, bf16 still runs, and stays close: same latents to rounding, pictures within a few PNG levels
    assert bf16.precision["used"] == "bf16"
    torch.testing.assert_close(bf16.ws, fp32.ws, rtol=1e-2, atol=1e-2)
    levels = np.abs(to_uint8(bf16.reconstruction).astype(int) - to_uint8(fp32.reconstruction).astype(int))
    assert 0 < levels.max() <= 8


def test_projection_in_bf16_reconstructs_the_photo_as_well_as_fp32(bf16_cpu):
    G = tiny_generator_w64(seed=3)
    photo = Image.fromarray((np.random.RandomState(2).rand(48, 40, 3) * 255).astype(np.uint8))
    kwargs = dict(method="project", steps=60, align="center", lpips=tiny_lpips_model(), progress=False)
    auto = invert(photo, G, precision="auto", **kwargs)
    fp32 = invert(photo, G, precision="fp32", **kwargs)
    assert auto.precision["used"] == "bf16"
    assert abs(auto.metrics["psnr"] - fp32.metrics["psnr"]) < 0.2
    assert abs(auto.metrics["lpips"] - fp32.metrics["lpips"]) < 0.01
    assert ((auto.ws - fp32.ws).norm() / fp32.ws.norm()).item() < 0.05
