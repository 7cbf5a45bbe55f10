"""styleclip.sources: seeds, latent files and photos become the same Sources for every command, batch and the UI."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from styleclip import sources

from conftest import tiny_lpips_model
from test_encoders import tiny_generator_w64


def test_seeds_and_latent_files_give_rows_with_names(tmp_path):
    G = tiny_generator_w64(seed=1)
    src = sources.from_seeds(G, [3, 9], truncation_psi=0.7)
    expected = G.mapping_forward(G.z_from_seed([3, 9]), truncation_psi=0.7)
    torch.testing.assert_close(src.ws, expected, rtol=0, atol=0)
    assert src.names == ["seed0003", "seed0009"] and src.seeds == [3, 9] and src.generator is G
    np.save(tmp_path / "w.npy", expected.numpy())
    rows = sources.from_latent_file(G, tmp_path / "w.npy")
    torch.testing.assert_close(rows.ws, expected, rtol=0, atol=0)
    assert rows.names == ["row0", "row1"] and rows.seeds is None and rows.inversion is None


def test_a_photo_tuned_by_pti_is_drawn_by_its_tuned_generator():
    G = tiny_generator_w64(seed=1)
    photo = Image.fromarray((np.random.RandomState(0).rand(40, 40, 3) * 255).astype(np.uint8))
    kwargs = dict(method="project", steps=2, align="center", lpips=tiny_lpips_model(), progress=False)
    plain = sources.from_photo(G, photo, **kwargs)
    assert plain.generator is G and plain.names == ["photo"] and plain.inversion.method == "project"
    tuned = sources.from_photo(G, photo, pti=True, pti_steps=2, **kwargs)
    assert tuned.generator is tuned.inversion.generator and tuned.generator is not G
    assert torch.equal(tuned.ws, tuned.inversion.ws)
