"""NVIDIA stylegan3 network pickles (``stylegan3-t-ffhq-1024x1024.pkl``, ...), read without running them.

Same ``torch_utils.persistence`` records as stylegan2-ada-pytorch (see :mod:`.nvidia_pkl`), with the
classes of ``training/networks_stylegan3.py``. The generator's keyword arguments are ``z_dim`` ...
``mapping_kwargs`` plus the synthesis arguments flat; we check every class in the record tree and
every argument, build :class:`~styleclip.nets.stylegan3.Generator3`, and copy every tensor by name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ...errors import CheckpointError
from ...nets.stylegan2 import MappingConfig
from ...nets.stylegan3 import Generator3, GeneratorConfig3, SynthesisConfig3
from .safe_pickle import PersistentRecord
from .state import build_generator, load_exact, numel

_TOP_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")
_MAPPING_KEYS = {"num_layers", "lr_multiplier", "w_avg_beta"}
_SYNTHESIS_KEYS = {f.name for f in dataclasses.fields(SynthesisConfig3)}
# The classes a stylegan3 generator is made of; anything else is not a network we know how to rebuild.
_CLASSES = {
    "Generator",
    "MappingNetwork",
    "FullyConnectedLayer",
    "SynthesisNetwork",
    "SynthesisInput",
    "SynthesisLayer",
}


def is_stylegan3_record(record: PersistentRecord) -> bool:
    """A ``Generator`` record whose synthesis network starts from Fourier features (``input``)."""
    synthesis = record.modules.get("synthesis")
    return isinstance(synthesis, PersistentRecord) and "input" in synthesis.modules


def generator3_from_record(record: PersistentRecord) -> Generator3:
    _check_classes(record, "G")
    config = config3_from_init_kwargs(record.init_args, record.init_kwargs)
    tensors = record.state_dict()
    G = build_generator(config, numel(tensors.values()), "NVIDIA stylegan3 pickle")
    load_exact(G, tensors, source="NVIDIA stylegan3 pickle")
    return G


def config3_from_init_kwargs(args: tuple, kwargs: dict[str, Any]) -> GeneratorConfig3:
    """Turn the official ``Generator(*args, **kwargs)`` arguments into a :class:`GeneratorConfig3`."""
    merged = dict(zip(_TOP_ARGS[:5], args, strict=False))
    merged.update(kwargs)
    mapping = dict(merged.pop("mapping_kwargs", None) or {})
    synthesis = {k: merged.pop(k) for k in list(merged) if k not in _TOP_ARGS}
    unknown = sorted(set(mapping) - _MAPPING_KEYS) + sorted(set(synthesis) - _SYNTHESIS_KEYS)
    if unknown:
        raise CheckpointError(f"unknown StyleGAN3 generator argument(s) {unknown}: not a network styleclip knows")
    try:
        return GeneratorConfig3(
            z_dim=int(merged["z_dim"]),
            c_dim=int(merged["c_dim"]),
            w_dim=int(merged["w_dim"]),
            img_resolution=int(merged["img_resolution"]),
            img_channels=int(merged["img_channels"]),
            mapping=MappingConfig(**{"num_layers": 2, "w_avg_beta": 0.998, **mapping}),
            synthesis=SynthesisConfig3(**synthesis),
        )
    except KeyError as exc:
        raise CheckpointError(f"the generator record lacks the argument {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"the generator's arguments are invalid: {exc}") from None


def _check_classes(record: PersistentRecord, path: str, depth: int = 0) -> None:
    if depth > 8:
        raise CheckpointError("network records nest too deeply (a cycle?)")
    if record.class_name not in _CLASSES:
        raise CheckpointError(
            f"{path} is a {record.class_name!r}, which is not part of a StyleGAN3 generator styleclip knows"
        )
    for name, child in record.modules.items():
        if isinstance(child, PersistentRecord):
            _check_classes(child, f"{path}.{name}", depth + 1)
