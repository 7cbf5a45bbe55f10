"""Crafted checkpoints (pickles, ``.pt`` zips and legacy streams, safetensors, TorchScript archives) run through the
CLI: each is refused in one line naming what is wrong, with no traceback, under a memory bound, before styleclip
allocates what the file declares."""

from __future__ import annotations

import json
import pickle
import pickletools
import re
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from styleclip.hub.generators import save_generator
from styleclip.hub.mappers import save_mapper
from styleclip.nets.mapper import LatentMapper, MapperConfig

from checkpoint_writers import nvidia_pickle_bytes, rosinality_state_dict
from conftest import save_torchscript_clip, tiny_clip, tiny_generator
from hostile import refused, refused_by
from mapper_writers import random_mapper_weights, write_official_mapper

# -- writers of crafted files --------------------------------------------------------------------------------------


def rewrite_zip(src: Path, dst: Path, edit) -> Path:
    """Copy a zip archive entry by entry; ``edit(name, data)`` returns new bytes, or None to leave the entry out."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info, data)
    return dst


def write_rosinality_with(tmp: Path, name: str, **replace) -> Path:
    """A rosinality checkpoint of the tiny generator with some of its tensors replaced."""
    sd = rosinality_state_dict(tiny_generator())
    sd.update(replace)
    path = tmp / name
    torch.save({"g_ema": sd, "latent_avg": torch.zeros(16)}, path)
    return path


def forge_legacy_storage(stream: bytes, numel: int) -> bytes:
    """A legacy ``torch.save`` stream whose first storage declares ``numel`` values (the data stays as it was)."""
    # the storage's persistent id ends (..., 'cpu', numel, None): rewrite the numel opcode
    found = re.search(rb"X\x03\x00\x00\x00cpuq.(K.|M..|J....)N", stream, re.DOTALL)
    assert found is not None
    return stream[: found.start(1)] + b"\x8a\x08" + struct.pack("<q", numel) + stream[found.end(1) :]


def forge_pickled_storage(data: bytes, numel: int) -> bytes:
    """A pickle whose first nested tensor storage (``torch.storage._load_from_bytes``) declares ``numel`` values."""
    for opcode, arg, pos in pickletools.genops(data):
        if opcode.name == "BINBYTES" and arg.startswith(b"\x80\x02\x8a\nl\xfc\x9cF"):
            inner = forge_legacy_storage(arg, numel)
            return data[:pos] + b"B" + struct.pack("<I", len(inner)) + inner + data[pos + 5 + len(arg) :]
    raise AssertionError("no nested storage in the pickle")


def rewrite_safetensors(src: Path, dst: Path, config=None, tensors=None, metadata=None) -> Path:
    """Rewrite a styleclip ``.safetensors`` file with its config edited by ``config(dict)`` and tensors by
    ``tensors(dict)``."""
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
        values = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    if config is not None:
        cfg = json.loads(meta["config"])
        config(cfg)
        meta["config"] = json.dumps(cfg)
    if tensors is not None:
        tensors(values)
    save_file(values, str(dst), metadata=metadata or meta)
    return dst


def forge_safetensors_header(src: Path, dst: Path, edit) -> Path:
    """Rewrite the JSON header of a safetensors file with ``edit(header)``, keeping the data bytes."""
    raw = src.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    text = json.dumps(header).encode()
    dst.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])
    return dst


@pytest.fixture(scope="module")
def tiny_gen_file(tmp_path_factory) -> Path:
    return save_generator(tiny_generator(), tmp_path_factory.mktemp("gen") / "tiny.safetensors")


def generate(generator: Path, out: Path) -> list:
    return ["generate", "--generator", generator, "--seeds", "0", "--outdir", out, "--device", "cpu"]


def refuse_generator(path: Path, tmp_path: Path, capsys, match: str) -> str:
    out = tmp_path / "out"
    line = refused(generate(path, out), capsys, match=match, watch=[tmp_path], may_write=[out])
    assert not list(out.glob("*.png")) if out.exists() else True
    return line


# -- 1. what a checkpoint makes styleclip allocate is bounded before allocating --------------------------------------


def test_expanded_tensor_in_a_pt_is_refused_naming_it(tmp_path, capsys):
    path = write_rosinality_with(tmp_path, "expanded.pt", **{"noises.noise_0": torch.zeros(1).expand(10**10)})
    assert path.stat().st_size < 1 << 20
    line = refuse_generator(path, tmp_path, capsys, match=r"would take .*GiB .*expanded or overlapping-stride")
    assert "tensor g_ema.noises.noise_0 views" in line


def test_overlapping_strides_are_refused(tmp_path, capsys):
    # 800 kB of storage whose as_strided view would be a 40 GB contiguous copy
    view = torch.zeros(200_000).as_strided((100_000, 100_000), (1, 1))
    path = write_rosinality_with(tmp_path, "strided.pt", **{"input.input": view})
    line = refuse_generator(path, tmp_path, capsys, match=r"would take")
    assert "input.input" in line


def test_many_views_of_one_storage_are_counted_each(tmp_path, capsys):
    shared = torch.zeros(1 << 20)  # 4 MiB stored once, 8 GiB once every view is copied
    path = tmp_path / "shared.pt"
    torch.save({"g_ema": {f"style.{i}.weight": shared for i in range(2000)}}, path)
    assert path.stat().st_size < 8 << 20
    refuse_generator(
        path, tmp_path, capsys, match=r"2000 tensors \(g_ema\.style\.\d+\.weight, \.\.\.\) view one 4\.0 MiB"
    )


def test_expanded_tensor_in_a_pickle_is_refused(tmp_path, capsys):
    path = tmp_path / "expanded.pkl"
    path.write_bytes(pickle.dumps({"G_ema": torch.zeros(1).expand(10**10)}, protocol=3))
    refuse_generator(path, tmp_path, capsys, match=r"would take .*G_ema")


def test_pickle_declaring_a_terabyte_storage_is_refused_before_allocating(tmp_path, capsys):
    path = tmp_path / "huge-storage.pkl"
    path.write_bytes(forge_pickled_storage(nvidia_pickle_bytes(tiny_generator()), 10**12))
    refuse_generator(path, tmp_path, capsys, match=r"tensor storage .* declares 1000000000000 values")


def test_legacy_pt_declaring_a_terabyte_storage_is_refused_before_allocating(tmp_path, capsys):
    path = tmp_path / "legacy.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(4)}}, path, _use_new_zipfile_serialization=False)
    path.write_bytes(forge_legacy_storage(path.read_bytes(), 10**12))
    refuse_generator(path, tmp_path, capsys, match=r"declares 1000000000000 values")


def test_zip_pt_declaring_more_than_its_record_is_refused(tmp_path, capsys):
    small = tmp_path / "small.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(2, 2)}}, small)

    def forge(name, data):
        if name.endswith("data.pkl"):
            pattern, value = rb"(X\x03\x00\x00\x00cpuq.)K\x04t", b"J\x00\xca\x9a\x3bt"
            forged = re.sub(pattern, lambda m: m.group(1) + value, data, count=1, flags=re.S)
            assert forged != data
            return forged  # 4 -> 10**9 values
        return data

    path = rewrite_zip(small, tmp_path / "forged.pt", forge)
    refuse_generator(path, tmp_path, capsys, match=r"declares more bytes than the archive holds")


def test_safetensors_header_declaring_a_huge_tensor_is_refused_naming_it(tmp_path, capsys, tiny_gen_file):
    def forge(header):
        header["mapping.fc0.weight"]["shape"] = [10**6, 10**6]

    path = forge_safetensors_header(tiny_gen_file, tmp_path / "huge.safetensors", forge)
    refuse_generator(path, tmp_path, capsys, match=r"tensor mapping\.fc0\.weight declares 1000000000000 values")


def test_safetensors_tensors_sharing_bytes_are_refused(tmp_path, capsys, tiny_gen_file):
    def forge(header):
        header["mapping.fc1.weight"]["data_offsets"] = header["mapping.fc0.weight"]["data_offsets"]

    path = forge_safetensors_header(tiny_gen_file, tmp_path / "overlap.safetensors", forge)
    refuse_generator(path, tmp_path, capsys, match=r"share bytes")


def test_safetensors_header_longer_than_the_file_is_refused(tmp_path, capsys, tiny_gen_file):
    path = tmp_path / "long-header.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 40) + tiny_gen_file.read_bytes()[8:])
    refuse_generator(path, tmp_path, capsys, match=r"header declares .* bytes")


def test_device_is_not_a_checkpoint(tmp_path, capsys):
    line = refuse_generator(Path("/dev/zero"), tmp_path, capsys, match=r"/dev/zero: not a regular file")
    assert "empty" not in line


def test_pipe_is_refused_without_waiting_for_a_writer(tmp_path, capsys):
    import os

    pipe = tmp_path / "g.pkl"
    os.mkfifo(pipe)
    refuse_generator(pipe, tmp_path, capsys, match=r"g\.pkl: not a regular file")


def test_official_mapper_with_a_bad_stylegan_size(tmp_path, capsys):
    path = write_official_mapper(None, random_mapper_weights(16, groups=("coarse",)), tmp_path / "size.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["opts"]["stylegan_size"] = 0
    torch.save(ckpt, path)
    refused(
        apply_mapper(path, tmp_path / "out"), capsys, match=r"stylegan_size .0. is not a power of two", watch=[tmp_path]
    )


# -- 2. mapper files: declared layers and widths checked before building ------------------------------------------


@pytest.fixture(scope="module")
def mapper_assets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mapper-assets")
    G = tiny_generator()
    gen = save_generator(G, folder / "gen.safetensors")
    native = save_mapper(LatentMapper(MapperConfig(w_dim=16, num_ws=G.num_ws)), folder / "mapper.safetensors")
    return G, gen, native


def apply_mapper(mapper: Path, out: Path, generator: Path | None = None) -> list:
    argv = ["mapper", "apply", "--mapper", mapper, "--seeds", "0", "--outdir", out, "--device", "cpu", "--no-video"]
    return argv + (["--generator", generator] if generator is not None else [])


def test_native_mapper_declaring_huge_layers_is_refused_before_building(tmp_path, capsys, mapper_assets):
    _, gen, native = mapper_assets

    def forge(cfg):
        cfg.update(w_dim=8192, num_layers=64)

    path = rewrite_safetensors(native, tmp_path / "wide.safetensors", config=forge)
    out = tmp_path / "out"
    refused(
        apply_mapper(path, out, gen), capsys, match=r"declares a mapper of \d+ values .* holds only", watch=[tmp_path]
    )


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"w_dim": 0}, r"w_dim must be an integer from 1"),
        ({"num_layers": 10**9}, r"num_layers must be an integer from 1 to 64"),
        ({"num_ws": "18"}, r"num_ws must be an integer"),
        ({"strength": float("nan")}, r"strength must be a finite number"),
    ],
)
def test_native_mapper_with_bad_config_values(tmp_path, capsys, mapper_assets, cfg, match):
    _, gen, native = mapper_assets
    path = rewrite_safetensors(native, tmp_path / "bad.safetensors", config=lambda c: c.update(cfg))
    refused(apply_mapper(path, tmp_path / "out", gen), capsys, match=match, watch=[tmp_path])


def test_official_mapper_declaring_many_layers_is_refused(tmp_path, capsys):
    G = tiny_generator()
    path = write_official_mapper(G, random_mapper_weights(16, groups=("coarse",)), tmp_path / "deep.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["mapper.course_mapping.mapping.60.weight"] = torch.zeros(16, 16)
    torch.save(ckpt, path)
    refused(apply_mapper(path, tmp_path / "out"), capsys, match=r"declares a mapper .* holds only", watch=[tmp_path])


def test_official_mapper_with_an_expanded_tensor_is_refused(tmp_path, capsys):
    path = write_official_mapper(None, random_mapper_weights(16, groups=("coarse",)), tmp_path / "expanded.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["mapper.course_mapping.mapping.1.weight"] = torch.zeros(1).expand(100_000, 100_000)
    torch.save(ckpt, path)
    line = refused(apply_mapper(path, tmp_path / "out"), capsys, match=r"would take", watch=[tmp_path])
    assert "mapper.course_mapping.mapping.1.weight" in line


# -- 3. NaN or Inf in any weight is refused, naming the tensor -----------------------------------------------------


def test_nan_in_a_generator_weight_is_refused(tmp_path, capsys, tiny_gen_file):
    def poison(values):
        values["synthesis.b8.conv0.weight"][0, 0, 0, 0] = float("nan")

    path = rewrite_safetensors(tiny_gen_file, tmp_path / "nan.safetensors", tensors=poison)
    refuse_generator(path, tmp_path, capsys, match=r"tensor synthesis\.b8\.conv0\.weight holds NaN or Inf")


def test_inf_in_a_pickled_generator_is_refused(tmp_path, capsys):
    G = tiny_generator()
    with torch.no_grad():
        G.mapping.fc1.bias[3] = float("inf")
    path = tmp_path / "inf.pkl"
    path.write_bytes(nvidia_pickle_bytes(G))
    refuse_generator(path, tmp_path, capsys, match=r"tensor mapping\.fc1\.bias holds NaN or Inf")


def test_nan_in_a_tensorflow_pickle_is_refused(tmp_path, capsys):
    from checkpoint_writers import tf_pickle_bytes

    G = tiny_generator()
    with torch.no_grad():
        G.synthesis.b4.const[0, 1, 1] = float("-inf")
    path = tmp_path / "tf.pkl"
    path.write_bytes(tf_pickle_bytes(G))
    refuse_generator(path, tmp_path, capsys, match=r"tensor synthesis\.b4\.const holds NaN or Inf")


def test_nan_in_a_mapper_is_refused(tmp_path, capsys, mapper_assets):
    _, gen, native = mapper_assets

    def poison(values):
        values["groups.coarse.mapping.2.bias"][1] = float("nan")

    path = rewrite_safetensors(native, tmp_path / "nan.safetensors", tensors=poison)
    refused(apply_mapper(path, tmp_path / "out", gen), capsys, match=r"groups\.coarse\.mapping\.2\.bias holds NaN")


# -- 4. config values that divide or allocate ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c: c.update(w_dim=0), r"w_dim must be between 1"),
        (lambda c: c.update(z_dim=-1), r"z_dim must be between 0"),
        (lambda c: c["synthesis"].update(channel_base=0), r"channel_base must be between 1"),
        (lambda c: c["synthesis"].update(channel_max=-512), r"channel_max must be between 1"),
        (lambda c: c["synthesis"].update(channel_max=10**12), r"channel_max must be between 1"),
        (lambda c: c.update(img_resolution=48), r"img_resolution must be a power of two"),
        (lambda c: c.update(img_resolution=2**40), r"img_resolution must be between 4"),
        (lambda c: c["mapping"].update(num_layers=0), r"num_layers must be between 1"),
        (lambda c: c["mapping"].update(lr_multiplier=0), r"lr_multiplier must be in"),
        (lambda c: c.update(w_dim="512"), r"w_dim must be an integer"),
    ],
)
def test_generator_config_values_are_validated(tmp_path, capsys, tiny_gen_file, edit, match):
    path = rewrite_safetensors(tiny_gen_file, tmp_path / "bad.safetensors", config=edit)
    out = tmp_path / "converted.safetensors"
    refused(["convert", path, out], capsys, match=match, watch=[tmp_path])
    assert not out.exists()


@pytest.mark.parametrize(
    "change, match",
    [({"w_dim": 0}, r"w_dim must be between 1"), ({"img_resolution": 24}, r"img_resolution must be a power of two")],
)
def test_pickled_generator_arguments_are_validated(tmp_path, capsys, change, match):
    from checkpoint_writers import _record, _snapshot_bytes, official_init_kwargs

    G = tiny_generator()
    record = _record(G, {**official_init_kwargs(G), **change})
    path = tmp_path / "bad-args.pkl"
    path.write_bytes(_snapshot_bytes(record, record))
    refuse_generator(path, tmp_path, capsys, match=match)


# -- 5. every CLIP file problem in one line naming the file ---------------------------------------------------------


@pytest.fixture(scope="module")
def clip_assets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip-assets")
    gen = save_generator(tiny_generator(), folder / "gen.safetensors")
    model = tiny_clip()
    script = save_torchscript_clip(model, folder / "tiny-jit.pt")
    return gen, model, script


def edit_with_clip(gen: Path, clip: str | Path, out: Path) -> list:
    argv = ["edit", "--generator", gen, "--clip", clip, "--prompt", "a tiger", "--seed", "0", "--steps", "1"]
    return [*argv, "--no-video", "--device", "cpu", "--outdir", out]


def refuse_clip(clip_assets, clip, tmp_path, capsys, match) -> str:
    gen = clip_assets[0]
    out = tmp_path / "out"
    return refused(edit_with_clip(gen, clip, out), capsys, match=match, watch=[tmp_path], may_write=[out])


def test_torchscript_missing_a_record(tmp_path, capsys, clip_assets):
    bad = rewrite_zip(clip_assets[2], tmp_path / "no-record.pt", lambda n, d: None if n.endswith("/data/0") else d)
    line = refuse_clip(clip_assets, bad, tmp_path, capsys, match=r"lacks the record .*data/0")
    assert str(bad) in line and "download it again" in line


def test_torchscript_with_truncated_data_pkl(tmp_path, capsys, clip_assets):
    def cut(name, data):
        return data[: len(data) // 2] if name.endswith("/data.pkl") else data

    bad = rewrite_zip(clip_assets[2], tmp_path / "cut.pt", cut)
    line = refuse_clip(clip_assets, bad, tmp_path, capsys, match=r"truncated or corrupt .*download it again")
    assert str(bad) in line


def test_state_dict_of_no_known_clip(tmp_path, capsys, clip_assets):
    sd = clip_assets[1].state_dict()
    for key in [k for k in sd if k.startswith("transformer.")] + ["ln_final.weight"]:
        sd.pop(key)
    bad = tmp_path / "odd-clip.pt"
    torch.save(sd, bad)
    line = refuse_clip(clip_assets, bad, tmp_path, capsys, match=r"match no CLIP architecture .*ARCH:")
    assert str(bad) in line


def test_clip_shapes_declaring_a_huge_model_are_refused_before_building(tmp_path, capsys, clip_assets):
    # a 100,000-token context: 25 MB of positional embedding, but a 40 GB attention mask once built
    sd = {k: v.clone() for k, v in clip_assets[1].state_dict().items()}
    sd["positional_embedding"] = torch.zeros(100_000, 64)
    bad = tmp_path / "long-context.pt"
    torch.save(sd, bad)
    refuse_clip(clip_assets, bad, tmp_path, capsys, match=r"shapes declare a CLIP model of .*GiB from a .*MiB file")


def test_clip_with_nan_is_refused(tmp_path, capsys, clip_assets):
    sd = {k: v.clone() for k, v in clip_assets[1].state_dict().items()}
    sd["visual.proj"][0, 0] = float("nan")
    bad = tmp_path / "nan-clip.pt"
    torch.save(sd, bad)
    refuse_clip(clip_assets, bad, tmp_path, capsys, match=r"tensor visual\.proj holds NaN or Inf")


@pytest.mark.parametrize("content", [b"\x00" * 300, b"PK\x03\x04 truncated zip", b""])
def test_arch_path_naming_a_bad_file(tmp_path, capsys, clip_assets, content):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(content)
    line = refuse_clip(clip_assets, f"ViT-B-32:{bad}", tmp_path, capsys, match=r"not a checkpoint|corrupt|empty")
    assert str(bad) in line


@pytest.mark.parametrize("arch", ["ViT-B-32:", ""])
def test_clip_path_naming_a_missing_file(tmp_path, capsys, clip_assets, arch):
    line = refuse_clip(clip_assets, f"{arch}{tmp_path}/none.pt", tmp_path, capsys, match=r"none\.pt: no such file")
    assert "none.pt" in line


def test_arch_path_with_weights_of_another_model(tmp_path, capsys, clip_assets):
    bad = tmp_path / "tiny.pt"
    torch.save(clip_assets[1].state_dict(), bad)
    refuse_clip(clip_assets, f"ViT-B-32:{bad}", tmp_path, capsys, match=r"not weights of CLIP architecture ViT-B-32")


def test_empty_clip_file(tmp_path, capsys, clip_assets):
    bad = tmp_path / "empty.pt"
    bad.write_bytes(b"")
    refuse_clip(clip_assets, bad, tmp_path, capsys, match=r"empty .*download it again")


def test_dev_zero_as_clip_is_not_read(tmp_path, capsys, clip_assets):
    line = refuse_clip(clip_assets, "/dev/zero", tmp_path, capsys, match=r"/dev/zero: not a regular file")
    assert "empty" not in line
    line = refuse_clip(clip_assets, "ViT-B-32:/dev/zero", tmp_path, capsys, match=r"/dev/zero: not a regular file")


# -- 6. a refused .pt names the refused global ---------------------------------------------------------------------


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy", [False, True])
def test_refused_pt_names_the_global(tmp_path, capsys, legacy):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": _Evil(marker)}, path, _use_new_zipfile_serialization=not legacy)
    line = refuse_generator(path, tmp_path, capsys, match=r"refusing (posix|os|nt)\.system")
    assert str(path) in line and "weights_only" not in line
    assert not marker.exists()


def test_refused_clip_pt_names_the_global(tmp_path, capsys, clip_assets):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil-clip.pt"
    torch.save({"visual.conv1.weight": _Evil(marker)}, path)
    line = refuse_clip(clip_assets, path, tmp_path, capsys, match=r"refusing (posix|os|nt)\.system")
    assert "weights_only" not in line and not marker.exists()


def test_encoder_with_nan_is_refused_naming_the_tensor(tmp_path):
    from styleclip.inversion.encoders import load_encoder

    path = tmp_path / "e4e.pt"
    weight = torch.zeros(8, 3, 3, 3)
    weight[0, 0, 0, 0] = float("inf")
    torch.save({"state_dict": {"encoder.input_layer.0.weight": weight}}, path)
    refused_by(lambda: load_encoder(path, device="cpu"), match=r"encoder\.input_layer\.0\.weight holds NaN or Inf")


def test_a_record_declaring_terabytes_is_one_line_not_a_memory_error(tmp_path):
    """Python's unpickler allocates what a bytes record declares before reading it: 64 TiB from 30 bytes."""
    from styleclip.hub.formats.torchfile import load_torch_file, load_weights_file

    magic = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."  # torch.save's legacy magic number, pickled
    path = tmp_path / "bomb.pt"
    path.write_bytes(magic + b"\x80\x02\x8e" + (1 << 46).to_bytes(8, "little") + b"xx.")
    refused_by(lambda: load_torch_file(path), match="far larger than it holds")
    refused_by(lambda: load_weights_file(path), match="far larger than it holds")


def test_a_legacy_checkpoint_saved_from_a_gpu_still_loads(tmp_path):
    """torch < 1.6 saved GPU tensors as torch.cuda.FloatStorage: the size check reads them as their CPU twins."""
    import io

    from styleclip.hub.formats.torchfile import load_torch_file

    buf = io.BytesIO()
    torch.save({"w": torch.arange(6.0)}, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    assert b"torch\nFloatStorage" in data
    path = tmp_path / "gpu-era.pt"
    path.write_bytes(data.replace(b"torch\nFloatStorage", b"torch.cuda\nFloatStorage"))
    assert torch.equal(load_torch_file(path)["w"], torch.arange(6.0))


def test_half_precision_weights_are_checked_for_nan_in_bounded_chunks():
    from styleclip.hub.formats.budget import is_finite

    big = torch.full((3 << 22,), 60000.0, dtype=torch.float16)  # a float32 sum of all would still be finite
    assert is_finite(big) and is_finite(big.to(torch.bfloat16))
    big[-1] = float("nan")
    assert not is_finite(big)
    assert is_finite(torch.full((10,), 3e38, dtype=torch.bfloat16))  # float32 would overflow, float64 does not
