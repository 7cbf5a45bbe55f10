"""Global directions on the tiny generator and tiny CLIP: statistics, relevance (both methods), the edit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from styleclip import UsageError, load_clip
from styleclip.edits.global_direction import auto_beta, global_direction, style_direction
from styleclip.edits.relevance import (
    RelevanceMatrix,
    load_official_fs3,
    relevance_matrix,
    relevance_matrix_gradient,
)
from styleclip.stylespace import StyleLayout, style_statistics

from conftest import tiny_generator

PLANTED = ("b32.conv1", 3)


def planted_generator():
    """A tiny generator in which one style channel of the last conv layer sets how red the picture is.

    Two channels (3 and 4) of b32.conv0's output are made spatially constant; output channel 0 of b32.conv1
    listens to those two alone (and nothing else listens to them), and b32's ToRGB sends channel 0 to red
    only. Demodulation makes channel 0 follow the ratio of styles 3 and 4, so style 3 of b32.conv1 moves
    the red of the whole picture and nothing else.
    """
    G = tiny_generator(seed=5)
    b = G.synthesis.b32
    c, p = PLANTED[1], 4
    with torch.no_grad():
        # Trained mapping weights are stored divided by its 0.01 learning-rate multiplier; random N(0, 1)
        # ones are not, and would give every latent nearly the same w (style std ~1e-4).
        for name, param in G.mapping.named_parameters():
            if name.endswith("weight"):
                param.mul_(100)
        b.conv0.weight[[c, p]] = 0
        b.conv0.bias[[c, p]] = 2.0
        b.conv0.noise_strength.zero_()
        b.conv1.weight[0] = 0
        b.conv1.weight[:, [c, p]] = 0
        b.conv1.weight[0, c, 1, 1] = 1.0
        b.conv1.weight[0, p, 1, 1] = -0.3
        b.conv1.noise_strength.zero_()
        for block in (G.synthesis.b4, G.synthesis.b8, G.synthesis.b16, b):
            block.torgb.weight.mul_(0.05)  # a dim picture, so that the red is what there is to see
        b.torgb.weight[:, 0] = 0
        b.torgb.affine.weight[0] = 0  # a fixed positive ToRGB style: more is redder in every picture
        b.torgb.affine.bias[0] = 1.0
        b.torgb.weight[0, 0] = 0.1  # a small change: CLIP responds to it linearly
    return G


class ColourClip(torch.nn.Module):
    """A stand-in for CLIP's image tower that sees colour: the picture's mean colour and 16 random
    colour-pattern features, projected to 32 dimensions. A random ViT maps almost every change of a
    picture to nearly the same embedding direction, which would make any ranking of channels a coin toss."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.visual = torch.nn.Module()
        self.visual.image_size = 32
        self.conv = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.conv.weight.data = torch.randn(16, 3, 3, 3, generator=gen) / 3
        self.proj = torch.nn.Parameter(torch.randn(19, 32, generator=gen))
        self.text_projection = torch.nn.Parameter(torch.zeros(1, 32))
        self.logit_scale = torch.nn.Parameter(torch.tensor(4.6052))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        feats = torch.cat([x.mean((2, 3)) * 4, torch.relu(self.conv(x)).mean((2, 3))], dim=1)
        return feats @ self.proj


@pytest.fixture(scope="module")
def guide(tiny_clip_file):
    return load_clip(tiny_clip_file, device="cpu")


@pytest.fixture(scope="module")
def G():
    return planted_generator()


@pytest.fixture(scope="module")
def stats(G):
    return style_statistics(G, samples=2000, batch_size=500, cache=False, progress=False)


@pytest.fixture(scope="module")
def fd(G, guide, stats):
    return relevance_matrix(G, guide, stats, images=3, batch_size=64, progress=False)


def test_statistics_shapes_and_reproducibility(G, stats):
    assert set(stats.mean) == {layer.name for layer in G.style_layers}
    assert stats.mean["b32.conv1"].shape == (16,) and (stats.std["b32.conv1"] > 0).all()
    again = style_statistics(G, samples=2000, batch_size=250, cache=False, progress=False)  # other batching
    torch.testing.assert_close(again.mean["b8.conv0"], stats.mean["b8.conv0"], rtol=0, atol=1e-5)
    ws = G.mapping_forward(G.z_from_seed(list(range(50))), truncation_psi=0.7, truncation_cutoff=8)
    direct = G.styles(ws)["b16.conv1"]
    assert (direct.mean(0) - stats.mean["b16.conv1"]).abs().max() < 4 * stats.std["b16.conv1"].max() / 50**0.5


