"""The face parser STIT stitches with (BiSeNet, face-parsing.PyTorch's ``79999_iter.pth`` layout) and STIT's masks.

The parser's weights are random, written by the tests in the published state-dict layout (the layout is spelled out
here from the architecture, independently of styleclip's module names), and the network's forward is compared with a
functional re-implementation that reads the state dict by name.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from styleclip.errors import CheckpointError, UsageError
from styleclip.hub import catalog, registry
from styleclip.hub.catalog import ASSETS
from styleclip.nets.bisenet import BiSeNet, bisenet_from_state_dict
from styleclip.video.masks import (
    BACKGROUND,
    FaceParser,
    foreground,
    load_face_parser,
    parsing_mask,
    stitch_masks,
)
from styleclip.video.stitch import feather_mask, paste
from styleclip.video.track import Square

from hostile import refused_by
from test_registry import Files, serve

WIDTH = 4  # the published model's is 64


def official_shapes(w: int = 64, classes: int = 19) -> dict[str, tuple[int, ...]]:
    """Every key of face-parsing.PyTorch's BiSeNet state dict and its shape, for trunk width ``w``."""
    s: dict[str, tuple[int, ...]] = {}

    def conv(name, cout, cin, k):
        s[f"{name}.weight"] = (cout, cin, k, k)

    def bn(name, c):
        for p in ("weight", "bias", "running_mean", "running_var"):
            s[f"{name}.{p}"] = (c,)
        s[f"{name}.num_batches_tracked"] = ()

    def cbr(name, cin, cout, k):
        conv(f"{name}.conv", cout, cin, k)
        bn(f"{name}.bn", cout)

    conv("cp.resnet.conv1", w, 3, 7)
    bn("cp.resnet.bn1", w)
    cin = w
    for i, cout in enumerate((w, 2 * w, 4 * w, 8 * w), 1):
        for b in range(2):
            p = f"cp.resnet.layer{i}.{b}"
            conv(f"{p}.conv1", cout, cin if b == 0 else cout, 3)
            bn(f"{p}.bn1", cout)
            conv(f"{p}.conv2", cout, cout, 3)
            bn(f"{p}.bn2", cout)
            if b == 0 and i > 1:
                conv(f"{p}.downsample.0", cout, cin, 1)
                bn(f"{p}.downsample.1", cout)
        cin = cout
    for name, c in (("arm16", 4 * w), ("arm32", 8 * w)):
        cbr(f"cp.{name}.conv", c, 2 * w, 3)
        conv(f"cp.{name}.conv_atten", 2 * w, 2 * w, 1)
        bn(f"cp.{name}.bn_atten", 2 * w)
    cbr("cp.conv_head32", 2 * w, 2 * w, 3)
    cbr("cp.conv_head16", 2 * w, 2 * w, 3)
    cbr("cp.conv_avg", 8 * w, 2 * w, 1)
    cbr("ffm.convblk", 4 * w, 4 * w, 1)
    conv("ffm.conv1", w, 4 * w, 1)
    conv("ffm.conv2", 4 * w, w, 1)
    for name, c, mid in (("conv_out", 4 * w, 4 * w), ("conv_out16", 2 * w, w), ("conv_out32", 2 * w, w)):
        cbr(f"{name}.conv", c, mid, 3)
        conv(f"{name}.conv_out", classes, mid, 1)
    return s


