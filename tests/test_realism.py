"""FID/KID of edits against real images through torch-fidelity, with random Inception weights written in the layout
torch-fidelity reads (its own FeatureExtractorInceptionV3's state dict), tiny image folders, and no network."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
import torch
from PIL import Image

from styleclip.errors import CheckpointError, UsageError
from styleclip.evaluation import realism as realism_module
from styleclip.evaluation.realism import WEIGHTS_FILE, WEIGHTS_URL, realism

from hostile import refused_by

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection but to the loopback fails the test."""
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"the test tried to reach {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random Inception weights in torch-fidelity's format: its own module is built (its weight loading stubbed:
    nothing is downloaded) and He-initialised so that the 2048 features neither vanish nor explode."""
    import torch_fidelity.feature_extractor_inceptionv3 as inc

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inc, "load_state_dict_from_url", lambda *a, **k: {})  # instead of the download
        mp.setattr(inc.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None)
        net = inc.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in net.state_dict().items():
        if k.endswith(".conv.weight") or k == "fc.weight":
            state[k] = torch.randn(v.shape, generator=g) * (2 / v[0].numel()) ** 0.5
        elif k.endswith(("running_var", ".bn.weight")):
            state[k] = torch.ones_like(v)
        else:  # BatchNorm shifts and means, the classifier's bias, the batch counters
            state[k] = torch.zeros_like(v)
    return state


def write_random_inception(path):
    """Random Inception weights in torch-fidelity's format: its own module is built (its weight loading stubbed:
    nothing is downloaded) and He-initialised so that the 2048 features neither vanish nor explode."""
    import torch_fidelity.feature_extractor_inceptionv3 as inc

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inc, "load_state_dict_from_url", lambda *a, **k: {})  # instead of the download
        mp.setattr(inc.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None)
        net = inc.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    g = torch.Generator().manual_seed(0)
    state = {}
    for k, v in net.state_dict().items():
        if k.endswith(".conv.weight") or k == "fc.weight":
            fan_in = v[0].numel()
            state[k] = torch.randn(v.shape, generator=g) * (2 / fan_in) ** 0.5
        elif k.endswith(("running_var", ".bn.weight")):
            state[k] = torch.ones_like(v)
        else:
            state[k] = torch.zeros_like(v)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_random_inception(tmp_path_factory.mktemp("inception") / WEIGHTS_FILE)


def write_images(folder, kind: str, n: int, size: int = 32, seed: int = 0):
    """``n`` PNGs: 'smooth' colour gradients (one family) or 'noise' (another); distinct images within a set."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    yy, xx = np.mgrid[:size, :size] / size
    for i in range(n):
        if kind == "smooth":
            c = rng.uniform(0, 1, (3, 3))
            img = np.stack([c[j, 0] + c[j, 1] * xx + c[j, 2] * yy for j in range(3)], -1) / 3
        else:
            img = rng.uniform(0, 1, (size, size, 3))
        path = folder / f"{i:03d}.png"
        Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    edits = write_images(root / "edits", "smooth", 4, seed=1)
    real = root / "real"
    write_images(real, "smooth", 4, seed=3)  # the same kind of pictures, other ones
    other = root / "other"
    write_images(other, "noise", 5, size=48, seed=2)  # another kind and size: resized and cropped to 32
    (other / "notes.txt").write_text("not an image")
    (other / "broken.webp").write_bytes(b"RIFF not really")
    return edits, real, other


@pytest.fixture(scope="module")
def scored(sets, weights):
    """The edits against themselves (a list against their folder) and against another kind of picture (their
    folder, KID subsets of 3): each comparison costs seconds of Inception on the CPU."""
    edits, _, other = sets
    return realism(edits, edits[0].parent, weights=weights), realism(
        edits[0].parent, other, weights=weights, kid_subset=3
    )


def test_a_set_against_itself_is_zero_and_against_another_is_not(scored):
    same, diff = scored
    assert same["n_edited"] == 4 and same["n_real"] == 4
    assert diff["n_edited"] == 4 and diff["n_real"] == 5  # the text file and the broken PNG skipped
    assert diff["fid"] > 0 and diff["kid_mean"] > 0
    assert abs(same["fid"]) < 1e-6 * diff["fid"]
    assert abs(same["kid_mean"]) < 0.2 * diff["kid_mean"]  # unbiased: not exactly 0, and may be below it
    assert same["kid_std"] < 1e-9 * diff["kid_mean"]  # every subset is both whole sets
    assert diff["kid_std"] > 0  # subsets of 3 from 4 and 5 vary


def test_notes_say_what_makes_the_numbers_weak(scored):
    same, diff = scored
    both = " ".join(same["notes"] + diff["notes"])
    assert "dominated by its bias" in both and ">= 10000" in both
    assert "shrunk from 1000 to 4" in " ".join(same["notes"]) and "says nothing" in " ".join(same["notes"])
    assert not any("shrunk" in n or "says nothing" in n for n in diff["notes"])
    text = " ".join(diff["notes"])
    assert "2 files" in text and "not images" in text
    assert "resized and centre-cropped to 32 x 32" in text
    assert not any("resized" in n for n in same["notes"])


