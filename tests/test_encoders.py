"""e4e and ReStyle-e4e: tiny checkpoints written in the official layouts load and behave as the originals."""

from __future__ import annotations

import pytest
import torch

from styleclip import CheckpointError, UsageError
from styleclip.inversion.encoders import load_encoder
from styleclip.nets.encoders import IRSE50, IRSEEncoder, ResNetEncoder
from styleclip.nets.stylegan2 import Generator, GeneratorConfig, MappingConfig, SynthesisConfig

from checkpoint_writers import randomize, rosinality_state_dict

TINY_IRSE = [(16, 16, 1), (16, 32, 2), (32, 48, 2), (48, 64, 1)]  # 64-wide codes, four stages like IR-SE50
TINY_RESNET = [(16, 16, 1), (16, 32, 1), (32, 48, 1), (48, 64, 1)]


def tiny_generator_w64(seed: int = 0) -> Generator:
    cfg = GeneratorConfig(
        z_dim=64, w_dim=64, img_resolution=32, img_channels=3, mapping=MappingConfig(num_layers=2),
        synthesis=SynthesisConfig(channel_base=512, channel_max=32),
    )  # fmt: skip
    return randomize(Generator(cfg), seed).eval().requires_grad_(False)


def write_checkpoint(path, net, G, latent_avg_rows: bool = True, extra: dict | None = None):
    """The official dict: state_dict with encoder.* and decoder.* (rosinality), opts as a plain dict, latent_avg."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    state = {f"encoder.{k}": v for k, v in net.state_dict().items()}
    state |= {f"decoder.{k}": v for k, v in rosinality_state_dict(G).items()}
    avg = G.w_avg.clone()
    ckpt = {
        "state_dict": state,
        "opts": {
            "encoder_type": type(net).__name__,
            "output_size": 32,
            "start_from_latent_avg": True,
            "device": "cuda:0",
        },
        "latent_avg": avg.repeat(G.num_ws, 1) if latent_avg_rows else avg,
        **(extra or {}),
    }
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def G():
    return tiny_generator_w64()


def test_published_sizes_have_the_published_key_layout():
    e4e = IRSEEncoder(18)
    keys = set(e4e.state_dict())
    assert len(keys) == 621 and "latlayer1.weight" in keys and "styles.17.convs.10.weight" in keys
    assert e4e.state_dict()["body.3.shortcut_layer.0.weight"].shape == (128, 64, 1, 1)
    restyle = IRSEEncoder(18, input_nc=6, fpn=False)
    assert len(restyle.state_dict()) == 565 and restyle.state_dict()["input_layer.0.weight"].shape == (64, 6, 3, 3)
    resnet = ResNetEncoder(16)
    sd = resnet.state_dict()
    assert len(sd) == 377 and sd["conv1.weight"].shape == (64, 6, 7, 7) and "body.13.downsample.0.weight" in sd
    assert IRSE50[2] == (128, 256, 14)


def test_e4e_checkpoint_loads_and_encodes(tmp_path, G):
    net = IRSEEncoder(G.num_ws, 3, True, TINY_IRSE, stem=16)
    path = write_checkpoint(tmp_path / "e4e.pt", net, G)
    enc = load_encoder(path, device="cpu")
    assert enc.kind == "e4e" and enc.latent_avg.shape == (G.num_ws, 64)
    photo = torch.rand(2, 3, 64, 64) * 2 - 1
    from styleclip.inversion.encoders import encode

    [ws] = encode(enc, enc.generator, photo)
    assert ws.shape == (2, G.num_ws, 64)
    x = torch.nn.functional.interpolate(photo, size=256, mode="bilinear", antialias=True)
    torch.testing.assert_close(ws, net.eval()(x) + G.w_avg)  # codes + latent_avg, as pSp adds it
    with torch.no_grad():  # the decoder came back from the rosinality layout exactly
        torch.testing.assert_close(enc.generator.synthesize(ws), G.synthesize(ws), atol=1e-5, rtol=0)


@pytest.mark.parametrize("backbone", ["irse", "resnet"])
def test_restyle_feeds_each_step_the_photo_and_the_previous_reconstruction(tmp_path, G, backbone):
    from styleclip.inversion.encoders import encode

    if backbone == "irse":
        net = IRSEEncoder(G.num_ws, 6, False, TINY_IRSE, stem=16)
    else:
        net = ResNetEncoder(G.num_ws, 6, TINY_RESNET, stem=16)
    path = write_checkpoint(tmp_path / "restyle.pt", net, G, latent_avg_rows=False, extra={"global_step": 1})
    enc = load_encoder(path, device="cpu")
    assert enc.kind == "restyle" and type(enc.net) is type(net)
    seen = []
    enc.net.register_forward_hook(lambda m, inputs, out: seen.append((inputs[0].clone(), out.clone())))
    photo = torch.rand(1, 3, 256, 256) * 2 - 1
    steps = encode(enc, enc.generator, photo, steps=3)
    assert len(steps) == 3 and len(seen) == 3
    pool = torch.nn.functional.adaptive_avg_pool2d
    with torch.no_grad():
        expected_y = pool(G.synthesize(G.w_avg[None, None].expand(1, G.num_ws, -1)), 256)
        for k, (inp, out) in enumerate(seen):
            assert inp.shape == (1, 6, 256, 256)
            torch.testing.assert_close(inp[:, :3], photo)
            torch.testing.assert_close(inp[:, 3:], expected_y, atol=1e-5, rtol=0)
            previous = G.w_avg.expand(1, G.num_ws, -1) if k == 0 else steps[k - 1]
            torch.testing.assert_close(steps[k], out + previous)
            expected_y = pool(G.synthesize(steps[k]), 256)


def test_bad_encoder_files(tmp_path, G):
    torch.save({"state_dict": {"encoder.nothing": torch.zeros(1)}}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_encoder(tmp_path / "bad.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not an e4e"):
        load_encoder(tmp_path / "text.pt")
    net = IRSEEncoder(G.num_ws, 3, True, TINY_IRSE, stem=16)
    enc = load_encoder(write_checkpoint(tmp_path / "e4e.pt", net, G), device="cpu")
    from styleclip.inversion.encoders import encode
    from styleclip.nets.stylegan2 import Generator as _G

    other = _G(GeneratorConfig(z_dim=64, w_dim=64, img_resolution=64, mapping=MappingConfig(num_layers=1),
                               synthesis=SynthesisConfig(channel_base=512, channel_max=32)))  # fmt: skip
    with pytest.raises(UsageError, match="W\\+ rows"):
        encode(enc, other, torch.zeros(1, 3, 64, 64))
