"""Our generator against outputs of NVIDIA's official stylegan2-ada-pytorch implementation.

``tests/data/reference_<tag>.npz`` were produced by running the official ``training.networks.Generator``
(CPU, fp32, ``noise_mode='const'``) with the deterministic weights of ``reference_weights.fill`` for
every configuration in ``REFERENCE_CONFIGS``: 32 to 1024 px, conditional, conv_clamp + fp16 layers,
and the 'resnet' and 'orig' architectures. Here we rebuild those weights in our network and compare.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from styleclip.hub.formats.nvidia_pkl import config_from_init_kwargs
from styleclip.nets.stylegan2 import Generator

from reference_weights import REFERENCE_CONFIGS, REFERENCE_PSI, REFERENCE_SEEDS, fill, image_slices

DATA = Path(__file__).parent / "data"
TOLERANCE = 1e-4  # the acceptance bound: fp32, every resolution


@pytest.fixture(scope="module", params=list(REFERENCE_CONFIGS))
def case(request):
    tag = request.param
    kwargs = dict(REFERENCE_CONFIGS[tag])
    G = Generator(config_from_init_kwargs((), kwargs)).eval().requires_grad_(False)
    state = dict(G.named_parameters())
    state.update(G.named_buffers())
    fill(state, seed=0)
    ref = dict(np.load(DATA / f"reference_{tag}.npz"))
    return tag, G, ref


def test_mapping_matches_official(case):
    _, G, ref = case
    z = G.z_from_seed(list(REFERENCE_SEEDS))
    np.testing.assert_array_equal(z.numpy(), ref["z"])
    c = torch.from_numpy(ref["c"]) if "c" in ref else None
    ws = G.mapping_forward(z, c, truncation_psi=REFERENCE_PSI)
    np.testing.assert_allclose(ws.numpy(), ref["ws"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("modulation", ["fused", "activation"])
def test_synthesis_matches_official(case, modulation):
    tag, G, ref = case
    ws = torch.from_numpy(ref["ws"])
    for noise_mode, prefix in (("const", "w_img_slices/"), ("none", "noise_mode_none_slices/")):
        img = G.synthesize(ws, noise_mode=noise_mode, modulation=modulation).numpy()
        ours = image_slices(img)
        for key, value in ours.items():
            diff = np.abs(value - ref[prefix + key]).max()
            assert diff < TOLERANCE, f"{tag} {noise_mode} {key}: max |diff| {diff:.2e}"
        if noise_mode == "const" and "img" in ref:
            assert np.abs(img - ref["img"]).max() < TOLERANCE


def test_styles_match_official(case):
    _, G, ref = case
    styles = G.styles(torch.from_numpy(ref["ws"]))
    assert {k.split("/", 1)[1] for k in ref if k.startswith("styles_mean/")} == set(styles)
    for name, s in styles.items():
        np.testing.assert_allclose(s.mean(dim=1).numpy(), ref[f"styles_mean/{name}"], rtol=1e-5, atol=1e-5)
