"""Tiny random generators for the tests: every fixture is built here, nothing is downloaded."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from styleclip.nets.stylegan2 import Generator, GeneratorConfig, MappingConfig, SynthesisConfig

from checkpoint_writers import randomize

torch.set_num_threads(min(2, torch.get_num_threads()))
# 'auto' precision would be bf16 on CPUs with AMX and fp32 elsewhere: the tests pin fp32 so that they mean the same
# on every machine; the precision tests ask for bf16 explicitly.
os.environ["STYLECLIP_PRECISION"] = "fp32"


def tiny_config(resolution: int = 32, c_dim: int = 0, **synthesis) -> GeneratorConfig:
    """A small generator with every structural feature of the real ones (16-dim W, 2-layer mapping)."""
    syn = dict(channel_base=resolution * 16, channel_max=32)
    syn.update(synthesis)
    return GeneratorConfig(
        z_dim=16,
        c_dim=c_dim,
        w_dim=16,
        img_resolution=resolution,
        img_channels=3,
        mapping=MappingConfig(num_layers=2),
        synthesis=SynthesisConfig(**syn),
    )


def tiny_generator(resolution: int = 32, c_dim: int = 0, seed: int = 0, **synthesis) -> Generator:
    G = Generator(tiny_config(resolution, c_dim, **synthesis))
    return randomize(G, seed).eval().requires_grad_(False)


def varied_generator(seed: int = 2) -> Generator:
    """The tiny generator with a trained-like mapping scale, so that styles (and edits of them) vary."""
    G = tiny_generator(seed=seed)
    for name, p in G.mapping.named_parameters():
        if name.endswith("weight"):
            p.data.mul_(100)
    return G


@pytest.fixture
def tiny_G() -> Generator:
    return tiny_generator()


def tiny_generator3(resolution: int = 16, c_dim: int = 0, seed: int = 0, **synthesis) -> Generator:
    """A small StyleGAN3 generator (16-dim W, 6 layers, 8 channels; config T unless ``conv_kernel=1`` etc.)."""
    from styleclip.nets.stylegan3 import Generator3, GeneratorConfig3, SynthesisConfig3

    syn = dict(channel_base=128, channel_max=8, num_layers=6, num_critical=1, margin_size=4)
    syn.update(synthesis)
    config = GeneratorConfig3(
        z_dim=16,
        c_dim=c_dim,
        w_dim=16,
        img_resolution=resolution,
        img_channels=3,
        mapping=MappingConfig(num_layers=2, w_avg_beta=0.998),
        synthesis=SynthesisConfig3(**syn),
    )
    return randomize(Generator3(config), seed).eval().requires_grad_(False)


@pytest.fixture
def tiny_G3() -> Generator:
    return tiny_generator3()


def tiny_clip() -> torch.nn.Module:
    """A 2-layer, 64-wide CLIP with 32-dim embeddings, in open_clip's OpenAI architecture."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    # OpenAI checkpoints imply 64-wide attention heads; the loader infers the rest from tensor shapes.
    vision = CLIPVisionCfg(layers=2, width=64, patch_size=8, image_size=32, head_width=64)
    text = CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=2)
    return CLIP(embed_dim=32, vision_cfg=vision, text_cfg=text, quick_gelu=True).eval()


def another_tiny_clip(seed: int = 7) -> torch.nn.Module:
    """The tiny CLIP with its weights nudged: another model than the guide, to judge what the guide steered."""
    model = tiny_clip()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return model


def save_torchscript_clip(model: torch.nn.Module, path: Path) -> Path:
    """``model`` traced and saved as OpenAI's JIT archives are (the loader reads them without running them)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(
            model, (torch.randn(1, 3, 32, 32), torch.zeros(1, 77, dtype=torch.long)), check_trace=False
        )
        torch.jit.save(traced, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_clip_file(tmp_path_factory) -> Path:
    """The tiny CLIP saved as OpenAI's state dict: it loads through the path a real ViT-B/32 file takes."""
    path = tmp_path_factory.mktemp("clip") / "tiny-openai-state.pt"
    torch.save(tiny_clip().state_dict(), path)
    return path


def tiny_lpips_model(net: str = "vgg", **kwargs):
    """LPIPS with random (non-negative) calibration on AlexNet's layout: a stand-in for ``load_lpips``."""
    from styleclip.guidance import perceptual

    torch.manual_seed(0)
    model = perceptual.LPIPS("alex", max_size=None)
    with torch.no_grad():
        for lin in model.lins:
            lin.weight.abs_()
    return model


@pytest.fixture
def tiny_lpips(monkeypatch):
    """LPIPS with random (non-negative) calibration, in place of the 528 MB download."""
    from styleclip.guidance import perceptual

    monkeypatch.setattr(perceptual, "load_lpips", tiny_lpips_model)


@pytest.fixture
def session(studio, tmp_path):
    """A UI session (the requesting module's ``studio``) whose source is seed 3, closed afterwards."""
    from styleclip.ui.session import EditSession

    s = EditSession(studio, tmp_path)
    s.from_seed(3)
    yield s
    s.close()


@pytest.fixture
def one_thread():
    """Tiny networks gain nothing from a second thread, and lose much to a busy machine's scheduling."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
