"""The latent mapper network, its files (StyleCLIP's published layout and ours), pairing checks and Ranger."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import styleclip
from styleclip.errors import CheckpointError, UsageError
from styleclip.hub.mappers import load_mapper, save_mapper
from styleclip.nets.mapper import LatentMapper, MapperConfig, group_rows
from styleclip.training.ranger import Ranger

from checkpoint_writers import write_rosinality
from conftest import tiny_generator
from mapper_writers import random_mapper_weights, write_official_mapper


def reference_edit(weights: dict, ws: torch.Tensor, strength: float = 0.1) -> torch.Tensor:
    """StyleCLIP's LevelsMapper written out: rows 0-3 / 4-7 / 8+, rosinality's PixelNorm over dim 1 of each
    slice, EqualLinear (weight · 0.01/sqrt(in), bias · 0.01 on the features) and leaky ReLU 0.2 times sqrt 2."""
    out = ws.clone()
    for group, (lo, hi) in {"coarse": (0, 4), "medium": (4, 8), "fine": (8, ws.shape[1])}.items():
        if group not in weights:
            continue
        x = ws[:, lo:hi]
        x = x / torch.sqrt((x**2).mean(dim=1, keepdim=True) + 1e-8)
        for w, b in weights[group]:
            x = F.leaky_relu(x @ (w * 0.01 / math.sqrt(w.shape[1])).T + b * 0.01, 0.2) * math.sqrt(2)
        out[:, lo:hi] = ws[:, lo:hi] + strength * x
    return out


@pytest.fixture(scope="module")
def G64():
    return tiny_generator(resolution=64)  # 10 W+ rows: coarse 0-3, medium 4-7, fine 8-9


@pytest.mark.parametrize("groups", [("coarse", "medium", "fine"), ("coarse", "medium")])
def test_official_layout_gives_the_reference_edit(tmp_path, G64, groups):
    weights = random_mapper_weights(G64.w_dim, groups)
    path = write_official_mapper(G64, weights, tmp_path / "mapper.pt")
    mapper = load_mapper(path, device="cpu")
    assert tuple(mapper.rows) == groups and mapper.meta["prompt"] == "mohawk hairstyle"
    assert mapper.meta["source"] == str(path) and mapper.meta["format"] == "styleclip-official"
    ws = G64.mapping_forward(torch.randn(3, G64.z_dim), truncation_psi=0.7)
    expected = reference_edit(weights, ws)
    got = mapper.edit(ws)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.equal(got[:, :8], ws[:, :8])
    if "fine" not in groups:
        assert torch.equal(got[:, 8:], ws[:, 8:])  # no fine_mapping keys: those rows bit-identical
    torch.testing.assert_close(mapper.edit(ws, 1.5), reference_edit(weights, ws, 1.5), rtol=1e-5, atol=1e-4)
    # The embedded rosinality decoder becomes the generator, and it is the network it was written from.
    x = G64.synthesize(ws)
    torch.testing.assert_close(mapper.generator.synthesize(ws), x, rtol=1e-4, atol=1e-4)


def test_pairing_with_a_given_generator(tmp_path, G64):
    path = write_official_mapper(G64, random_mapper_weights(G64.w_dim), tmp_path / "mapper.pt")
    ros = write_rosinality(G64, tmp_path / "same.pt")
    assert load_mapper(path, generator=str(ros), device="cpu").generator.img_resolution == 64
    other = tiny_generator(resolution=64, seed=1)
    with pytest.raises(CheckpointError, match="another generator") as info:
        load_mapper(path, generator=other, device="cpu")
    assert "\n" not in str(info.value)
    assert load_mapper(path, generator=other, device="cpu", check_generator=False).generator is other
    with pytest.raises(CheckpointError, match=r"W\+ \[10, 16\]"):
        load_mapper(path, generator=tiny_generator(), device="cpu", check_generator=False)


def test_native_round_trip_and_fingerprint(tmp_path):
    G = tiny_generator()
    torch.manual_seed(3)
    mapper = LatentMapper(MapperConfig(w_dim=16, num_ws=8, groups=("coarse", "medium"), strength=0.2))
    path = save_mapper(mapper, tmp_path / "m.safetensors", meta={"prompt": "a cat",
                       "generator": {"fingerprint": styleclip.stylespace.generator_fingerprint(G)}})  # fmt: skip
    loaded = load_mapper(path, generator=G, device="cpu")
    ws = G.mapping_forward(torch.randn(2, 16))
    assert loaded.config == mapper.config and loaded.meta["prompt"] == "a cat"
    assert torch.equal(loaded.edit(ws), mapper.edit(ws))
    with pytest.raises(CheckpointError, match="trained with generator"):
        load_mapper(path, generator=tiny_generator(seed=5), device="cpu")
    with pytest.raises(CheckpointError, match="no generator inside"):
        load_mapper(save_mapper(mapper, tmp_path / "bare.safetensors", meta={}), device="cpu")


def test_disabled_groups_leave_their_rows_bit_identical():
    torch.manual_seed(0)
    mapper = LatentMapper(MapperConfig(w_dim=16, num_ws=18, groups=("medium",)))
    assert list(group_rows(18).values()) == [(0, 4), (4, 8), (8, 18)]
    assert list(group_rows(16).values()) == [(0, 4), (4, 8), (8, 16)]  # 512 px: rows grouped by resolution
    ws = torch.randn(4, 18, 16)
    out = mapper.edit(ws)
    assert torch.equal(out[:, :4], ws[:, :4]) and torch.equal(out[:, 8:], ws[:, 8:])
    assert (out[:, 4:8] != ws[:, 4:8]).all()
    with pytest.raises(UsageError, match="W\\+"):
        mapper(torch.randn(1, 16))
    with pytest.raises(UsageError, match="no mapper group"):
        LatentMapper(MapperConfig(w_dim=16, num_ws=8, groups=("fine",)))  # a 32-px generator has no fine rows


def test_bad_files_give_one_line_errors(tmp_path, G64):
    cases = {}
    cases["png"] = tmp_path / "photo.pt"
    cases["png"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    cases["generator"] = write_rosinality(G64, tmp_path / "gen.pt")
    good = write_official_mapper(G64, random_mapper_weights(G64.w_dim), tmp_path / "good.pt")
    cases["truncated"] = tmp_path / "truncated.pt"
    cases["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases["code"] = tmp_path / "code.pt"
    torch.save({"state_dict": {"mapper.x": torch.zeros(1)}, "opts": Ranger}, cases["code"])  # a class: refused
    cases["native generator"] = styleclip.save_generator(G64, tmp_path / "gen.safetensors")
    cases["single mapper"] = tmp_path / "single.pt"
    torch.save({"state_dict": {"mapper.mapping.mapping.1.weight": torch.zeros(4, 4)}}, cases["single mapper"])
    for what, path in cases.items():
        with pytest.raises(CheckpointError) as info:
            load_mapper(path, device="cpu")
        message = str(info.value)
        assert "\n" not in message and str(path) in message, what
    with pytest.raises(CheckpointError, match="no such file"):
        load_mapper(tmp_path / "missing.pt")


def test_the_14_catalogue_mappers_resolve_and_run(tmp_path, monkeypatch):
    from styleclip.hub import registry

    G = tiny_generator()
    official = write_official_mapper(G, random_mapper_weights(G.w_dim, ("coarse", "medium")), tmp_path / "m.pt")
    fetched = []

    def fake_fetch(asset, cache=None, offline=None, progress=True):
        fetched.append(asset.name)
        assert asset.kind == "mapper" and asset.file_format == "styleclip-mapper" and asset.urls
        return official

    monkeypatch.setattr(registry, "fetch", fake_fetch)
    names = [a.name for a in registry.all_assets() if a.kind == "mapper"]
    assert len(names) == 14 and "styleclip-mapper:mohawk" in names
    ws = G.mapping_forward(torch.randn(1, G.z_dim))
    for name in names:
        mapper = load_mapper(name, device="cpu")
        assert mapper.edit(ws).shape == ws.shape
        # The decoder inside is the catalogue's FFHQ: photos get face alignment and e4e, edits an identity score.
        assert mapper.generator.meta["domain"] == "face" and mapper.generator.meta["defaults"]["encoder"] == "e4e:ffhq"
    load_mapper("curly_hair", device="cpu")  # bare names of the published mappers
    assert fetched == [*names, "styleclip-mapper:curly_hair"]


def test_ranger_is_radam_plus_lookahead_plus_centralisation():
    torch.manual_seed(0)
    w0 = torch.randn(5, 3)
    grads = [torch.randn(5, 3) for _ in range(12)]

    def run(opt_factory, k_steps=12):
        p = torch.nn.Parameter(w0.clone())
        opt = opt_factory([p])
        out = []
        for g in grads[:k_steps]:
            p.grad = g.clone()
            opt.step()
            out.append(p.detach().clone())
        return out

    # Without Lookahead and centralisation it is RAdam with StyleCLIP's betas and eps.
    plain = run(lambda ps: Ranger(ps, lr=0.1, k=10**6, centralize=False))
    radam = run(lambda ps: torch.optim.RAdam(ps, lr=0.1, betas=(0.95, 0.999), eps=1e-5))
    for a, b in zip(plain, radam, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    # Lookahead every k = 3 steps: half-way back to the weights of 3 steps before.
    look = run(lambda ps: Ranger(ps, lr=0.1, k=3, centralize=False), 3)
    torch.testing.assert_close(look[2], w0 + 0.5 * (radam[2] - w0))
    # Centralisation: the gradient's per-row mean over the other dimensions is removed first.
    centred = run(lambda ps: Ranger(ps, lr=0.1, k=10**6), 1)
    p = torch.nn.Parameter(w0.clone())
    opt = torch.optim.RAdam([p], lr=0.1, betas=(0.95, 0.999), eps=1e-5)
    p.grad = grads[0] - grads[0].mean(dim=1, keepdim=True)
    opt.step()
    torch.testing.assert_close(centred[0], p.detach())
