"""Tiny random generators for the tests: every fixture is built here, nothing is downloaded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from styleclip.nets.stylegan2 import Generator, GeneratorConfig, MappingConfig, SynthesisConfig

from checkpoint_writers import randomize

torch.set_num_threads(min(2, torch.get_num_threads()))


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


@pytest.fixture
def tiny_G() -> Generator:
    return tiny_generator()
