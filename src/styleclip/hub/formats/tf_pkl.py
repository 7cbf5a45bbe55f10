"""The original TensorFlow StyleGAN2 / StyleGAN2-ADA pickles (``stylegan2-ffhq-config-f.pkl``, ...).

Such a file is a pickled tuple ``(G, D, Gs)`` of ``dnnlib.tflib.network.Network`` objects; each one's
state holds its build arguments (``static_kwargs``) and its variables as NumPy arrays under TF scope
names. We read that state as plain data (see :mod:`.safe_pickle`) - TensorFlow is not needed - and
translate every variable to our (NVIDIA PyTorch) layout: dense weights transposed, conv kernels
from ``[kh, kw, in, out]`` to ``[out, in, kh, kw]``, up-sampling kernels flipped (TF ran them as a
convolution, we run a correlation), and style biases shifted by +1 (TF added the 1 at run time).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np

from ...errors import CheckpointError
from ...nets.stylegan2 import Generator, GeneratorConfig, MappingConfig, SynthesisConfig
from .safe_pickle import TFNetworkRecord
from .state import build_generator, load_exact, numel

# (TF static kwarg, default) for every argument that shapes the network.
_KWARGS = {
    "latent_size": 512,
    "label_size": 0,
    "dlatent_size": 512,
    "resolution": 1024,
    "num_channels": 3,
    "mapping_layers": 8,
    "label_fmaps": None,
    "mapping_fmaps": None,
    "mapping_nonlinearity": "lrelu",
    "mapping_lrmul": 0.01,
    "w_avg_beta": 0.995,
    "fmap_base": 16384,
    "fmap_max": 512,
    "num_fp16_res": 0,
    "conv_clamp": None,
    "architecture": "skip",
    "resample_kernel": [1, 3, 3, 1],
    "use_noise": True,
    "nonlinearity": "lrelu",
}
# Sampling-time and training-time switches that do not change the weights' meaning.
_IGNORED_KWARGS = {
    "truncation_psi",
    "truncation_cutoff",
    "style_mixing_prob",
    "structure",
    "is_template_graph",
    "dlatent_avg_beta",  # the original StyleGAN2's name for w_avg_beta (training only)
}
# Variables that exist only for training.
_IGNORED_VARIABLES = re.compile(r"(.*/)?lod")


def is_tf_snapshot(data: object) -> bool:
    return isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetworkRecord) for n in data)


def generator_from_tf(data: tuple, which: str = "G_ema") -> Generator:
    """Build our generator from an unpickled ``(G, D, Gs)`` tuple; ``G_ema`` means ``Gs``."""
    net = data[2] if which in ("G_ema", "Gs") else data[0]
    if net.version < 4:
        raise CheckpointError(
            f"TensorFlow network version {net.version} is too old (StyleGAN1-era); version >= 4 is needed"
        )
    kw = net.static_kwargs
    unknown = sorted(set(kw) - set(_KWARGS) - _IGNORED_KWARGS)
    if unknown:
        raise CheckpointError(f"unknown TensorFlow generator argument(s) {unknown}: not a StyleGAN2 generator")

    def arg(name: str):
        value = kw.get(name)
        return _KWARGS[name] if value is None else value

    variables = net.variables()
    if "mapping/LabelConcat/weight" in variables:
        raise CheckpointError(
            "a conditional generator of the original (pre-ADA) TensorFlow StyleGAN2, whose label embedding "
            "styleclip does not support; use a StyleGAN2-ADA checkpoint"
        )
    architecture = arg("architecture")
    for name in list(variables):
        m = re.fullmatch(r"ToRGB_lod(\d+)/(.*)", name)
        if m:  # progressive-growing layout: one ToRGB per lod at the top level
            r = int(arg("resolution")) // 2 ** int(m.group(1))
            variables[f"synthesis/{r}x{r}/ToRGB/{m.group(2)}"] = variables.pop(name)
            architecture = "orig"

    config = GeneratorConfig(
        z_dim=int(arg("latent_size")),
        c_dim=int(arg("label_size")),
        w_dim=int(arg("dlatent_size")),
        img_resolution=int(arg("resolution")),
        img_channels=int(arg("num_channels")),
        mapping=MappingConfig(
            num_layers=int(arg("mapping_layers")),
            embed_features=kw.get("label_fmaps"),
            layer_features=kw.get("mapping_fmaps"),
            activation=str(arg("mapping_nonlinearity")),
            lr_multiplier=float(arg("mapping_lrmul")),
            w_avg_beta=float(kw.get("w_avg_beta", kw.get("dlatent_avg_beta", 0.995)) or 1.0),
        ),
        synthesis=SynthesisConfig(
            channel_base=int(arg("fmap_base")) * 2,  # TF indexes channels by stage, we by resolution
            channel_max=int(arg("fmap_max")),
            num_fp16_res=int(arg("num_fp16_res")),
            conv_clamp=kw.get("conv_clamp"),
            architecture=str(architecture),
            resample_filter=[float(v) for v in arg("resample_kernel")],
            use_noise=bool(arg("use_noise")),
            activation=str(arg("nonlinearity")),
        ),
    )
    G = build_generator(config, numel(variables.values()), "TensorFlow pickle")
    used: set[str] = set()

    def var(name: str) -> np.ndarray:
        if name not in variables:
            raise CheckpointError(f"the TensorFlow pickle lacks variable {name!r}")
        used.add(name)
        return np.asarray(variables[name], dtype=np.float32)

    tensors = {}
    for name, buf in G.named_buffers():
        if name.endswith("resample_filter"):
            tensors[name] = buf  # derived from resample_kernel, not stored by TF
    for name, _ in list(G.named_parameters()) + list(G.named_buffers()):
        if name in tensors:
            continue
        fn = _rule(name)
        if fn is None:
            raise CheckpointError(f"no TensorFlow variable is known for {name}")
        tensors[name] = fn(var)

    leftover = sorted(n for n in set(variables) - used if not _IGNORED_VARIABLES.fullmatch(n))
    if leftover:
        raise CheckpointError(f"the TensorFlow pickle has variables styleclip does not know: {leftover[:5]}")
    load_exact(G, tensors, source="TensorFlow pickle")
    return G


def _conv(w: np.ndarray) -> np.ndarray:
    return w.transpose(3, 2, 0, 1)


def _conv_up(w: np.ndarray) -> np.ndarray:
    return w[::-1, ::-1].transpose(3, 2, 0, 1)


def _noise_index(res: int, layer: str) -> int:
    # TF numbers the noise inputs 0, 1, 2, ... over all conv layers from 4x4 upwards.
    return int(math.log2(res)) * 2 - (5 if layer == "conv0" else 4)


def _layer_rules(tf_layer: str, ours: str, res: int) -> dict[str, Callable]:
    scope = f"synthesis/{res}x{res}/{tf_layer}"
    kernel = _conv_up if tf_layer in ("Conv0_up", "Skip") else _conv
    return {
        f"{ours}.weight": lambda v: kernel(v(f"{scope}/weight")),
        f"{ours}.bias": lambda v: v(f"{scope}/bias"),
        f"{ours}.affine.weight": lambda v: v(f"{scope}/mod_weight").T,
        f"{ours}.affine.bias": lambda v: v(f"{scope}/mod_bias") + 1,
        f"{ours}.noise_strength": lambda v: v(f"{scope}/noise_strength"),
    }


def _rule(name: str) -> Callable | None:
    if name == "mapping.w_avg":
        return lambda v: v("dlatent_avg")
    m = re.fullmatch(r"mapping\.(fc(\d+)|embed)\.(weight|bias)", name)
    if m:
        scope = "mapping/LabelEmbed" if m.group(1) == "embed" else f"mapping/Dense{m.group(2)}"
        return (lambda v: v(f"{scope}/weight").T) if m.group(3) == "weight" else (lambda v: v(f"{scope}/bias"))
    if name == "synthesis.b4.const":
        return lambda v: v("synthesis/4x4/Const/const")[0]
    m = re.fullmatch(r"synthesis\.b(\d+)\.(conv0|conv1|torgb|skip)\.(.+)", name)
    if not m:
        return None
    res, layer, leaf = int(m.group(1)), m.group(2), m.group(3)
    if leaf == "noise_const":
        idx = _noise_index(res, layer)
        return lambda v: v(f"synthesis/noise{idx}")[0, 0]
    tf_layer = {"conv0": "Conv0_up", "torgb": "ToRGB", "skip": "Skip"}.get(layer)
    if tf_layer is None:
        tf_layer = "Conv" if res == 4 else "Conv1"
    return _layer_rules(tf_layer, f"synthesis.b{res}.{layer}", res).get(name)