def test_statistics_are_cached_beside_the_generator(G, tmp_path):
    a = style_statistics(G, samples=100, cache=tmp_path, progress=False)
    files = list((tmp_path / "stylespace").rglob("*.npz"))
    assert len(files) == 1 and a.meta["generator"] in str(files[0])
    b = style_statistics(G, samples=100, cache=tmp_path, progress=False)
    assert torch.equal(a.std["b4.conv1"], b.std["b4.conv1"])


def test_layout_is_conv_layers_by_resolution(G):
    layout = StyleLayout.of(G, max_resolution=16)
    assert layout.names == ("b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1")
    full = StyleLayout.of(G)
    assert "b32.conv1" in full.names and not any("torgb" in n for n in full.names)
    x = torch.randn(2, full.size)
    assert torch.equal(full.flatten(full.unflatten(x)), x)
    assert full.locate(full.size - 1) == ("b32.conv1", 15)


def test_matrix_shape_unit_rows_and_reproducible(G, guide, stats, fd):
    layout = StyleLayout.of(G, max_resolution=128)
    assert fd.matrix.shape == (layout.size, 32)
    norms = fd.matrix.norm(dim=1)
    assert torch.allclose(norms[norms > 0], torch.ones_like(norms[norms > 0]), atol=1e-5)
    again = relevance_matrix(G, guide, stats, images=3, batch_size=64, progress=False)
    assert torch.equal(fd.matrix, again.matrix)


def red_direction(G, guide):
    """CLIP's direction for 'a little redder', from pictures: the matrix's images with the red raised and
    lowered by a small amount, embedded, differenced and averaged as the finite-difference method does."""
    z = torch.from_numpy(np.random.RandomState(0).randn(3, G.z_dim).astype(np.float32))
    imgs = G.synthesize(G.mapping_forward(z, truncation_psi=0.7, truncation_cutoff=8))
    shift = torch.zeros_like(imgs)
    shift[:, 0] = 0.05
    d = guide.encode_image(imgs + shift) - guide.encode_image(imgs - shift)
    d = (d / d.norm(dim=-1, keepdim=True)).mean(0)
    return d / d.norm()


def test_planted_channel_ranks_first_in_both_methods(G, stats):
    from styleclip.guidance.clip import ClipGuide

    seer = ClipGuide(ColourClip(), tokenizer=None, name="colour-seer")
    dt = red_direction(G, seer)
    fd = relevance_matrix(G, seer, stats, images=3, batch_size=64, progress=False)
    grad = relevance_matrix_gradient(G, seer, stats, images=3, batch_size=16, progress=False)
    j = dict(zip(fd.layout.names, fd.layout.offsets, strict=True))[PLANTED[0]] + PLANTED[1]
    for matrix in (fd, grad):
        r = (matrix.matrix @ dt).abs()
        # styles 3 and 4 set the red together (through their ratio), equally relevant up to rounding: the pair leads
        top = sorted(int(i) for i in r.topk(2).indices)
        assert top == [j, j + 1], (matrix.meta["method"], matrix.layout.locate(int(r.argmax())), r.topk(3))
        assert float(r[[j, j + 1]].min()) > 0.9 and float(r.topk(3).values[2]) < float(r[[j, j + 1]].min())
    assert float(fd.matrix[j] @ grad.matrix[j]) > 0.9  # the two estimates agree on its direction


def test_alpha_zero_is_exact_beta_monotone_and_alpha_sign_flips(G, guide, stats, fd):
    dt = red_direction(G, guide)
    ws = G.mapping_forward(G.z_from_seed([1, 2]), truncation_psi=0.7)
    styles = G.styles(ws)
    d = style_direction(fd, dt, stats, beta=0.1)
    assert torch.equal(G.synthesis_from_styles(d.apply(styles, 0.0)), G.synthesis_from_styles(styles))
    counts = [style_direction(fd, dt, stats, beta=b).mask for b in (0.05, 0.1, 0.2, 0.4)]
    for loose, strict in itertools.pairwise(counts):
        assert not (strict & ~loose).any()  # a larger beta never adds a channel
    base = guide.encode_image(G.synthesis_from_styles(styles))
    up = guide.encode_image(G.synthesis_from_styles(d.apply(styles, 3.0)))
    down = guide.encode_image(G.synthesis_from_styles(d.apply(styles, -3.0)))
    assert ((up - base) @ dt > 0).all() and ((down - base) @ dt < 0).all()
    assert d.per_layer() and sum(d.per_layer().values()) == d.channels_changed


