"""styleclip's own generator format: one ``.safetensors`` file whose metadata holds the JSON config.

Safe (no pickle), memory-mappable and fast to load; every other format converts to it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save as safetensors_bytes

from ...errors import CheckpointError, StyleclipError
from ...nets.stylegan2 import Generator, GeneratorConfig
from ...nets.stylegan3 import Generator3, GeneratorConfig3
from ...utils.files import atomic_write_bytes
from .safetensors_check import read_safetensors
from .state import build_generator, load_exact, numel

FORMAT_TAG = "styleclip.stylegan2"
FORMAT_TAG_SG3 = "styleclip.stylegan3"
_CONFIGS = {FORMAT_TAG: GeneratorConfig, FORMAT_TAG_SG3: GeneratorConfig3}
FORMAT_VERSION = "1"


def save_native(G: Generator, path: str | Path, meta: dict | None = None) -> Path:
    """Write ``G`` (weights in float32, config as JSON metadata) atomically to ``path``."""
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in G.state_dict().items()}
    metadata = {
        "format": FORMAT_TAG_SG3 if isinstance(G, Generator3) else FORMAT_TAG,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(G.config.to_dict()),
        "meta": json.dumps(meta if meta is not None else G.meta, default=str),
    }
    return atomic_write_bytes(Path(path), safetensors_bytes(tensors, metadata=metadata))


def load_native(path: str | Path) -> Generator:
    path = Path(path)
    metadata, tensors = read_safetensors(path)  # sizes and byte ranges checked before the library reads a tensor
    config_class = _CONFIGS.get(metadata.get("format"))
    if config_class is None:
        raise CheckpointError(
            f"{path}: a safetensors file without a styleclip generator config "
            "(convert the original checkpoint with `styleclip convert`)"
        )
    try:
        config = config_class.from_dict(json.loads(metadata["config"]))
        meta = json.loads(metadata.get("meta") or "{}")
    except StyleclipError as exc:
        raise CheckpointError(f"{path}: invalid generator config: {exc}") from None
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise CheckpointError(
            f"{path}: malformed styleclip generator config ({type(exc).__name__}); "
            "re-create it with `styleclip convert`"
        ) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: malformed styleclip metadata")
    G = build_generator(config, numel(tensors.values()), str(path))
    load_exact(G, tensors, source=str(path))
    G.meta.update(meta)
    return G
