"""StyleGAN2 in pure PyTorch: the generator and its configuration."""

from .config import GeneratorConfig, MappingConfig, SynthesisConfig
from .generator import Generator
from .synthesis import StyleLayer

__all__ = ["Generator", "GeneratorConfig", "MappingConfig", "StyleLayer", "SynthesisConfig"]