def test_auto_beta_keeps_the_minimum_number_of_channels():
    r = torch.linspace(-0.5, 0.5, 1001)
    beta = auto_beta(r, "face")
    assert 0.1 <= beta <= 0.29 and int((r.abs() >= beta).sum()) > 20
    assert auto_beta(r, "dog") <= beta  # other domains need more channels
    assert auto_beta(torch.zeros(10)) == pytest.approx(0.1)


def test_text_direction_edit_end_to_end(G, guide, stats, fd):
    d = global_direction(guide, "a red dog", "a dog", fd, stats, beta=None, domain="dog")
    assert d.channels_changed >= 1 and 0.1 <= d.beta <= 0.3
    with pytest.raises(UsageError, match="no style channel reaches"):
        global_direction(guide, "a red dog", "a dog", fd, stats, beta=0.999)


def test_the_text_direction_is_getdt_s_with_styleclip_s_79_templates(guide, stats, fd):
    d = global_direction(guide, "a red dog", "a dog", fd, stats, beta=0.1)
    expected = style_direction(fd, guide.direction("a red dog", "a dog", templates="styleclip"), stats, 0.1)
    torch.testing.assert_close(d.relevance, expected.relevance)
    eighty = style_direction(fd, guide.direction("a red dog", "a dog", templates="imagenet"), stats, 0.1)
    assert not torch.equal(d.relevance, eighty.relevance)


def test_resume_gives_the_same_matrix(G, guide, stats, fd, tmp_path):
    ckpt = tmp_path / "partial.npz"

    def stop_half_way(done, total):
        if done >= total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        relevance_matrix(G, guide, stats, images=3, batch_size=64, checkpoint=ckpt, callback=stop_half_way)
    assert ckpt.is_file()
    resumed = relevance_matrix(G, guide, stats, images=3, batch_size=64, checkpoint=ckpt, progress=False)
    assert torch.equal(resumed.matrix, fd.matrix)
    with pytest.raises(UsageError, match="other settings"):
        relevance_matrix(G, guide, stats, images=2, batch_size=64, checkpoint=ckpt, progress=False)


def test_mismatched_matrix_is_refused(G, guide, fd, tmp_path):
    path = fd.save(tmp_path / "m.npz")
    loaded = RelevanceMatrix.load(path)
    assert torch.equal(loaded.matrix, fd.matrix) and loaded.layout == fd.layout
    loaded.check(G, guide.name)
    with pytest.raises(UsageError, match="made for generator"):
        loaded.check(tiny_generator(seed=9), guide.name)
    with pytest.raises(UsageError, match="other style layers"):
        loaded.check(tiny_generator(resolution=64), guide.name)
    with pytest.raises(UsageError, match="made with CLIP"):
        loaded.check(G, "ViT-L-14:openai")


def test_official_fs3_rows_map_onto_conv_layers(G, tmp_path):
    layout = StyleLayout.of(G)
    rows = np.random.RandomState(0).randn(layout.size, 512).astype(np.float32)
    np.save(tmp_path / "fs3.npy", rows)
    m = load_official_fs3(tmp_path / "fs3.npy", G, asset="styleclip-fs3:ffhq")
    assert m.layout == layout and m.meta["clip"] == "ViT-B-32:openai"
    torch.testing.assert_close(m.matrix[5], torch.from_numpy(rows[5] / np.linalg.norm(rows[5])))
    np.save(tmp_path / "short.npy", rows[:-1])
    with pytest.raises(UsageError, match="belongs to another generator"):
        load_official_fs3(tmp_path / "short.npy", G)
    G.meta["asset"] = "stylegan2-ada:afhqdog"
    try:
        with pytest.raises(UsageError, match="belongs to stylegan2-tf:ffhq"):
            m.check(G)
    finally:
        G.meta.pop("asset")


def test_an_npz_under_an_npy_name_is_a_clear_error(G, fd, tmp_path):
    from styleclip import CheckpointError

    fd.save(tmp_path / "ours.npy")
    with pytest.raises(CheckpointError, match=r"an \.npz archive"):
        load_official_fs3(tmp_path / "ours.npy", G)


def test_conditional_generators_get_relevance_over_all_classes(guide):
    G = tiny_generator(c_dim=3, seed=1)
    stats = style_statistics(G, samples=200, cache=False, progress=False)
    m = relevance_matrix(G, guide, stats, images=2, max_resolution=8, batch_size=64, progress=False)
    assert m.matrix.shape[0] == StyleLayout.of(G, 8).size
