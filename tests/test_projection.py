"""Optimisation projection on the tiny generator: it finds a picture the generator drew."""

from __future__ import annotations

import pytest
import torch

from styleclip import UsageError
from styleclip.guidance.perceptual import LPIPS
from styleclip.inversion.projection import ProjectionConfig, noise_layers, project, psnr, use_noise

from conftest import tiny_generator


@pytest.fixture(scope="module")
def G():
    G = tiny_generator(seed=4)
    with torch.no_grad():  # trained-like mapping scale, so that latents differ (see test_directions)
        for name, p in G.mapping.named_parameters():
            if name.endswith("weight"):
                p.mul_(100)
    return G


@pytest.fixture(scope="module")
def target(G):
    with torch.no_grad():
        return G.synthesize(G.mapping_forward(G.z_from_seed(7), truncation_psi=0.8))


@pytest.mark.parametrize("space", ["w", "w+"])
def test_reconstruction_error_falls_substantially(G, target, space):
    torch.manual_seed(0)
    lpips = LPIPS("alex", max_size=None)
    with torch.no_grad():  # random but valid calibration: non-negative channel weights, as the published ones
        for lin in lpips.lins:
            lin.weight.abs_()
    cfg = ProjectionConfig(steps=60, space=space, w_avg_samples=500)
    result = project(G, target, lpips, cfg, progress=False)
    first, last = result.history[0], result.history[-1]
    assert last["pixel"] < 0.3 * first["pixel"] and last["lpips"] < first["lpips"]
    with torch.no_grad():
        recon = G.synthesize(result.ws)
    assert psnr(recon, target) > psnr(G.synthesize(G.w_avg[None]), target) + 5
    assert result.ws.shape == (1, G.num_ws, G.w_dim) and result.noise is None
    if space == "w":
        assert torch.equal(result.ws, result.ws[:, :1].expand_as(result.ws))


def test_noise_optimisation_returns_normalised_maps_and_restores_the_generator(G, target):
    before = {n: m.noise_const.clone() for n, m in noise_layers(G).items()}
    cfg = ProjectionConfig(steps=5, optimize_noise=True, w_avg_samples=200)
    result = project(G, target, None, cfg, progress=False)
    assert set(result.noise) == set(before)
    for n, m in noise_layers(G).items():
        assert torch.equal(m.noise_const, before[n])  # the generator's own noise is back
        v = result.noise[n]
        assert abs(float(v.mean())) < 1e-4 and abs(float(v.square().mean()) - 1) < 1e-3
    with torch.no_grad():
        plain = G.synthesize(result.ws)
        with use_noise(G, result.noise):
            noisy = G.synthesize(result.ws)
    assert not torch.equal(plain, noisy)


def test_wrong_size_and_interrupt(G, target):
    with pytest.raises(UsageError, match=r"must be \[1, 3, 32, 32\]"):
        project(G, target[..., :16, :16], None, ProjectionConfig(steps=2, w_avg_samples=10), progress=False)

    def stop(step, record):
        if step == 2:
            raise KeyboardInterrupt

    result = project(G, target, None, ProjectionConfig(steps=50, w_avg_samples=10), callback=stop, progress=False)
    assert len(result.history) == 3
