"""NVIDIA stylegan2-ada-pytorch and stylegan3 network pickles (``ffhq.pkl``, ...), read without running them.

The file is a pickled dict ``{'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}`` whose
networks are ``torch_utils.persistence`` records. We read the generator's constructor arguments
from its record, build our own :class:`Generator` from them, and copy every tensor by name: our
parameter names are NVIDIA's, so the table is the identity and any mismatch is an error. The stylegan3
repository's StyleGAN2 networks store the synthesis arguments flat; its StyleGAN3 networks are handed to
:mod:`.stylegan3_pkl`.
"""

from __future__ import annotations

from typing import Any

from ...errors import CheckpointError
from ...nets.stylegan2 import Generator, GeneratorConfig, MappingConfig, SynthesisConfig
from .safe_pickle import PersistentRecord
from .state import build_generator, load_exact, numel
from .stylegan3_pkl import generator3_from_record, is_stylegan3_record

_TOP_ARGS = (
    "z_dim",
    "c_dim",
    "w_dim",
    "img_resolution",
    "img_channels",
    "mapping_kwargs",
    "synthesis_kwargs",
)
_MAPPING_KEYS = {
    "num_layers",
    "embed_features",
    "layer_features",
    "activation",
    "lr_multiplier",
    "w_avg_beta",
}
_SYNTHESIS_KEYS = {
    "channel_base",
    "channel_max",
    "num_fp16_res",
    "conv_clamp",
    "architecture",
    "resample_filter",
    "use_noise",
    "activation",
    "kernel_size",
}
# Memory-layout and speed switches of the official code: they do not change the function computed.
_IGNORED_KEYS = {"fp16_channels_last", "channels_last", "fused_modconv_default"}


def is_network_snapshot(data: Any) -> bool:
    return isinstance(data, dict) and any(isinstance(v, PersistentRecord) for v in data.values())


def generator_from_snapshot(data: dict, which: str = "G_ema") -> Generator:
    """Build our generator from an unpickled snapshot dict (see :mod:`.safe_pickle`)."""
    record = data.get(which)
    if record is None and which == "G_ema":
        record = data.get("G")
    if not isinstance(record, PersistentRecord):
        have = sorted(k for k, v in data.items() if isinstance(v, PersistentRecord))
        raise CheckpointError(f"the pickle has no generator {which!r} (networks in it: {have})")
    return generator_from_record(record)


def generator_from_record(record: PersistentRecord) -> Generator:
    if record.class_name != "Generator":
        raise CheckpointError(f"expected a Generator network, found {record.class_name!r}")
    if is_stylegan3_record(record):
        return generator3_from_record(record)
    config = config_from_init_kwargs(record.init_args, record.init_kwargs)
    tensors = record.state_dict()
    G = build_generator(config, numel(tensors.values()), "NVIDIA pickle")
    load_exact(G, tensors, source="NVIDIA pickle")
    return G


def config_from_init_kwargs(args: tuple, kwargs: dict[str, Any]) -> GeneratorConfig:
    """Turn the official ``Generator(*args, **kwargs)`` arguments into a :class:`GeneratorConfig`."""
    merged = dict(zip(_TOP_ARGS, args, strict=False))
    merged.update(kwargs)
    # The stylegan3 repository's networks_stylegan2.Generator takes the synthesis arguments flat.
    flat = {k: merged.pop(k) for k in list(merged) if k not in _TOP_ARGS}
    mapping = dict(merged.get("mapping_kwargs") or {})
    synthesis = {**dict(merged.get("synthesis_kwargs") or {}), **flat}
    _check_keys(mapping, _MAPPING_KEYS, "mapping")
    _check_keys(synthesis, _SYNTHESIS_KEYS, "synthesis")
    if "resample_filter" in synthesis:
        synthesis["resample_filter"] = [float(v) for v in synthesis["resample_filter"]]
    try:
        return GeneratorConfig(
            z_dim=int(merged["z_dim"]),
            c_dim=int(merged["c_dim"]),
            w_dim=int(merged["w_dim"]),
            img_resolution=int(merged["img_resolution"]),
            img_channels=int(merged["img_channels"]),
            mapping=MappingConfig(**mapping),
            synthesis=SynthesisConfig(**synthesis),
        )
    except KeyError as exc:
        raise CheckpointError(f"the generator record lacks the argument {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"the generator's arguments are invalid: {exc}") from None


def _check_keys(kwargs: dict, known: set[str], where: str) -> None:
    for key in list(kwargs):
        if key in _IGNORED_KEYS:
            del kwargs[key]
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise CheckpointError(f"unknown {where} argument(s) {unknown}: not a StyleGAN2 generator styleclip knows")
