"""HyperStyle: the published checkpoint layout, the hyper-network's offsets, the drawing with ``W * (1 + Δ)`` and the
iteration, against HyperStyle's forward pass written from the state dict (tests/hyperstyle_writers.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import styleclip
from styleclip.errors import CheckpointError
from styleclip.inversion.encoders import load_encoder
from styleclip.inversion.hyperstyle import (
    draw_with_offsets,
    hyperstyle_invert,
    load_hyperstyle,
    offset_generator,
)
from styleclip.nets.hyperstyle import layer_table

from hostile import refused_by
from hyperstyle_writers import (
    hyperstyle_generator,
    reference_draw,
    reference_offsets,
    write_hyperstyle,
    write_w_encoder,
)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hyperstyle")
    G = hyperstyle_generator(128)
    return G, write_hyperstyle(G, folder / "hyperstyle_ffhq.pt"), write_w_encoder(G, folder / "faces_w_encoder.pt")


def test_layer_table_is_hyperstyles_numbering():
    G = hyperstyle_generator(128)
    table = layer_table(G)
    assert len(table) == 3 * (7 - 2) + 2 == 17
    assert [t.name for t in table[:5]] == [
        "synthesis.b4.conv1", "synthesis.b4.torgb", "synthesis.b8.conv0", "synthesis.b8.conv1", "synthesis.b8.torgb"
    ]  # fmt: skip
    assert [t.index for t in table if t.torgb] == [1, 4, 7, 10, 13, 16]
    assert table[14].name == "synthesis.b128.conv0" and table[14].kernel == 3


def test_published_key_layout_loads_strictly(world):
    G, path, _ = world
    ckpt = torch.load(path, weights_only=True)
    keys = set(ckpt["state_dict"])
    # names as HyperStyle's coach saves them, the shared weights once more under every block that uses them
    for key in ["hypernet.conv1.weight", "hypernet.relu.weight", "hypernet.body.1.downsample.0.weight",
                "hypernet.shared_weight_hypernet.w2", "hypernet.refinement_blocks.0.hypernet.w1",
                "hypernet.refinement_blocks.12.linear.weight", "hypernet.refinement_blocks.0.convs.8.weight",
                "hypernet.refinement_blocks.14.output.1.weight", "hypernet.refinement_blocks.15.convs.4.weight",
                "decoder.style.1.weight", "decoder.convs.9.conv.weight"]:  # fmt: skip
        assert key in keys, key
    assert not any(k.startswith("hypernet.refinement_blocks.1.") for k in keys)  # ToRGB 1 is not tuned
    model = load_hyperstyle(path, device="cpu")
    assert [t.index for t in model.table if model.net.refinement_blocks[t.index] is not None] == list(model.net.tune)
    assert model.latent_avg.shape == (G.num_ws, G.w_dim)
    ws = G.mapping_forward(G.z_from_seed(1))
    torch.testing.assert_close(model.generator.synthesize(ws), G.synthesize(ws))


def test_offsets_match_hyperstyles_forward(world):
    _, path, _ = world
    model = load_hyperstyle(path, device="cpu")
    sd = {k[len("hypernet.") :]: v for k, v in torch.load(path, weights_only=True)["state_dict"].items()
          if k.startswith("hypernet.")}  # fmt: skip
    x = torch.rand(2, 6, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ours = model.net(x)
    ref = reference_offsets(sd, x, model.table)
    assert [o is None for o in ours] == [r is None for r in ref]
    for layer, o, r in zip(model.table, ours, ref, strict=True):
        if o is not None:
            assert o.shape == (2, layer.out_channels, layer.in_channels, layer.kernel, layer.kernel)
            torch.testing.assert_close(o, r, atol=1e-5, rtol=1e-4, msg=layer.name)


def test_drawing_with_offsets_is_hyperstyles_weight_modulation(world):
    G, _, _ = world
    table = layer_table(G)
    g = torch.Generator().manual_seed(3)
    deltas = [0.3 * torch.randn(1, t.out_channels, t.in_channels, t.kernel, t.kernel, generator=g) for t in table]
    deltas[1] = None  # an untuned layer draws as before
    named = {t.name: d for t, d in zip(table, deltas, strict=True) if d is not None}
    ws = G.mapping_forward(G.z_from_seed(4), truncation_psi=0.7)
    expected = reference_draw(G, ws, deltas)
    torch.testing.assert_close(draw_with_offsets(G, ws, named), expected, atol=1e-5, rtol=1e-4)
    tuned = offset_generator(G, named)
    torch.testing.assert_close(tuned.synthesize(ws), expected, atol=1e-5, rtol=1e-4)
    assert (tuned.synthesize(ws) - G.synthesize(ws)).abs().max() > 1e-2
    assert "fingerprint" not in tuned.meta
    # HyperStyle's domain-adaptation recipe: only the offsets from 128 px up
    high = offset_generator(G, named, from_resolution=128)
    assert high.meta["hyperstyle"] == ["synthesis.b128.conv0", "synthesis.b128.conv1", "synthesis.b128.torgb"]
    low_deltas = [d if t.name.startswith("synthesis.b128.") else None for t, d in zip(table, deltas, strict=True)]
    torch.testing.assert_close(high.synthesize(ws), reference_draw(G, ws, low_deltas), atol=1e-5, rtol=1e-4)


def test_the_iteration_matches_hyperstyles(world):
    G, path, w_path = world
    model = load_hyperstyle(path, device="cpu")
    w_enc = load_encoder(w_path, device="cpu")
    assert w_enc.kind == "w"
    with torch.no_grad():
        photo = G.synthesize(G.mapping_forward(G.z_from_seed(7), truncation_psi=0.5))
    result = hyperstyle_invert(model, w_enc, G, photo, n_iters=3)
    # HyperStyle's own loop, from the checkpoint's tensors
    ckpt = torch.load(path, weights_only=True)
    sd = {k[len("hypernet.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("hypernet.")}
    x = F.interpolate(photo, size=(256, 256), mode="bilinear", align_corners=False, antialias=True)
    codes = w_enc.net(x) + ckpt["latent_avg"][None]
    torch.testing.assert_close(result.ws, codes)
    y = F.adaptive_avg_pool2d(G.synthesize(codes, noise_mode="const"), (256, 256))
    total = None
    for step in range(3):
        out = reference_offsets(sd, torch.cat([x, y], dim=1), model.table)
        total = out if total is None else [t + o if t is not None else None for t, o in zip(total, out, strict=True)]
        img = reference_draw(G, codes, total)
        torch.testing.assert_close(result.reconstructions[step], img, atol=1e-4, rtol=1e-3, msg=f"pass {step}")
        y = F.adaptive_avg_pool2d(img, (256, 256))
    named = {t.name for t, d in zip(model.table, total, strict=True) if d is not None}
    assert set(result.offsets[-1]) == named


def test_damaged_or_foreign_checkpoints_are_one_line(world, tmp_path):
    _, path, _ = world
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["hypernet.refinement_blocks.2.hypernet.w1"] = (
        ckpt["state_dict"]["hypernet.refinement_blocks.2.hypernet.w1"] + 1
    )
    torch.save(ckpt, tmp_path / "alias.pt")
    refused_by(lambda: load_hyperstyle(tmp_path / "alias.pt"), match="differs from the shared", error=CheckpointError)
    ckpt = torch.load(path, weights_only=True)
    ckpt["opts"]["layers_to_tune"] = "0,2,3"
    torch.save(ckpt, tmp_path / "opts.pt")
    refused_by(lambda: load_hyperstyle(tmp_path / "opts.pt"), match="layers_to_tune", error=CheckpointError)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["state_dict"]["hypernet.refinement_blocks.14.output.1.bias"]
    torch.save(ckpt, tmp_path / "missing.pt")
    refused_by(lambda: load_hyperstyle(tmp_path / "missing.pt"), match="do not fit", error=CheckpointError)
    torch.save({"state_dict": {"encoder.x": torch.zeros(1)}}, tmp_path / "e4e.pt")
    refused_by(lambda: load_hyperstyle(tmp_path / "e4e.pt"), match="not a HyperStyle checkpoint", error=CheckpointError)
    refused_by(lambda: load_hyperstyle(tmp_path / "nothing.pt"), error=styleclip.StyleclipError)