def test_the_real_folders_features_serve_the_next_call(sets, scored, weights, monkeypatch):
    """A benchmark scores each method against one real folder: only the new edits go through Inception again."""
    edits, _, other = sets
    loaded = []
    read = realism_module._Images.__getitem__
    monkeypatch.setattr(realism_module._Images, "__getitem__", lambda self, i: loaded.append(i) or read(self, i))
    again = realism(edits[:3], other, weights=weights, kid_subset=3)
    assert len(loaded) == 3 + 1  # the three edits, and torch-fidelity's look at the first one
    assert again["n_real"] == 5 and again["fid"] > 0


def test_one_image_is_too_few_and_needs_no_weights(sets):
    edits, real, _ = sets
    one = realism(edits[:1], real, weights=None, offline=True)
    assert one["fid"] is None and one["kid_mean"] is None and one["kid_std"] is None
    assert "at least 2 images" in " ".join(one["notes"])


def test_the_numbers_are_torch_fidelitys(sets, scored, weights):
    """FID and KID match torch-fidelity's own calculate_metrics on the same folders, its resize-and-crop option
    bringing the 48-px images to the edits' 32 px as ours does."""
    import torch_fidelity

    edits, _, other = sets
    theirs = torch_fidelity.calculate_metrics(
        input1=str(edits[0].parent), input2=str(other), cuda=False, fid=True, kid=True, kid_subset_size=3,
        samples_resize_and_crop=32, feature_extractor_weights_path=str(weights), verbose=False, cache=False,
        save_cpu_ram=True,
    )  # fmt: skip
    ours = scored[1]
    assert ours["fid"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-4)
    assert ours["kid_mean"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-3)
    assert ours["kid_std"] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-3)


def test_without_weights_offline_it_says_where_to_get_them(sets, weights, monkeypatch, tmp_path):
    edits, real, _ = sets
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    line = refused_by(
        lambda: realism(edits, real, cache=tmp_path / "cache", offline=True), match=WEIGHTS_FILE, error=CheckpointError
    )
    assert WEIGHTS_URL in line and "--fid-weights" in line
    assert not (tmp_path / "hub").exists()
    # a copy in torch's hub cache, where torch-fidelity itself downloads it, is used as it is
    hub_copy = tmp_path / "hub" / "checkpoints" / WEIGHTS_FILE
    hub_copy.parent.mkdir(parents=True)
    hub_copy.symlink_to(weights)
    assert realism_module.inception_weights(None, tmp_path / "cache", offline=True) == hub_copy


def test_hostile_inputs_are_refused_in_one_line(sets, weights, tmp_path):
    edits, real, _ = sets
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no pictures here")
    refused_by(lambda: realism(edits, empty, weights=weights), match="no images", error=UsageError, watch=[empty])
    refused_by(lambda: realism(edits, edits[0], weights=weights), match="not a folder", error=UsageError)
    refused_by(lambda: realism(edits, tmp_path / "gone", weights=weights), match="no such folder", error=UsageError)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a weights file at all" * 10)
    refused_by(lambda: realism(edits, real, weights=junk), match="junk.pth", error=CheckpointError)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3, 3, 3, 3)}, wrong)
    refused_by(
        lambda: realism(edits, real, weights=wrong), match="not torch-fidelity's Inception", error=CheckpointError
    )
    bad = tmp_path / "nan.pth"
    torch.save({k: v.fill_(math.nan) if v.is_floating_point() else v for k, v in torch.load(weights).items()}, bad)
    refused_by(lambda: realism(edits, real, weights=bad), match="NaN", error=CheckpointError)
    refused_by(lambda: realism(edits, real, weights=tmp_path / "none.pth"), match="no such file", error=CheckpointError)
    refused_by(lambda: realism([tmp_path / "missing.png"], real, weights=weights), match="not a readable image")
    refused_by(lambda: realism(edits, real, weights=weights, kid_subset=1), match="KID subset")


def test_absurd_folders_are_refused(sets, weights, tmp_path, monkeypatch):
    edits, _, _ = sets
    big = tmp_path / "big"
    big.mkdir()
    # a PNG header that declares 30000 x 30000 pixels: refused from the header, never decoded
    Image.new("RGB", (8, 8)).save(big / "a.png")
    data = bytearray((big / "a.png").read_bytes())
    import struct
    import zlib

    data[16:24] = struct.pack(">II", 30000, 30000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    (big / "a.png").write_bytes(bytes(data))
    refused_by(lambda: realism(edits, big, weights=weights), match="a.png", error=UsageError)
    many = tmp_path / "many"
    write_images(many, "smooth", 4, size=8)
    monkeypatch.setattr(realism_module, "MAX_IMAGES", 3)
    refused_by(lambda: realism(edits[:2], many, weights=weights), match="more than 3 images", error=UsageError)
    refused_by(lambda: realism(edits, many, weights=weights), match="more than 3 edited images", error=UsageError)
