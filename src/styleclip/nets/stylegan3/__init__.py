"""StyleGAN3 (alias-free, configs T and R) in pure PyTorch: the generator and its configuration."""

from .config import GeneratorConfig3, SynthesisConfig3
from .generator import Generator3, make_transform

__all__ = ["Generator3", "GeneratorConfig3", "SynthesisConfig3", "make_transform"]