def random_state(w: int = WIDTH, classes: int = 19, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the published layout, BatchNorm statistics included (so eval-mode BN matters)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in official_shapes(w, classes).items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(1000)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith(("running_mean", ".bias")):
            sd[k] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 1:  # BN scale
            sd[k] = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            fan_in = shape[1] * shape[2] * shape[3]
            sd[k] = torch.randn(shape, generator=g) * (2 / fan_in) ** 0.5
    return sd


def reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    """BiSeNet's three heads computed functionally from the state dict, by key name."""

    def conv(name, t, stride=1, pad=None):
        wt = sd[f"{name}.weight"]
        return F.conv2d(t, wt, None, stride, wt.shape[-1] // 2 if pad is None else pad)

    def bn(name, t):
        return F.batch_norm(
            t, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"], sd[f"{name}.bias"],
            False, 0.0, 1e-5,
        )  # fmt: skip

    def cbr(name, t):
        return F.relu(bn(f"{name}.bn", conv(f"{name}.conv", t)))

    def block(p, t, stride):
        y = bn(f"{p}.bn2", conv(f"{p}.conv2", F.relu(bn(f"{p}.bn1", conv(f"{p}.conv1", t, stride)))))
        short = (
            bn(f"{p}.downsample.1", conv(f"{p}.downsample.0", t, stride, 0)) if f"{p}.downsample.0.weight" in sd else t
        )
        return F.relu(y + short)

    def arm(name, t):
        f = cbr(f"{name}.conv", t)
        gate = torch.sigmoid(bn(f"{name}.bn_atten", conv(f"{name}.conv_atten", F.adaptive_avg_pool2d(f, 1))))
        return f * gate

    h = F.max_pool2d(F.relu(bn("cp.resnet.bn1", conv("cp.resnet.conv1", x, 2, 3))), 3, 2, 1)
    feats = []
    for i in range(1, 5):
        h = block(f"cp.resnet.layer{i}.1", block(f"cp.resnet.layer{i}.0", h, 1 if i == 1 else 2), 1)
        feats.append(h)
    f8, f16, f32 = feats[1:]
    avg = cbr("cp.conv_avg", F.adaptive_avg_pool2d(f32, 1))
    s32 = arm("cp.arm32", f32) + F.interpolate(avg, f32.shape[2:], mode="nearest")
    u32 = cbr("cp.conv_head32", F.interpolate(s32, f16.shape[2:], mode="nearest"))
    s16 = arm("cp.arm16", f16) + u32
    u16 = cbr("cp.conv_head16", F.interpolate(s16, f8.shape[2:], mode="nearest"))
    fuse = cbr("ffm.convblk", torch.cat([f8, u16], 1))
    gate = torch.sigmoid(conv("ffm.conv2", F.relu(conv("ffm.conv1", F.adaptive_avg_pool2d(fuse, 1)))))
    fuse = fuse * gate + fuse
    heads = [conv(f"{n}.conv_out", cbr(f"{n}.conv", t)) for n, t in (("conv_out", fuse), ("conv_out16", u16),
                                                                      ("conv_out32", u32))]  # fmt: skip
    return [F.interpolate(t, x.shape[2:], mode="bilinear", align_corners=True) for t in heads]


@pytest.fixture(scope="module")
def parser_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("parser") / "79999_iter.pth"
    torch.save(random_state(), path)
    return path


def face_crop(size: int = 64) -> np.ndarray:
    """A synthetic crop: a bright disc (the face) on a dark, textured background."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2
    img = rng.integers(0, 60, (size, size, 3))
    img[disc] = (220, 170, 140)
    return img.astype(np.uint8)


# -- the network ---------------------------------------------------------------------------------------------------


def test_the_module_has_the_published_key_layout():
    for w, classes in ((64, 19), (WIDTH, 19), (8, 5)):
        mine = {k: tuple(v.shape) for k, v in BiSeNet(classes, w).state_dict().items()}
        assert mine == official_shapes(w, classes)
    # the published model: 13.3 M parameters (79999_iter.pth is a 53 MB float32 file)
    assert sum(p.numel() for p in BiSeNet().parameters()) == 13_300_416


def test_forward_matches_a_functional_reimplementation():
    sd = random_state(seed=3)
    net = bisenet_from_state_dict(sd)
    assert (net.width, net.classes) == (WIDTH, 19)
    x = torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = net(x, aux=True)
        main = net(x)
    ref = reference_forward(sd, x)
    assert main.shape == (2, 19, 96, 64)
    assert torch.allclose(main, ours[0])
    for a, b in zip(ours, ref, strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert main.std() > 0.1  # not a degenerate map: the comparison would be vacuous


def test_loads_strictly_by_path_and_labels_at_512(parser_file):
    parser = load_face_parser(parser_file)
    assert isinstance(parser, FaceParser) and parser.net.width == WIDTH
    ref = bisenet_from_state_dict(torch.load(parser_file, weights_only=True))
    crop = face_crop(64)
    labels = parser.labels(crop)
    assert labels.shape == (512, 512) and labels.max() < 19
    # nearest resizing to 512 and ImageNet normalisation, then the main head's argmax
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, (512, 512), mode="nearest")
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        expected = reference_forward(dict(ref.state_dict()), x)[0].argmax(1)[0].numpy()
    assert (labels == expected).mean() > 0.999
    # the same crop as a generator-range tensor batch
    t = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1
    assert (parser.labels(torch.cat([t, t]))[1] == labels).mean() > 0.999


def test_a_file_without_batchnorm_counters_loads(tmp_path):
    sd = {k: v for k, v in random_state().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save(sd, path)
    assert load_face_parser(path).net.classes == 19


@pytest.fixture(scope="module")
def server():
    yield from serve()


def test_loads_by_catalogue_name_and_url_from_a_loopback_server(server, parser_file, monkeypatch, tmp_path):
    Files.files = {"/parser/79999_iter.pth": parser_file.read_bytes()}
    Files.hits.clear()
    patched = [
        dataclasses.replace(a, urls=(f"{server}/gone.pth", f"{server}/parser/79999_iter.pth"))
        if a.name == "face-parsing:bisenet"
        else a
        for a in ASSETS
    ]
    monkeypatch.setattr(catalog, "ASSETS", patched)
    monkeypatch.setattr(registry, "ASSETS", patched)
    monkeypatch.setenv("STYLECLIP_HOME", str(tmp_path / "cache"))
    parser = load_face_parser("face-parsing:bisenet")
    assert parser.source.endswith("parsers/79999_iter.pth")
    assert Files.hits == ["/gone.pth", "/parser/79999_iter.pth"]
    load_face_parser("bisenet")  # the alias, from the cache: no new request
    assert len(Files.hits) == 2
    by_url = load_face_parser(f"{server}/parser/79999_iter.pth")
    crop = face_crop(32)
    assert (by_url.labels(crop) == parser.labels(crop)).all()


def test_the_catalogue_entry():
    entry = registry.get_asset("face-parsing:bisenet", kind="parser")
    assert entry.filename == "79999_iter.pth" and entry.sha256 is None and entry.resolution == 512
    assert entry.urls == ("https://drive.google.com/uc?export=download&id=154JgKpzCPW82qINcVieuPH3fZ2e0P812",)
    assert "MIT" in entry.licence and "CelebAMask-HQ" in entry.licence


# -- STIT's masks ----------------------------------------------------------------------------------------------------


def chebyshev_distance_to(mask: np.ndarray) -> np.ndarray:
    """For every pixel, the Chebyshev distance to the nearest True pixel of ``mask``."""
    from scipy.ndimage import distance_transform_cdt

    return distance_transform_cdt(~mask, metric="chessboard")


def test_foreground_is_every_class_but_background_cloth_and_hat():
    labels = np.arange(19).reshape(1, 19)
    assert BACKGROUND == (0, 16, 18)
    assert foreground(labels)[0].tolist() == [c not in (0, 16, 18) for c in range(19)]


def synthetic_labels(side: int) -> np.ndarray:
    """Hair (17) over skin (1) in a square, a hat (18) above it, cloth (16) below, background elsewhere."""
    lab = np.zeros((side, side), np.uint8)
    q = side // 8
    lab[3 * q : 5 * q, 3 * q : 5 * q] = 1
    lab[3 * q : 3 * q + q // 2, 3 * q : 5 * q] = 17
    lab[2 * q : 3 * q, 3 * q : 5 * q] = 18
    lab[5 * q : 7 * q, 2 * q : 6 * q] = 16
    return lab


@pytest.mark.parametrize("side", [128, 256, 512])
def test_masks_dilate_the_face_by_stit_kernel_scaled_to_the_size(side):
    lab = synthetic_labels(side)
    fg = foreground(lab)
    m = stitch_masks(lab, side)  # at the labels' own size: no resizing, exact sets
    r = round(50 * side / 1024)  # STIT: 50 px at 1024 (25 at its 512-px parse)
    dist = chebyshev_distance_to(fg)
    assert np.array_equal(m.foreground > 0.5, fg)
    assert np.array_equal(m.full > 0.5, dist <= r)
    assert not (m.full[dist > r]).any()  # zero outside the dilated region
    # the ring: what the dilation added (the face is away from the crop's edge here)
    assert np.array_equal(m.border > 0.5, (dist <= r) & ~fg)
    assert np.array_equal(m.content > 0.5, fg)
    # blend: 1 on the face's core, feathered inside the dilated region, 0 outside it
    for x in (m.foreground, m.full, m.border, m.content, m.blend):
        assert x.dtype == np.float32 and x.shape == (side, side) and x.min() >= 0 and x.max() <= 1
    assert m.blend[fg].min() > 0.99
    assert (m.blend[dist > r] == 0).all()
    ramp = (dist > 0) & (dist <= r)
    assert ((m.blend[ramp] > 0.01) & (m.blend[ramp] < 0.99)).any()  # a soft edge, not a cut


def test_masks_resized_to_the_crop_and_zero_at_the_crop_border():
    lab = synthetic_labels(512)
    dist = chebyshev_distance_to(foreground(lab)[::8, ::8]) * 8  # coarse distances in 512-px units
    for size in (64, 256):
        m = stitch_masks(lab, size)
        assert m.blend.shape == (size, size)
        # the dilated region in crop pixels: 25 px of the 512 parse = 50/1024 of the side
        small = F.interpolate(torch.from_numpy(dist[None, None].astype(np.float32)), (size, size), mode="nearest")
        far = small[0, 0].numpy() > 25 + 2 * 512 / size + 8
        assert (m.blend[far] == 0).all() and (m.full[far] == 0).all()
    # a face that runs off the crop: the blend mask still falls (to about 1%) at the crop's edge: eroded with 0
    # outside the crop, then blurred by as much
    lab = np.ones((512, 512), np.uint8)
    m = stitch_masks(lab, 256)
    r = round(25 * 256 / 1024)
    assert m.blend[0].max() < 0.02 and m.blend[:, -1].max() < 0.02 and m.blend[128, 128] > 0.99
    assert m.blend[r, 128] == pytest.approx(0.5, abs=0.1) and m.blend[2 * r, 128] > 0.98
    # and the face within the edge band belongs to the border ring, as in STIT
    assert m.border[0, 128] == 1 and m.border[128, 128] == 0


def test_no_face_gives_an_empty_mask_and_a_bad_map_is_refused():
    assert stitch_masks(np.full((64, 64), 16), 32).blend.max() == 0
    with pytest.raises(UsageError, match="square"):
        stitch_masks(np.zeros((64, 32)), 32)


def test_parsing_mask_is_the_blend_of_the_parsed_original_crop(parser_file):
    parser = load_face_parser(parser_file)
    crop = face_crop(64)
    mask = parsing_mask(parser, crop)
    assert mask.dtype == np.float32 and mask.shape == (64, 64) and mask.min() >= 0 and mask.max() <= 1
    assert np.array_equal(mask, stitch_masks(parser.labels(crop), 64).blend)
    # pasted through it: the frame changes only where the mask is not zero
    frame = np.full((96, 96, 3), 90, np.uint8)
    edited = np.full((64, 64, 3), 250, np.uint8)
    square = Square(c=np.array([48.0, 48.0]), x=np.array([32.0, 0.0]), y=np.array([0.0, 32.0]))
    if mask.max() == 0:  # random weights may parse nothing as a face: give the paste a mask to test
        mask = stitch_masks(synthetic_labels(512), 64).blend
    out = paste(frame, edited, square, mask=mask)
    assert out[48, 48].min() > 200 and (out[:8] == 90).all()
    default = paste(frame, edited, square)  # the feathered square stays the default
    assert np.array_equal(default, paste(frame, edited, square, mask=feather_mask(64)))
    with pytest.raises(UsageError, match="mask"):
        paste(frame, edited, square, mask=np.ones((32, 32), np.float32))


# -- hostile files ---------------------------------------------------------------------------------------------------


def saved(tmp_path, name, obj) -> str:
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def test_wrong_keys_are_refused_in_one_line(tmp_path):
    sd = random_state()
    sd["cp.resnet.layer9.0.conv1.weight"] = sd.pop("cp.resnet.layer4.0.conv1.weight")
    refused_by(lambda: load_face_parser(saved(tmp_path, "renamed.pth", sd)), match=r"unexpected key cp\.resnet\.layer9")
    sd = random_state()
    del sd["ffm.conv1.weight"]
    refused_by(lambda: load_face_parser(saved(tmp_path, "missing.pth", sd)), match=r"missing key ffm\.conv1\.weight")
    sd = random_state()
    sd["ffm.conv2.weight"] = torch.zeros(16, 5, 1, 1)
    refused_by(lambda: load_face_parser(saved(tmp_path, "shape.pth", sd)), match=r"ffm\.conv2\.weight has shape")
    other = {"module.cp.resnet.conv1.weight": torch.zeros(4, 3, 7, 7)}
    refused_by(lambda: load_face_parser(saved(tmp_path, "wrapped.pth", other)), match=r"not a BiSeNet")
    refused_by(lambda: load_face_parser(saved(tmp_path, "tensor.pth", torch.zeros(3))), match=r"not a BiSeNet")
    sd = random_state()
    sd["conv_out.conv_out.weight"][0, 0, 0, 0] = float("nan")
    refused_by(lambda: load_face_parser(saved(tmp_path, "nan.pth", sd)), match=r"NaN")


def test_huge_declared_shapes_are_refused_before_allocating(tmp_path):
    sd = random_state()
    # a trunk of width 10**6 declared by a view: 10**6 * 147 floats that the file does not hold
    sd["cp.resnet.conv1.weight"] = torch.zeros(1).expand(10**6, 3, 7, 7)
    refused_by(lambda: load_face_parser(saved(tmp_path, "wide.pth", sd)), match=r"would take|expanded")
    small = tmp_path / "small.pth"
    torch.save({"cp.resnet.conv1.weight": torch.zeros(2, 2)}, small)
    forged = tmp_path / "forged.pth"
    with zipfile.ZipFile(small) as zin, zipfile.ZipFile(forged, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):  # the storage's 4 values -> 10**9
                data = re.sub(rb"(X\x03\x00\x00\x00cpuq.)K\x04t", lambda m: m.group(1) + b"J\x00\xca\x9a\x3bt", data,
                              count=1, flags=re.S)  # fmt: skip
            zout.writestr(info, data)
    refused_by(lambda: load_face_parser(forged), match=r"declares more bytes than the archive holds")


def test_what_is_not_a_checkpoint_is_refused(tmp_path):
    png = tmp_path / "photo.pth"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    refused_by(lambda: load_face_parser(png), match=r"not a BiSeNet face-parsing checkpoint .*PNG image")
    code = tmp_path / "code.pth"
    code.write_bytes(pickle.dumps(dataclasses.replace, protocol=2))
    refused_by(lambda: load_face_parser(code), match=r"not a BiSeNet|refusing")
    refused_by(lambda: load_face_parser(tmp_path / "absent.pth"), match=r"no such file")
    refused_by(lambda: load_face_parser(tmp_path), match=r"folder|not a")
    with pytest.raises(CheckpointError, match="parser"):
        load_face_parser("arcface:ir-se50", offline=True)  # a catalogue name of another kind
