"""Checks on the real published checkpoints. Deselected by default (they need the files and minutes).

Point the environment at files you downloaded, then run ``pytest -m slow``:

    STYLECLIP_FFHQ_PKL=~/ffhq.pkl            NVIDIA stylegan2-ada-pytorch pickle
    STYLECLIP_AFHQDOG_PKL=~/afhqdog.pkl      NVIDIA stylegan2-ada-pytorch pickle (conv_clamp, fp16 layers)
    STYLECLIP_FFHQ_ROSINALITY=~/stylegan2-ffhq-config-f.pt   StyleCLIP / e4e generator
    STYLECLIP_FFHQ_TF_PKL=~/stylegan2-ffhq-config-f.pkl      original TensorFlow release
    STYLECLIP_E4E_PT=~/e4e_ffhq_encode.pt                    e4e FFHQ encoder (with its generator)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import styleclip

pytestmark = pytest.mark.slow


def _path(var: str) -> Path:
    value = os.environ.get(var)
    if not value:
        pytest.skip(f"set {var} to the downloaded checkpoint to run this test")
    return Path(value).expanduser()


@pytest.mark.parametrize(
    ("var", "resolution", "clamp"),
    [("STYLECLIP_FFHQ_PKL", 1024, None), ("STYLECLIP_AFHQDOG_PKL", 512, 256)],
)
def test_official_pickle_loads_and_draws(var, resolution, clamp):
    G = styleclip.load_generator(_path(var), device="cpu")
    assert G.img_resolution == resolution and G.num_ws == 2 * (resolution.bit_length() - 1) - 2
    assert G.config.synthesis.conv_clamp == clamp
    ws = G.mapping_forward(G.z_from_seed(0), truncation_psi=0.7)
    img = G.synthesize(ws)
    assert img.shape == (1, 3, resolution, resolution)
    assert img.abs().max() < 3 and img.std() > 0.1  # a picture, not noise or a blank


def test_ffhq_in_every_format_is_the_same_network():
    # NVIDIA converted ffhq.pkl from the TF release; StyleCLIP's .pt is rosinality's conversion of it.
    ref = styleclip.load_generator(_path("STYLECLIP_FFHQ_PKL"), device="cpu")
    ws = ref.mapping_forward(ref.z_from_seed([1, 2]), truncation_psi=0.7)
    img = ref.synthesize(ws)
    for var in ("STYLECLIP_FFHQ_ROSINALITY", "STYLECLIP_FFHQ_TF_PKL"):
        if not os.environ.get(var):
            continue
        other = styleclip.load_generator(_path(var), device="cpu")
        torch.testing.assert_close(other.synthesize(ws), img, rtol=0, atol=1e-3)


def test_e4e_inverts_the_astronaut_recognisably():
    """The published e4e FFHQ encoder on the aligned astronaut: a face comes back (PSNR well above a grey image)."""
    pytest.importorskip("dlib")
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    from styleclip.inversion.encoders import load_encoder
    from styleclip.inversion.invert import invert

    encoder = load_encoder(_path("STYLECLIP_E4E_PT"), device="cpu")
    assert encoder.kind == "e4e" and encoder.n_styles == 18 and encoder.generator is not None
    inv = invert(Image.fromarray(skimage_data.astronaut()), encoder.generator, method="e4e", encoder=encoder,
                 align="face", progress=False)  # fmt: skip
    grey = torch.zeros_like(inv.target)
    from styleclip.inversion.projection import psnr

    assert inv.metrics["psnr"] > psnr(grey, inv.target) + 6
