"""HyperStyle: the published checkpoint layout, the hyper-network's offsets, the drawing with ``W * (1 + Δ)`` and the
iteration, against HyperStyle's forward pass written from the state dict (tests/hyperstyle_writers.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

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

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest.one_thread


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


def test_crafted_shapes_and_latent_avg_are_one_line_before_any_allocation(world, tmp_path):
    """A zero-size tensor costs nothing in the file but declares any size: the network is sized from such shapes only
    after they are checked, so the load is refused well inside the memory bound instead of allocating terabytes."""
    _, path, _ = world
    crafted = {
        "hypernet.shared_weight_hypernet.w1": torch.zeros(70000, 0),
        "hypernet.refinement_blocks.0.convs.0.weight": torch.zeros(100000, 0, 3, 3),
        "hypernet.body.0.conv1.weight": torch.zeros(100000, 100000, 0, 3),
    }
    for i, (key, value) in enumerate(crafted.items()):
        ckpt = torch.load(path, weights_only=True)
        ckpt["state_dict"][key] = value
        torch.save(ckpt, tmp_path / f"shape{i}.pt")
        refused_by(lambda i=i: load_hyperstyle(tmp_path / f"shape{i}.pt"), match="needs", error=CheckpointError)
    for i, avg in enumerate(["x", torch.tensor(1.0), torch.zeros(3, 16)]):
        ckpt = torch.load(path, weights_only=True)
        ckpt["latent_avg"] = avg
        torch.save(ckpt, tmp_path / f"avg{i}.pt")
        refused_by(lambda i=i: load_hyperstyle(tmp_path / f"avg{i}.pt"), match="latent_avg", error=CheckpointError)


# -- in styleclip.invert, the CLI and the sources ----------------------------------------------------------------


@pytest.fixture(scope="module")
def photo(tmp_path_factory, world):
    from styleclip.io.images import to_pil

    G = world[0]
    with torch.no_grad():
        img = G.synthesize(G.mapping_forward(G.z_from_seed(11), truncation_psi=0.6))
    path = tmp_path_factory.mktemp("photo") / "me.png"
    to_pil(img)[0].resize((150, 150), Image.Resampling.BICUBIC).save(path)
    return path


def test_invert_with_hyperstyle_applies_the_offsets(world, photo):
    G, path, w_path = world
    inv = styleclip.invert(photo, G, method="hyperstyle", hyperstyle=path, encoder=w_path, lpips="off", align="center")
    assert inv.method == "hyperstyle" and inv.why == "--method hyperstyle"
    assert set(inv.offsets) == {t.name for t in layer_table(G) if t.index in load_hyperstyle(path).net.tune}
    torch.testing.assert_close(inv.reconstruction, draw_with_offsets(G, inv.ws, inv.offsets))
    assert (inv.reconstruction - G.synthesize(inv.ws)).abs().max() > 1e-3  # the offsets change the picture
    assert set(inv.metrics) >= {"psnr", "ms_ssim"} and 0 < inv.metrics["ms_ssim"] <= 1
    with pytest.raises(styleclip.UsageError, match="drop --pti"):
        styleclip.invert(photo, G, method="hyperstyle", hyperstyle=path, encoder=w_path, lpips="off", pti=True)


def test_auto_picks_the_most_faithful_known_inversion(world, monkeypatch):
    from styleclip.inversion import invert as inv_module

    G = world[0]
    G.meta["defaults"] = {"encoder": "e4e:ffhq", "inversions": {"e4e": "e4e:ffhq", "hyperstyle": "hyperstyle:ffhq",
                                                                 "restyle": "restyle-e4e:ffhq"}}  # fmt: skip
    try:
        monkeypatch.setattr(inv_module, "_free_memory", lambda device: 64 * 2**30)
        method, why = inv_module.choose_method(G)
        assert method == "hyperstyle" and "hyperstyle:ffhq" in why and "restyle-e4e:ffhq" in why
        monkeypatch.setattr(inv_module, "_free_memory", lambda device: 2**30)
        method, why = inv_module.choose_method(G)
        assert method == "restyle" and "GiB free" in why
        G.meta["defaults"] = {"encoder": "restyle-e4e:afhqwild"}
        assert inv_module.choose_method(G)[0] == "restyle"
        G.meta["defaults"] = {}
        assert inv_module.choose_method(G) == (
            "project",
            "the catalogue pairs no encoder with this generator, so projection (any generator)",
        )
    finally:
        G.meta.pop("defaults", None)


def test_pivotal_tuning_passes_hyperstyle_over_and_is_refused_with_it_before_loading(world, photo, monkeypatch):
    """--pti (which tunes the weights itself) with auto picks the next inversion instead of running HyperStyle and
    then refusing; with --method hyperstyle it is refused before the model loads."""
    from styleclip.inversion import hyperstyle as hs_module
    from styleclip.inversion import invert as inv_module

    G = world[0]
    G.meta["defaults"] = {"inversions": {"hyperstyle": "hyperstyle:ffhq", "restyle": "restyle-e4e:ffhq"}}
    try:
        monkeypatch.setattr(inv_module, "_free_memory", lambda device: 64 * 2**30)
        assert inv_module.choose_method(G, pti=True)[0] == "restyle"
        G.meta["defaults"] = {"inversions": {"hyperstyle": "hyperstyle:cars"}}
        method, why = inv_module.choose_method(G, pti=True)
        assert method == "project" and "--pti" in why
    finally:
        G.meta.pop("defaults", None)

    def never(*args, **kwargs):
        raise AssertionError("the HyperStyle model was loaded before --pti was refused")

    monkeypatch.setattr(hs_module, "load_hyperstyle", never)
    with pytest.raises(styleclip.UsageError, match="drop --pti"):
        styleclip.invert(photo, G, method="hyperstyle", hyperstyle="hyperstyle:ffhq", lpips="off", pti=True)


def test_the_w_encoder_given_by_path_loads_once(world, photo, monkeypatch):
    from styleclip.inversion import encoders as enc_module

    G, path, w_path = world
    calls = []
    real = enc_module.load_encoder

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(enc_module, "load_encoder", counting)
    monkeypatch.setattr("styleclip.inversion.invert.load_encoder", counting)
    inv = styleclip.invert(photo, G, method="hyperstyle", hyperstyle=path, encoder=w_path, lpips="off", align="center")
    assert inv.offsets and len(calls) == 1


def test_cli_writes_offsets_that_reload_with_the_latent(world, photo, tmp_path, capsys):
    from styleclip.cli.main import main
    from styleclip.hub.generators import save_generator
    from styleclip.sources import from_latent_file

    G, path, w_path = world
    gen = save_generator(G, tmp_path / "g.safetensors")
    out = tmp_path / "inv"
    argv = ["invert", str(photo), "--generator", str(gen), "--method", "hyperstyle", "--hyperstyle", str(path),
            "--encoder", str(w_path), "--steps", "2", "--lpips", "off", "--align", "center", "--outdir", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "with hyperstyle" in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert "offsets.safetensors" in report["outputs"] and report["why"] == "--method hyperstyle"
    src = from_latent_file(G, out / "latent.npy", offsets=out / "offsets.safetensors")
    recon = torch.from_numpy(np.array(Image.open(out / "reconstruction.png")))
    drawn = styleclip.io.images.to_uint8(src.generator.synthesize(src.ws))[0]
    assert (torch.from_numpy(drawn).int() - recon.int()).abs().max() <= 1
    # a re-inversion by another method removes the earlier offsets (they would pass for the new latent's)
    argv_e4e = [*argv[:4], "--method", "project", "--steps", "2", "--lpips", "off", "--align", "center",
                "--outdir", str(out), "--overwrite"]  # fmt: skip
    assert main(argv_e4e) == 0
    assert not (out / "offsets.safetensors").exists()


def test_offsets_are_checked_before_drawing(world, tmp_path):
    from styleclip.inversion.hyperstyle import load_offsets, save_offsets
    from styleclip.stylespace import generator_fingerprint

    G = world[0]
    table = layer_table(G)
    good = {table[0].name: torch.zeros(1, table[0].out_channels, table[0].in_channels, 3, 3)}
    save_offsets(tmp_path / "o.safetensors", good, generator_fingerprint(G))
    assert set(load_offsets(tmp_path / "o.safetensors", G)) == {table[0].name}
    other = hyperstyle_generator(128, seed=5)
    refused_by(lambda: load_offsets(tmp_path / "o.safetensors", other), match="another generator")
    save_offsets(tmp_path / "bad.safetensors", {table[0].name: torch.zeros(1, 2, 2, 3, 3)}, generator_fingerprint(G))
    refused_by(lambda: load_offsets(tmp_path / "bad.safetensors", G), match="does not fit", error=CheckpointError)
    save_offsets(
        tmp_path / "nan.safetensors", {table[0].name: good[table[0].name] * float("nan")}, generator_fingerprint(G)
    )
    refused_by(lambda: load_offsets(tmp_path / "nan.safetensors", G), match="NaN", error=CheckpointError)
    refused_by(lambda: load_offsets(tmp_path / "missing.safetensors", G), match="no such file")
    from styleclip.sources import from_latent_file

    np.save(tmp_path / "two.npy", G.mapping_forward(torch.randn(2, G.z_dim)).numpy())
    refused_by(lambda: from_latent_file(G, tmp_path / "two.npy", offsets=tmp_path / "o.safetensors"), match="2 rows")


def test_offsets_flag_needs_a_latent(capsys):
    from hostile import refused

    refused(["edit", "--generator", "x", "--prompt", "a", "--offsets", "o.safetensors", "--outdir", "o"], capsys,
            match="--offsets go with the --latent")  # fmt: skip


def test_an_adapted_generator_takes_the_offsets_from_128_px(world, photo):
    from styleclip.sources import from_photo

    G, path, w_path = world
    adapted = hyperstyle_generator(128, seed=8)
    adapted.mapping.load_state_dict(G.mapping.state_dict())
    src = from_photo(G, photo, adapted=adapted, method="hyperstyle", hyperstyle=path, encoder=w_path, lpips="off",
                     align="center", steps=1)  # fmt: skip
    assert src.generator.meta["hyperstyle"] == [n for n in sorted(src.inversion.offsets) if ".b128." in n]


def test_batch_draws_each_hyperstyle_photo_with_its_offsets(world, photo, tmp_path, tiny_clip_file):
    from styleclip.cli.main import main
    from styleclip.hub.generators import save_generator
    from styleclip.inversion.hyperstyle import load_offsets
    from styleclip.io.images import to_uint8
    from styleclip.sources import apply_offsets

    G, path, w_path = world
    gen = save_generator(G, tmp_path / "g.safetensors")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "me.png").write_bytes(photo.read_bytes())
    out = tmp_path / "batch"
    argv = ["batch", "--generator", str(gen), "--clip", str(tiny_clip_file), "--device", "cpu", "--images", str(photos),
            "--prompt", "a smiling face", "--method", "optimize", "--steps", "1", "--invert-method", "hyperstyle",
            "--hyperstyle", str(path), "--encoder", str(w_path), "--invert-steps", "2", "--lpips", "off",
            "--outdir", str(out)]  # fmt: skip
    assert main(argv) == 0
    source = out / "sources" / "img-me"
    offsets = load_offsets(source / "offsets.safetensors", G)
    drawer = apply_offsets(G, offsets)
    ws = torch.from_numpy(np.load(source / "latent.npy"))
    [job] = list((out / "jobs").iterdir())
    before = np.array(Image.open(job / "before.png")).astype(int)
    assert np.abs(before - to_uint8(drawer.synthesize(ws))[0].astype(int)).max() <= 1
    assert np.abs(before - to_uint8(G.synthesize(ws))[0].astype(int)).max() > 3  # not the plain generator's
