"""Write tiny generators in the official file formats, byte-for-byte the way the official code pickles them.

- NVIDIA stylegan2-ada-pytorch: ``pickle.dump`` of ``{'G', 'D', 'G_ema', 'augment_pipe',
  'training_set_kwargs'}``, every network a ``torch_utils.persistence`` record (``meta`` with
  ``type/version/module_src/class_name/state``, the state being the module's ``__dict__`` with
  ``_init_args``/``_init_kwargs``), tensors through torch's own pickling (``_rebuild_parameter``,
  ``_rebuild_tensor_v2``, ``torch.storage._load_from_bytes``), NumPy float64 scalars for gains and
  ``dnnlib.util.EasyDict`` for keyword dicts, with the NumPy 1.x global names the released files have.
- TensorFlow StyleGAN2: ``pickle.dump((G, D, Gs))`` (protocol 3) of ``dnnlib.tflib.network.Network``
  objects whose state holds ``static_kwargs``, ``components`` and ``variables`` as NumPy arrays.
- rosinality: ``torch.save({'g_ema': state_dict, 'latent_avg': w_avg})``.

The stand-in classes live in throw-away modules named like the originals only while pickling; the
loader under test never imports them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from styleclip.nets.stylegan2 import Generator

FAKE_MODULE_SRC = "# (source of training/networks.py would be embedded here; the loader must never run it)\n"


@contextlib.contextmanager
def fake_modules(**modules: dict):
    """Temporarily register modules ``name -> {attr: obj}`` so pickle can name our stand-ins."""
    added = []
    for dotted, attrs in modules.items():
        parts = dotted.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        mod = sys.modules[dotted]
        for attr, obj in attrs.items():
            setattr(mod, attr, obj)
            obj.__module__ = dotted
            obj.__qualname__ = attr
    try:
        yield
    finally:
        for name in reversed(added):
            sys.modules.pop(name, None)


class EasyDict(dict):
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _reconstruct_persistent_obj(meta):  # never called: the loader must not import it
    raise AssertionError("the loader imported torch_utils.persistence")


class Persistent:
    """Pickles exactly as a ``@persistence.persistent_class`` instance does."""

    def __init__(self, class_name: str, state: dict, module_src: str = FAKE_MODULE_SRC):
        self.meta = dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state)

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,), None)


def _plain_attrs(module: torch.nn.Module) -> dict:
    out = {}
    for key, value in vars(module).items():
        if key in ("_parameters", "_buffers", "_modules") or key.startswith("_"):
            continue
        if isinstance(value, bool | int | str | type(None)):
            out[key] = value
        elif isinstance(value, float):
            out[key] = np.float64(value)  # the official code computes gains with np.sqrt
    return out


def _module_state(module: torch.nn.Module, init_kwargs: dict, children: dict) -> dict:
    state = {
        "training": False,
        "_parameters": OrderedDict((k, v) for k, v in module._parameters.items()),
        "_buffers": OrderedDict((k, v) for k, v in module._buffers.items()),
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": OrderedDict(),
        "_forward_hooks": OrderedDict(),
        "_forward_pre_hooks": OrderedDict(),
        "_state_dict_hooks": OrderedDict(),
        "_load_state_dict_pre_hooks": OrderedDict(),
        "_modules": OrderedDict(children),
        "_init_args": (),
        "_init_kwargs": init_kwargs,
    }
    state.update(_plain_attrs(module))
    return state


def _record(module: torch.nn.Module, init_kwargs: dict | None = None) -> Persistent:
    children = {name: _record(child) for name, child in module._modules.items()}
    kwargs = init_kwargs if init_kwargs is not None else _guess_init_kwargs(module)
    return Persistent(type(module).__name__, _module_state(module, kwargs, children))


def _guess_init_kwargs(module: torch.nn.Module) -> dict:
    keys = ("in_features", "out_features", "in_channels", "out_channels", "resolution", "activation")
    return {k: getattr(module, k) for k in keys if hasattr(module, k)}


def official_init_kwargs(G: Generator) -> dict:
    cfg = G.config
    return dict(
        z_dim=cfg.z_dim,
        w_dim=cfg.w_dim,
        mapping_kwargs=EasyDict(num_layers=cfg.mapping.num_layers),
        synthesis_kwargs=EasyDict(
            channel_base=cfg.synthesis.channel_base,
            channel_max=cfg.synthesis.channel_max,
            num_fp16_res=cfg.synthesis.num_fp16_res,
            conv_clamp=cfg.synthesis.conv_clamp,
        ),
        c_dim=cfg.c_dim,
        img_resolution=cfg.img_resolution,
        img_channels=cfg.img_channels,
    )


def _tiny_discriminator() -> torch.nn.Module:
    D = torch.nn.Module()
    D.b4 = torch.nn.Module()
    D.b4.conv = torch.nn.Conv2d(3, 4, 3)
    return D


def nvidia_pickle_bytes(G: Generator, G_train: Generator | None = None, module_src: str = FAKE_MODULE_SRC) -> bytes:
    """The bytes of a stylegan2-ada-pytorch ``network-snapshot-*.pkl`` holding ``G`` as ``G_ema``."""
    G_train = G_train or G
    kwargs = official_init_kwargs(G)

    def gen_record(net: Generator) -> Persistent:
        rec = _record(net, kwargs)
        rec.meta["module_src"] = module_src
        return rec

    return _snapshot_bytes(gen_record(G_train), gen_record(G))


def _snapshot_bytes(G_record: Persistent, G_ema_record: Persistent) -> bytes:
    """A training snapshot ``{G, D, G_ema, augment_pipe, training_set_kwargs}`` pickled as the official code does."""
    snapshot = dict(
        G=G_record,
        D=Persistent("Discriminator", _module_state(_tiny_discriminator(), {"c_dim": 0}, {})),
        G_ema=G_ema_record,
        augment_pipe=None,
        training_set_kwargs=EasyDict(class_name="training.dataset.ImageFolderDataset", path="~/datasets/x.zip"),
    )
    with fake_modules(
        **{
            "torch_utils.persistence": {"_reconstruct_persistent_obj": _reconstruct_persistent_obj},
            "dnnlib.util": {"EasyDict": EasyDict},
        }
    ):
        data = pickle.dumps(snapshot, protocol=3)
    # The released files were written with NumPy 1.x, whose scalars live in numpy.core.
    return data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_nvidia_pickle(G: Generator, path: Path, **kwargs) -> Path:
    path.write_bytes(nvidia_pickle_bytes(G, **kwargs))
    return path


# -- NVIDIA stylegan3 repository: StyleGAN3 networks, and StyleGAN2 with flat synthesis arguments ---------------

# Our StyleGAN3 classes carry a suffix; the pickles name NVIDIA's classes.
_SG3_CLASS_NAMES = {
    "Generator3": "Generator",
    "SynthesisNetwork3": "SynthesisNetwork",
    "SynthesisLayer3": "SynthesisLayer",
}


def _record_renamed(module: torch.nn.Module, init_kwargs: dict | None = None) -> Persistent:
    children = {name: _record_renamed(child) for name, child in module._modules.items()}
    kwargs = init_kwargs if init_kwargs is not None else _guess_init_kwargs(module)
    name = type(module).__name__
    return Persistent(_SG3_CLASS_NAMES.get(name, name), _module_state(module, kwargs, children))


def stylegan3_init_kwargs(G) -> dict:
    """``training.networks_stylegan3.Generator`` keyword arguments of a :class:`Generator3` (synthesis flat)."""
    cfg = G.config
    kwargs = dict(
        z_dim=cfg.z_dim,
        w_dim=cfg.w_dim,
        mapping_kwargs=EasyDict(num_layers=cfg.mapping.num_layers),
        c_dim=cfg.c_dim,
        img_resolution=cfg.img_resolution,
        img_channels=cfg.img_channels,
    )
    kwargs.update(dataclasses.asdict(cfg.synthesis))
    return kwargs


def stylegan3_repo_pickle_bytes(G, init_kwargs: dict | None = None, class_name: str | None = None) -> bytes:
    """A stylegan3-repository ``network-snapshot-*.pkl``: ``G`` a :class:`Generator3`, or a StyleGAN2
    :class:`Generator` as ``training.networks_stylegan2`` there pickles it (synthesis arguments flat)."""
    if init_kwargs is None:
        if hasattr(G.synthesis, "input"):
            init_kwargs = stylegan3_init_kwargs(G)
        else:
            init_kwargs = official_init_kwargs(G)
            init_kwargs.update(init_kwargs.pop("synthesis_kwargs"), fused_modconv_default="inference_only")
    record = _record_renamed(G, init_kwargs)
    if class_name is not None:
        record.meta["class_name"] = class_name
    return _snapshot_bytes(record, record)


# -- TensorFlow ------------------------------------------------------------------------------------


class Network:
    """Stand-in for ``dnnlib.tflib.network.Network``: pickles its state dict like the original."""

    def __init__(self, name: str, static_kwargs: dict, variables: list, components: dict | None = None):
        self._state = dict(
            version=4,
            name=name,
            static_kwargs=static_kwargs,
            components=components or {},
            build_module_src="# TF network source would be here; never run\n",
            build_func_name=f"{name}_func",
            variables=variables,
        )

    def __getstate__(self):
        return self._state


def tf_variables(G: Generator) -> tuple[list, list, list]:
    """Our weights in TF layout: (top-level vars, mapping vars, synthesis vars)."""
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in G.state_dict().items()}
    top = [("dlatent_avg", sd["mapping.w_avg"])]
    mapping = []
    for i in range(G.mapping.num_layers):
        mapping += [
            (f"Dense{i}/weight", sd[f"mapping.fc{i}.weight"].T),
            (f"Dense{i}/bias", sd[f"mapping.fc{i}.bias"]),
        ]
    if G.c_dim:
        mapping += [
            ("LabelEmbed/weight", sd["mapping.embed.weight"].T),
            ("LabelEmbed/bias", sd["mapping.embed.bias"]),
        ]
    synthesis = []
    noise_idx = 0
    for res in G.synthesis.block_resolutions:
        block = f"synthesis.b{res}"
        if res == 4:
            synthesis.append(("4x4/Const/const", sd[f"{block}.const"][None]))
        layers = [("conv1", "Conv")] if res == 4 else [("conv0", "Conv0_up"), ("conv1", "Conv1")]
        for ours, tf in layers:
            p = f"{block}.{ours}"
            w = sd[f"{p}.weight"]
            if tf == "Conv0_up":
                w = w[:, :, ::-1, ::-1]
            synthesis += [
                (f"{res}x{res}/{tf}/weight", np.ascontiguousarray(w.transpose(2, 3, 1, 0))),
                (f"{res}x{res}/{tf}/mod_weight", sd[f"{p}.affine.weight"].T),
                (f"{res}x{res}/{tf}/mod_bias", sd[f"{p}.affine.bias"] - 1),
                (f"{res}x{res}/{tf}/noise_strength", sd[f"{p}.noise_strength"]),
                (f"{res}x{res}/{tf}/bias", sd[f"{p}.bias"]),
            ]
            synthesis.append((f"noise{noise_idx}", sd[f"{p}.noise_const"][None, None]))
            noise_idx += 1
        p = f"{block}.torgb"
        synthesis += [
            (f"{res}x{res}/ToRGB/weight", np.ascontiguousarray(sd[f"{p}.weight"].transpose(2, 3, 1, 0))),
            (f"{res}x{res}/ToRGB/mod_weight", sd[f"{p}.affine.weight"].T),
            (f"{res}x{res}/ToRGB/mod_bias", sd[f"{p}.affine.bias"] - 1),
            (f"{res}x{res}/ToRGB/bias", sd[f"{p}.bias"]),
        ]
    return top, mapping, synthesis


def tf_pickle_bytes(G: Generator) -> bytes:
    """The bytes of an original TF ``stylegan2-*.pkl`` (``(G, D, Gs)``) holding ``G`` as ``Gs``."""
    cfg = G.config
    static = dict(
        num_channels=cfg.img_channels,
        resolution=cfg.img_resolution,
        label_size=cfg.c_dim,
        latent_size=cfg.z_dim,
        dlatent_size=cfg.w_dim,
        mapping_layers=cfg.mapping.num_layers,
        fmap_base=cfg.synthesis.channel_base // 2,
        fmap_max=cfg.synthesis.channel_max,
        truncation_psi=0.5,
    )
    top, mapping, synthesis = tf_variables(G)

    def gen(name: str) -> Network:
        comps = {
            "mapping": Network("G_mapping", dict(static), mapping),
            "synthesis": Network("G_synthesis", dict(static), synthesis),
        }
        return Network(name, dict(static), top, comps)

    D = Network(
        "D",
        dict(num_channels=3, resolution=cfg.img_resolution),
        [("4x4/Dense0/weight", np.zeros((2, 2), np.float32))],
    )
    with fake_modules(**{"dnnlib.tflib.network": {"Network": Network}}):
        data = pickle.dumps((gen("G"), D, gen("Gs")), protocol=3)
    return data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


# -- rosinality ------------------------------------------------------------------------------------


def rosinality_state_dict(G: Generator) -> dict[str, torch.Tensor]:
    """Our weights in rosinality/stylegan2-pytorch's ``Generator.state_dict()`` layout."""
    sd = {k: v.detach().clone() for k, v in G.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for i in range(G.mapping.num_layers):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.bias"]
    out["input.input"] = sd["synthesis.b4.const"][None]
    kernel = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64 * 4

    def conv(src: str, dst: str, up: bool = False):
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.noise.weight"] = sd[f"{src}.noise_strength"].reshape(1)
        out[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        if up:
            out[f"{dst}.conv.blur.kernel"] = kernel.clone()

    def rgb(src: str, dst: str, up: bool):
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(1, -1, 1, 1)
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        if up:
            out[f"{dst}.upsample.kernel"] = kernel.clone()

    conv("synthesis.b4.conv1", "conv1")
    rgb("synthesis.b4.torgb", "to_rgb1", up=False)
    out["noises.noise_0"] = sd["synthesis.b4.conv1.noise_const"][None, None]
    for j, res in enumerate(G.synthesis.block_resolutions[1:]):
        conv(f"synthesis.b{res}.conv0", f"convs.{2 * j}", up=True)
        conv(f"synthesis.b{res}.conv1", f"convs.{2 * j + 1}")
        rgb(f"synthesis.b{res}.torgb", f"to_rgbs.{j}", up=True)
        out[f"noises.noise_{2 * j + 1}"] = sd[f"synthesis.b{res}.conv0.noise_const"][None, None]
        out[f"noises.noise_{2 * j + 2}"] = sd[f"synthesis.b{res}.conv1.noise_const"][None, None]
    return out


def write_rosinality(G: Generator, path: Path, latent_avg: bool = True) -> Path:
    ckpt = {"g_ema": rosinality_state_dict(G)}
    if latent_avg:
        ckpt["latent_avg"] = G.mapping.w_avg.detach().clone()
    torch.save(ckpt, path)
    return path


def randomize(G: Generator, seed: int = 0) -> Generator:
    """Random values in every parameter and buffer (the zero-initialised biases and noise strengths
    would otherwise hide conversion mistakes); filters stay as they are."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(G.named_parameters()) + list(G.named_buffers()):
            if name.endswith(("resample_filter", "up_filter", "down_filter", "input.transform")):
                continue
            noise = torch.randn(t.shape, generator=gen)
            if name.endswith("magnitude_ema"):  # a mean square: positive
                t.copy_(0.5 + noise.abs())
            elif name.endswith("affine.bias"):
                t.copy_(1 + 0.3 * noise)
            elif name.endswith(("noise_strength", ".bias")):
                t.copy_(0.3 * noise)
            elif name.endswith("w_avg"):
                t.copy_(0.5 * noise)
            else:
                t.copy_(noise)
    return G


def tiny_config_kwargs(resolution: int = 32, c_dim: int = 0, **synthesis) -> dict:
    base = dict(channel_base=resolution * 16, channel_max=32)
    base.update(synthesis)
    return dict(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=resolution, img_channels=3, n_mlp=2, synthesis=base)


__all__ = ["math"]
