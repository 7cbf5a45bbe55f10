"""styleclip: edit pictures with words.

A StyleGAN generator draws the image; CLIP judges how well it matches a text prompt; styleclip
moves the latent or style code until it does. The public API lives here:

    import styleclip
    G = styleclip.load_generator("ffhq.pkl")            # any official checkpoint format
    ws = G.mapping_forward(G.z_from_seed(9), truncation_psi=0.7)
    img = G.synthesize(ws)                             # [1, 3, 1024, 1024] in about [-1, 1]
    [result] = styleclip.optimize(G, "a man with a beard", seeds=[9])   # result.image, result.latent
"""

from .adapted import load_adapted
from .benchmark import BenchmarkSettings, run_benchmark
from .edits.base import Edit
from .edits.global_direction import DirectionEdit, GlobalDirection, global_direction
from .edits.mapper import MapperEdit
from .edits.optimize import EditResult, OptimizeConfig, optimize
from .edits.relevance import RelevanceMatrix, load_official_fs3, relevance_matrix, relevance_matrix_gradient
from .errors import CheckpointError, StyleclipError, UsageError
from .evaluation import evaluate
from .guidance.clip import ClipGuide, load_clip
from .guidance.identity import IdentityLoss, load_identity_loss
from .guidance.perceptual import LPIPS, load_lpips
from .hub.generators import load_generator, read_generator_file, save_generator
from .hub.mappers import load_mapper, save_mapper
from .inversion.encoders import Encoder, load_encoder
from .inversion.invert import Inversion, invert, prepare_photo
from .jobs import BatchSpec, run_batch
from .latents import Codes, load_latent
from .nets.mapper import LatentMapper, MapperConfig
from .nets.stylegan2 import Generator, GeneratorConfig, MappingConfig, StyleLayer, SynthesisConfig
from .nets.stylegan3 import Generator3, GeneratorConfig3, SynthesisConfig3, make_transform
from .sample import Sample, parse_seeds, sample
from .stylespace import StyleLayout, StyleStats, style_statistics
from .training.adapt import AdaptConfig, AdaptResult, adapt
from .training.mapper import MapperTrainConfig, train_mapper
from .utils.memory import keep_freed_memory

__version__ = "0.1.0"

__all__ = [
    "LPIPS",
    "AdaptConfig",
    "AdaptResult",
    "BatchSpec",
    "BenchmarkSettings",
    "CheckpointError",
    "ClipGuide",
    "Codes",
    "DirectionEdit",
    "Edit",
    "EditResult",
    "Encoder",
    "Generator",
    "Generator3",
    "GeneratorConfig",
    "GeneratorConfig3",
    "GlobalDirection",
    "IdentityLoss",
    "Inversion",
    "LatentMapper",
    "MapperConfig",
    "MapperEdit",
    "MapperTrainConfig",
    "MappingConfig",
    "OptimizeConfig",
    "RelevanceMatrix",
    "Sample",
    "StyleLayer",
    "StyleLayout",
    "StyleStats",
    "StyleclipError",
    "SynthesisConfig",
    "SynthesisConfig3",
    "UsageError",
    "__version__",
    "adapt",
    "evaluate",
    "global_direction",
    "invert",
    "keep_freed_memory",
    "load_adapted",
    "load_clip",
    "load_encoder",
    "load_generator",
    "load_identity_loss",
    "load_latent",
    "load_lpips",
    "load_mapper",
    "load_official_fs3",
    "make_transform",
    "optimize",
    "parse_seeds",
    "prepare_photo",
    "read_generator_file",
    "relevance_matrix",
    "relevance_matrix_gradient",
    "run_batch",
    "run_benchmark",
    "sample",
    "save_generator",
    "save_mapper",
    "style_statistics",
    "train_mapper",
]
