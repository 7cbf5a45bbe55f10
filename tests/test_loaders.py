"""Every checkpoint format, written by the tests in its official layout, loads into the same generator."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import styleclip
from styleclip import CheckpointError
from styleclip.hub.formats.safe_pickle import UnsafePickleError, restricted_load

from checkpoint_writers import (
    Persistent,
    _reconstruct_persistent_obj,
    fake_modules,
    nvidia_pickle_bytes,
    tf_pickle_bytes,
    write_nvidia_pickle,
    write_rosinality,
)
from conftest import tiny_generator


def same_image(G1, G2, seeds=(0, 1), c=None, atol=0.0):
    ws = G1.mapping_forward(G1.z_from_seed(list(seeds)), c, truncation_psi=0.7)
    ws2 = G2.mapping_forward(G2.z_from_seed(list(seeds)), c, truncation_psi=0.7)
    torch.testing.assert_close(ws2, ws, rtol=0, atol=atol)
    torch.testing.assert_close(G2.synthesize(ws), G1.synthesize(ws), rtol=0, atol=atol)


def test_nvidia_pickle_loads_g_ema_and_g(tmp_path):
    G_ema, G_train = tiny_generator(seed=1), tiny_generator(seed=2)
    path = write_nvidia_pickle(G_ema, tmp_path / "network-snapshot-000100.pkl", G_train=G_train)
    loaded = styleclip.load_generator(path, device="cpu")
    assert loaded.meta["format"] == "stylegan2-ada-pytorch"
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    same_image(G_ema, loaded)
    same_image(G_train, styleclip.load_generator(path, device="cpu", which="G"))


def test_nvidia_pickle_conditional_with_clamp_and_fp16(tmp_path):
    G = tiny_generator(c_dim=3, conv_clamp=256, num_fp16_res=2)
    loaded = styleclip.load_generator(write_nvidia_pickle(G, tmp_path / "c.pkl"), device="cpu")
    assert loaded.config == G.config
    same_image(G, loaded, c=G.label(2, batch=2))


def test_nvidia_pickle_uses_the_released_files_globals():
    data = nvidia_pickle_bytes(tiny_generator())
    names = set()
    for op, arg, _ in __import__("pickletools").genops(data):
        if op.name == "GLOBAL":
            names.add(arg.replace(" ", "."))
    assert names == {
        "torch_utils.persistence._reconstruct_persistent_obj",
        "collections.OrderedDict",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_tensor_v2",
        "torch.storage._load_from_bytes",
        "numpy.core.multiarray.scalar",
        "numpy.dtype",
        "dnnlib.util.EasyDict",
        "builtins.set",
    }


@pytest.mark.parametrize("c_dim", [0, 3])
def test_tensorflow_pickle_converts(tmp_path, c_dim):
    G = tiny_generator(c_dim=c_dim)
    path = tmp_path / "stylegan2-tiny-config-f.pkl"
    path.write_bytes(tf_pickle_bytes(G))
    loaded = styleclip.load_generator(path, device="cpu")
    assert loaded.meta["format"] == "stylegan2-tensorflow"
    c = G.label(1, batch=2) if c_dim else None
    # mod_bias is stored minus 1 in TF: float rounding only.
    same_image(G, loaded, c=c, atol=1e-5)


def test_rosinality_checkpoint_loads(tmp_path):
    G = tiny_generator(resolution=64, channel_base=1024, channel_max=32)
    loaded = styleclip.load_generator(write_rosinality(G, tmp_path / "stylegan2-ffhq-config-f.pt"), device="cpu")
    assert loaded.meta["format"] == "rosinality"
    assert loaded.config.synthesis.channel_base == 1024 and loaded.config.synthesis.channel_max == 32
    same_image(G, loaded)


def test_rosinality_without_latent_avg_estimates_it(tmp_path):
    G = tiny_generator()
    loaded = styleclip.load_generator(write_rosinality(G, tmp_path / "train.pt", latent_avg=False), device="cpu")
    assert loaded.meta["w_avg_estimated"] is True
    z = torch.randn(4096, 16, generator=torch.Generator().manual_seed(1))
    mean_w = G.mapping(z)[:, 0].mean(0)
    assert (loaded.w_avg - mean_w).norm() < 0.1 * mean_w.norm()


def test_same_weights_as_nvidia_and_rosinality_give_the_same_image(tmp_path):
    G = tiny_generator()  # config-f style: no conv_clamp, no fp16 layers
    a = styleclip.load_generator(write_nvidia_pickle(G, tmp_path / "a.pkl"), device="cpu")
    b = styleclip.load_generator(write_rosinality(G, tmp_path / "b.pt"), device="cpu")
    same_image(a, b)


def test_safetensors_round_trip_is_exact(tmp_path):
    G = tiny_generator(c_dim=2, conv_clamp=64.0, architecture="resnet")
    path = styleclip.save_generator(G, tmp_path / "g.safetensors")
    loaded = styleclip.load_generator(path, device="cpu")
    assert loaded.config == G.config
    for (k1, v1), (k2, v2) in zip(G.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
    same_image(G, loaded, c=G.label(1, batch=2))
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


# -- safety ----------------------------------------------------------------------------------------


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Evil(marker)}))
    with pytest.raises(CheckpointError, match=r"(posix|os|nt)\.system"):
        styleclip.load_generator(path, device="cpu")
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        b"cbuiltins\neval\n(S'1+1'\ntR.",
        b"cbuiltins\n__import__\n(S'os'\ntR.",
        b"csubprocess\ncall\n((S'true'\nltR.",
        b"ctorch_utils.persistence\nexec\n(S'x'\ntR.",
    ],
)
def test_restricted_unpickler_refuses_code_globals(payload):
    import io

    with pytest.raises(UnsafePickleError, match="refusing"):
        restricted_load(io.BytesIO(payload))


def test_embedded_source_code_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    src = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    path = tmp_path / "g.pkl"
    path.write_bytes(nvidia_pickle_bytes(tiny_generator(), module_src=src))
    styleclip.load_generator(path, device="cpu")
    assert not marker.exists()


# -- bad input -------------------------------------------------------------------------------------


def _assert_one_line(exc_info, *words):
    text = str(exc_info.value)
    assert "\n" not in text
    for word in words:
        assert word in text


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError) as e:
        styleclip.load_generator(tmp_path / "nope.pkl")
    _assert_one_line(e, "no such file")


def test_unknown_name_says_to_pass_a_path():
    with pytest.raises(CheckpointError) as e:
        styleclip.load_generator("no-such-model-name")
    _assert_one_line(e, "unknown model name", "styleclip models list")


def test_truncated_pickle(tmp_path):
    data = nvidia_pickle_bytes(tiny_generator())
    path = tmp_path / "half.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        styleclip.load_generator(path)
    _assert_one_line(e, "truncated or corrupt", "download it again")


def test_truncated_torch_file(tmp_path):
    path = write_rosinality(tiny_generator(), tmp_path / "g.pt")
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError) as e:
        styleclip.load_generator(path)
    _assert_one_line(e, "truncated or corrupt")


def test_png_renamed_to_pkl(tmp_path):
    from PIL import Image

    path = tmp_path / "ffhq.pkl"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, format="PNG")
    with pytest.raises(CheckpointError) as e:
        styleclip.load_generator(path)
    _assert_one_line(e, "not a checkpoint", "PNG image")


def test_html_page_instead_of_checkpoint(tmp_path):
    path = tmp_path / "ffhq.pkl"
    path.write_text("<!DOCTYPE html><html><body>Google Drive - Virus scan warning</body></html>")
    with pytest.raises(CheckpointError) as e:
        styleclip.load_generator(path)
    _assert_one_line(e, "HTML")


def test_empty_file_and_directory(tmp_path):
    (tmp_path / "empty.pkl").write_bytes(b"")
    with pytest.raises(CheckpointError) as e:
        styleclip.load_generator(tmp_path / "empty.pkl")
    _assert_one_line(e, "empty")
    with pytest.raises(CheckpointError) as e:
        styleclip.load_generator(tmp_path)
    _assert_one_line(e, "directory")


def test_pickle_of_an_unknown_network(tmp_path):
    record = Persistent("Discriminator", {"_parameters": {}, "_buffers": {}, "_modules": {}, "_init_kwargs": {}})
    with fake_modules(**{"torch_utils.persistence": {"_reconstruct_persistent_obj": _reconstruct_persistent_obj}}):
        data = pickle.dumps({"D": record}, protocol=3)
    path = tmp_path / "d.pkl"
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as e:
        styleclip.load_generator(path)
    _assert_one_line(e, "no generator", "D")


def test_stylegan3_pickle_is_named(tmp_path):
    G = tiny_generator()
    data = nvidia_pickle_bytes(G)
    restored = restricted_load(__import__("io").BytesIO(data))
    restored["G_ema"].modules["synthesis"].modules["input"] = None
    from styleclip.hub.formats.nvidia_pkl import generator_from_snapshot

    with pytest.raises(CheckpointError, match="StyleGAN3"):
        generator_from_snapshot(restored)


def test_torch_file_of_another_network(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(CheckpointError) as e:
        styleclip.load_generator(path)
    _assert_one_line(e, "not a StyleGAN2 generator")


def _tampered_rosinality(tmp_path, edit):
    """A rosinality checkpoint of a tiny generator, changed by ``edit(ckpt)`` before saving."""
    path = write_rosinality(tiny_generator(), tmp_path / "g.pt")
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path)
    return path


def test_tampered_generator_with_missing_tensor(tmp_path):
    path = _tampered_rosinality(tmp_path, lambda ckpt: ckpt["g_ema"].pop("convs.1.activate.bias"))
    with pytest.raises(CheckpointError) as e:
        styleclip.load_generator(path)
    _assert_one_line(e, "convs.1.activate.bias")


# -- misuse of the allowed globals (each once found by a review) --------------------------------------


def _pickle_with(tmp_path, payload: bytes):
    path = tmp_path / "crafted.pkl"
    path.write_bytes(payload)
    return path


def test_forged_numpy_dtype_is_refused(tmp_path):
    # A V4 dtype rewritten by BUILD to read past its buffer: NumPy would segfault or leak heap memory.
    import io

    data = np.zeros(4, np.float32)
    good = pickle.dumps(data, protocol=3).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert isinstance(restricted_load(io.BytesIO(good)).array, np.ndarray)
    evil = good.replace(b"X\x02\x00\x00\x00f4", b"X\x02\x00\x00\x00V4")
    assert evil != good
    with pytest.raises(UnsafePickleError, match="not a plain number type"):
        restricted_load(io.BytesIO(evil))


def test_tensor_view_past_its_storage_is_refused():
    import io

    t = torch.zeros(4)
    good = pickle.dumps(t, protocol=3)
    assert torch.equal(restricted_load(io.BytesIO(good)), t)
    # the same storage, declared as 4096 elements: set_() would grow it over uninitialised memory
    evil = good.replace(b"K\x04\x85", b"M\x00\x10\x85", 1)
    assert evil != good
    with pytest.raises(UnsafePickleError, match="past the end of its storage"):
        restricted_load(io.BytesIO(evil))


def test_numpy_constructors_cannot_allocate_at_will():
    import io

    # numpy.ndarray((10**13,), 'u1') and _frombuffer(<int>, ...) would allocate terabytes.
    call_ndarray = b"cnumpy\nndarray\n(I10000000000000\n\x85S'u1'\ntR."
    with pytest.raises((UnsafePickleError, TypeError)):
        restricted_load(io.BytesIO(call_ndarray))
    frombuffer = (
        b"cnumpy.core.numeric\n_frombuffer\n(I3000000000\ncnumpy\ndtype\n(S'u1'\nI00\nI01\ntR(I1000000000\ntS'C'\ntR."
    )
    with pytest.raises(UnsafePickleError, match="not bytes"):
        restricted_load(io.BytesIO(frombuffer))


def test_tiny_file_declaring_a_huge_network_is_refused(tmp_path):
    from styleclip.hub.formats.state import build_generator
    from styleclip.nets.stylegan2 import GeneratorConfig

    with pytest.raises(CheckpointError, match="implausibly large"):
        build_generator(GeneratorConfig(img_resolution=2**17), 10, "test")
    with pytest.raises(CheckpointError, match="holds only 10"):
        build_generator(GeneratorConfig(img_resolution=64), 10, "test")


def test_zip_bomb_is_refused(tmp_path):
    import zipfile

    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data/0", b"\0" * (80 << 20))
    with pytest.raises(CheckpointError) as e:
        styleclip.load_generator(path)
    _assert_one_line(e, "unpacks to")


def test_malformed_contents_give_one_line_errors(tmp_path):
    path = _tampered_rosinality(tmp_path, lambda ckpt: ckpt.update(latent_avg=torch.zeros(7)))
    with pytest.raises(CheckpointError) as e:
        styleclip.load_generator(path)
    _assert_one_line(e, "latent_avg is [7]")
