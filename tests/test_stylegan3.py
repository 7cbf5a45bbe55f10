"""StyleGAN3: NVIDIA's filter design, parity with NVIDIA's code, loading, and StyleGAN2's interface.

``tests/data/reference_sg3_<tag>.npz`` hold outputs of NVIDIA's ``training.networks_stylegan3.Generator``
(CPU, fp32, its reference ops) for the deterministic weights of ``reference_weights.fill`` and the
configurations in ``REFERENCE_CONFIGS_SG3``: T and R, 16 to 64 px, conditional, a small clamp, fewer
layers; ``png_transform`` is ``gen_images.py``'s uint8 image with ``--translate=0.3,-0.2 --rotate=25``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import scipy.special
import torch

from styleclip.errors import CheckpointError, UsageError
from styleclip.hub.formats.stylegan3_pkl import config3_from_init_kwargs
from styleclip.hub.generators import load_generator, read_generator_file, save_generator
from styleclip.latents import select_style_layers, select_ws
from styleclip.nets.stylegan2 import Generator
from styleclip.nets.stylegan3 import Generator3, GeneratorConfig3, SynthesisConfig3, make_transform
from styleclip.nets.stylegan3.filters import bessel_j1, design_lowpass, firwin_lowpass, jinc_lowpass
from styleclip.nets.stylegan3.synthesis import layer_schedule
from styleclip.sample import sample

from checkpoint_writers import stylegan3_repo_pickle_bytes
from conftest import tiny_generator, tiny_generator3
from reference_weights import (
    REFERENCE_CONFIGS_SG3,
    REFERENCE_PSI,
    REFERENCE_ROTATE,
    REFERENCE_SEEDS,
    REFERENCE_TRANSLATE,
    fill,
)

DATA = Path(__file__).parent / "data"
TOLERANCE = 1e-4


# -- filter design ---------------------------------------------------------------------------------------


def _scipy_radial(numtaps, cutoff, width, fs):
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    w = np.kaiser(numtaps, beta)
    f = f * np.outer(w, w)
    return f / f.sum()


@pytest.mark.parametrize("cfg", ["t", "r"])
@pytest.mark.parametrize("resolution", [256, 1024])
def test_every_filter_of_the_official_configs_matches_scipy(cfg, resolution):
    syn = SynthesisConfig3(use_radial_filters=cfg == "r", conv_kernel=1 if cfg == "r" else 3)
    plan = layer_schedule(resolution, 3, syn)
    rates, cutoffs, half = plan["rates"], plan["cutoffs"], plan["half_widths"]
    checked = 0
    for idx in range(syn.num_layers):  # the ToRGB layer has no filters
        prev = max(idx - 1, 0)
        tmp = max(rates[prev], rates[idx]) * syn.lrelu_upsampling
        up_taps = syn.filter_size * int(tmp / rates[prev])
        down_taps = syn.filter_size * int(tmp / rates[idx])
        up = design_lowpass(up_taps, cutoffs[prev], half[prev] * 2, tmp)
        np.testing.assert_allclose(
            up, scipy.signal.firwin(numtaps=up_taps, cutoff=cutoffs[prev], width=half[prev] * 2, fs=tmp), atol=1e-15
        )
        radial = syn.use_radial_filters and idx < syn.num_layers - syn.num_critical
        down = design_lowpass(down_taps, cutoffs[idx], half[idx] * 2, tmp, radial=radial)
        expected = (
            _scipy_radial(down_taps, cutoffs[idx], half[idx] * 2, tmp)
            if radial
            else scipy.signal.firwin(numtaps=down_taps, cutoff=cutoffs[idx], width=half[idx] * 2, fs=tmp)
        )
        np.testing.assert_allclose(down, expected, atol=1e-14)
        checked += 1
    assert checked == 14


def test_filter_primitives_against_scipy():
    x = np.linspace(0, 120, 2001)
    np.testing.assert_allclose(bessel_j1(x), scipy.special.j1(x), atol=1e-13)
    for numtaps, cutoff, width, fs in [(12, 2.0, 4.5, 32), (24, 181.0, 150.0, 1024), (7, 3.0, 2.0, 16)]:
        np.testing.assert_allclose(
            firwin_lowpass(numtaps, cutoff, width, fs),
            scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs),
            atol=1e-15,
        )
    np.testing.assert_allclose(jinc_lowpass(24, 5.0, 6.0, 64), _scipy_radial(24, 5.0, 6.0, 64), atol=1e-15)
    assert design_lowpass(1, 2.0, 1.0, 16) is None


# -- parity with NVIDIA's stylegan3 code -------------------------------------------------------------------


@pytest.fixture(scope="module", params=list(REFERENCE_CONFIGS_SG3))
def case(request):
    tag = request.param
    G = Generator3(config3_from_init_kwargs((), dict(REFERENCE_CONFIGS_SG3[tag]))).eval().requires_grad_(False)
    state = dict(G.named_parameters())
    state.update(G.named_buffers())
    fill(state, seed=0)
    return tag, G, dict(np.load(DATA / f"reference_{tag}.npz"))


def test_mapping_matches_official(case):
    _, G, ref = case
    z = G.z_from_seed(list(REFERENCE_SEEDS))
    np.testing.assert_array_equal(z.numpy(), ref["z"])
    c = torch.from_numpy(ref["c"]) if "c" in ref else None
    np.testing.assert_allclose(G.mapping_forward(z, c, REFERENCE_PSI).numpy(), ref["ws"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("modulation", ["fused", "activation"])
def test_synthesis_matches_official(case, modulation):
    tag, G, ref = case
    ws = torch.from_numpy(ref["ws"])
    diff = np.abs(G.synthesize(ws, modulation=modulation).numpy() - ref["img"]).max()
    assert diff < TOLERANCE, f"{tag}: max |diff| {diff:.2e}"
    transform = make_transform(REFERENCE_TRANSLATE, REFERENCE_ROTATE)
    img = G.synthesize(ws, modulation=modulation, transform=transform)
    diff = np.abs(img.numpy() - ref["img_transform"]).max()
    assert diff < TOLERANCE, f"{tag} with a transform: max |diff| {diff:.2e}"


def test_gen_images_png_levels_match(case):
    """The whole of gen_images.py: seed -> z -> psi 0.7 -> transform in the buffer -> uint8 PNG pixels."""
    _, G, ref = case
    G.set_transform(REFERENCE_TRANSLATE, REFERENCE_ROTATE)
    try:
        c = torch.from_numpy(ref["c"]) if "c" in ref else None
        img = G(G.z_from_seed(list(REFERENCE_SEEDS)), c, truncation_psi=REFERENCE_PSI)
    finally:
        G.set_transform()
    png = (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
    assert np.abs(png.astype(int) - ref["png_transform"].astype(int)).max() <= 1  # acceptance: 2 levels


def test_styles_match_official(case):
    _, G, ref = case
    styles = G.styles(torch.from_numpy(ref["ws"]))
    assert {k.split("/", 1)[1] for k in ref if k.startswith("styles_mean/")} == set(styles)
    for name, s in styles.items():
        np.testing.assert_allclose(s.mean(dim=1).numpy(), ref[f"styles_mean/{name}"], rtol=1e-5, atol=1e-5)


# -- loading -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["t", "r"])
def test_stylegan3_pickle_loads_without_running_code(tmp_path, kind):
    extra = dict(conv_kernel=1, use_radial_filters=True) if kind == "r" else {}
    G = tiny_generator3(seed=3, **extra)
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(stylegan3_repo_pickle_bytes(G))  # its persistence loader raises if it is ever called
    loaded = load_generator(path, device="cpu")
    assert type(loaded) is Generator3 and loaded.meta["format"] == "stylegan3-pytorch"
    assert loaded.config == G.config
    ws = G.mapping_forward(G.z_from_seed([1, 2]), truncation_psi=0.7)
    assert torch.equal(loaded.synthesize(ws), G.synthesize(ws))


def test_unknown_classes_and_arguments_are_refused(tmp_path):
    G = tiny_generator3()
    path = tmp_path / "x.pkl"
    data = stylegan3_repo_pickle_bytes(G).replace(b"SynthesisInput", b"SynthesisInpuX")
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="SynthesisInpuX") as info:
        read_generator_file(path)
    assert "\n" not in str(info.value)
    from checkpoint_writers import stylegan3_init_kwargs

    kwargs = stylegan3_init_kwargs(G)
    kwargs["mystery_knob"] = 3
    path.write_bytes(stylegan3_repo_pickle_bytes(G, init_kwargs=kwargs))
    with pytest.raises(CheckpointError, match="mystery_knob"):
        read_generator_file(path)


def test_stylegan2_of_the_stylegan3_repository_loads_as_stylegan2(tmp_path):
    G = tiny_generator(seed=4)
    path = tmp_path / "stylegan2-ffhqu.pkl"
    path.write_bytes(stylegan3_repo_pickle_bytes(G))  # flat synthesis arguments, fused_modconv_default
    loaded, fmt = read_generator_file(path)
    assert type(loaded) is Generator and fmt == "stylegan2-ada-pytorch" and loaded.config == G.config
    loaded.requires_grad_(False)
    ws = G.mapping_forward(G.z_from_seed(5))
    assert torch.equal(loaded.synthesize(ws), G.synthesize(ws))


def test_safetensors_round_trip(tmp_path):
    G = tiny_generator3(resolution=32, seed=2, conv_kernel=1, use_radial_filters=True)
    G.meta["asset"] = "x"
    loaded = load_generator(save_generator(G, tmp_path / "g.safetensors"), device="cpu")
    assert type(loaded) is Generator3 and loaded.config == G.config and loaded.meta["asset"] == "x"
    for (name, a), (_, b) in zip(G.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert GeneratorConfig3.from_dict(G.config.to_dict()) == G.config


def test_forged_sizes_are_refused_before_allocation():
    with pytest.raises(CheckpointError, match="implausible"):
        from styleclip.hub.formats.state import build_generator

        build_generator(GeneratorConfig3(synthesis=SynthesisConfig3(num_layers=500)), 10, "x")


# -- StyleGAN2's interface -----------------------------------------------------------------------------


def test_style_layers_name_every_w_row_once(tiny_G3):
    G = tiny_G3
    names = [layer.name for layer in G.style_layers]
    assert names[0] == "input" and names[1:] == G.synthesis.layer_names
    assert [layer.w_index for layer in G.style_layers] == list(range(G.num_ws))
    assert [layer.kind for layer in G.style_layers] == ["input"] + ["conv"] * 6 + ["torgb"]
    resolutions = [layer.resolution for layer in G.style_layers]
    assert resolutions == sorted(resolutions) and resolutions[0] == 4 and resolutions[-1] == G.img_resolution
    styles = G.styles(G.mapping_forward(G.z_from_seed([0, 1])))
    assert [tuple(s.shape) for s in styles.values()] == [(2, layer.channels) for layer in G.style_layers]


def test_three_spaces_are_one_network(tiny_G3):
    G = tiny_G3
    ws = G.mapping_forward(G.z_from_seed([3, 4]), truncation_psi=0.5)
    img = G.synthesize(ws)
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()
    assert torch.equal(G.synthesis_from_styles(G.styles(ws)), img)
    assert torch.equal(G.synthesize(ws[:, 0]), G.synthesize(ws[:, :1].expand(-1, G.num_ws, -1)))
    single = torch.cat([G.synthesize(ws[i : i + 1]) for i in range(2)])
    assert (single - img).abs().max() < 1e-5
    assert (G.synthesize(ws, modulation="activation") - img).abs().max() < 1e-5


def test_float16_layers_stay_close_to_float32():
    G = tiny_generator3(resolution=32, num_fp16_res=1)
    assert any(layer.use_fp16 for layer in G.synthesis.layers()) and not G.synthesis.layers()[0].use_fp16
    ws = G.mapping_forward(G.z_from_seed([0, 1]))
    full, half = G.synthesize(ws), G.synthesize(ws, force_fp32=False)  # CUDA's default, forced on the CPU
    assert half.dtype == torch.float32 and 0 < (full - half).abs().max() < 2e-2 * full.abs().max()


def test_gradients_reach_w_plus_and_styles(tiny_G3):
    G = tiny_G3
    ws = G.mapping_forward(G.z_from_seed(0)).requires_grad_(True)
    G.synthesize(ws).square().mean().backward()
    assert torch.isfinite(ws.grad).all() and (ws.grad.abs().sum(dim=2) > 0).all()  # every row matters
    styles = {k: v.detach().requires_grad_(True) for k, v in G.styles(ws.detach()).items()}
    G.synthesis_from_styles(styles).mean().backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in styles.values())


# -- the plain-PyTorch ops -------------------------------------------------------------------------------


def _naive_upsample(x, f, up, padding):
    """NVIDIA's definition, step by step in float64: zero insertion, padding (negative crops), 2D FIR."""
    n, c, h, w = x.shape
    z = torch.zeros(n, c, h * up, w * up, dtype=torch.float64)
    z[:, :, ::up, ::up] = x.double()
    z = torch.nn.functional.pad(z, list(padding))
    k = torch.outer(f, f).double().flip([0, 1]) * up**2
    return torch.nn.functional.conv2d(z, k[None, None].expand(c, 1, *k.shape), groups=c)


@pytest.mark.parametrize("up, padding", [(2, (9, 8, 9, 8)), (4, (-6, -9, -6, -9)), (2, (-11, -12, -11, -12)),
                                         (2, (3, 5, 0, 2)), (4, (0, 0, 0, 0)), (2, (20, 1, -3, 14))])  # fmt: skip
@pytest.mark.parametrize("nhwc", [False, True])
def test_upsampling_is_zero_insertion_padding_and_filtering(up, padding, nhwc):
    # the first three are NVIDIA's layer schedules (the cropping convolution), the others take the padding pass
    from styleclip.nets.stylegan3.ops import upsample_fir

    torch.manual_seed(0)
    x, f = torch.randn(2, 3, 24, 26), torch.rand(6 * up)
    x = x.contiguous(memory_format=torch.channels_last) if nhwc else x
    got = upsample_fir(x, f, up, padding)
    assert got.shape == _naive_upsample(x, f, up, padding).shape
    assert torch.allclose(got.double(), _naive_upsample(x, f, up, padding), atol=1e-5)


@pytest.mark.parametrize("slope, gain", [(0.2, math.sqrt(2)), (1.0, 1.0), (0.2, 1.0), (1.0, 2.0)])
@pytest.mark.parametrize("clipped", [False, True])
@pytest.mark.parametrize("nhwc", [False, True])
def test_leaky_relu_clamp_matches_autograd(slope, gain, clipped, nhwc):
    from styleclip.nets.stylegan3.ops import leaky_relu_clamp

    torch.manual_seed(0)
    x = torch.randn(2, 4, 6, 5, dtype=torch.float64) * (3 if clipped else 0.3)
    x = x.contiguous(memory_format=torch.channels_last) if nhwc else x
    up = torch.randn_like(x)
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    expected = (torch.nn.functional.leaky_relu(a, slope) * gain).clamp(-2, 2)
    got = leaky_relu_clamp(b * 1, slope, gain, 2.0)  # (its input is a fresh tensor, as in the layer)
    assert got.grad_fn is not None and "LeakyReluClamp" in type(got.grad_fn).__name__
    assert torch.equal(got, expected) and ((expected.abs() == 2).any() == clipped)
    (expected * up).sum().backward()
    (got * up).sum().backward()
    assert torch.allclose(a.grad, b.grad, rtol=0, atol=1e-15)
    with torch.no_grad():
        assert torch.equal(leaky_relu_clamp(x.clone(), slope, gain, 2.0), expected)


@pytest.mark.parametrize("kernel", [3, 1])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("batch", [1, 2])
def test_modulated_convolution_keeps_nhwc(kernel, fused, batch):
    from styleclip.nets.stylegan3.ops import modulated_conv2d

    torch.manual_seed(0)
    x, weight, styles = torch.randn(batch, 6, 5, 5), torch.randn(4, 6, kernel, kernel), torch.randn(batch, 6)
    nchw = modulated_conv2d(x, weight, styles, fused=fused)
    nhwc = modulated_conv2d(x.contiguous(memory_format=torch.channels_last), weight, styles, fused=fused)
    if not (fused and batch > 1):  # (a grouped convolution over the batch gives the samples' channels interleaved)
        assert nhwc.is_contiguous(memory_format=torch.channels_last) and not nhwc.is_contiguous()
    assert torch.allclose(nhwc, nchw, atol=1e-5)


def test_the_cpu_synthesis_stays_nhwc(tiny_G3):
    # layout changes cost a copy of the layer's activations each: the whole network runs in NHWC on the CPU
    seen = []
    hooks = [layer.register_forward_hook(lambda m, i, o: seen.append(o.is_contiguous(memory_format=torch.channels_last)))
             for layer in tiny_G3.synthesis.layers()[:-1]]  # fmt: skip
    try:
        ws = tiny_G3.mapping_forward(tiny_G3.z_from_seed(0))
        tiny_G3.synthesize(ws)
        tiny_G3.synthesize(ws.requires_grad_(True))
    finally:
        for hook in hooks:
            hook.remove()
    assert len(seen) == 2 * (len(tiny_G3.synthesis.layers()) - 1) and all(seen)


@pytest.mark.parametrize("precision, grads", [("fp32", True), ("bf16", False), ("bf16", True)])
def test_a_cpu_batch_is_drawn_as_its_samples_alone(tiny_G3, precision, grads):
    G = tiny_G3
    styles = {k: v.detach() for k, v in G.styles(G.mapping_forward(G.z_from_seed([0, 1, 2]))).items()}
    transform = torch.stack([torch.eye(3), make_transform((0.1, 0.2), 10), make_transform((0, 0), -30)])

    def draw(rows, split=True):
        s = {k: v[rows].clone().requires_grad_(grads) for k, v in styles.items()}
        G.synthesis.split_samples = split
        try:
            img = G.synthesis.from_styles(s, transform=transform[rows], precision=precision)
            if grads:
                img.square().sum().backward()
        finally:
            G.synthesis.split_samples = True
        return img.detach(), torch.cat([v.grad for v in s.values()], dim=1) if grads else None

    img, grad = draw(slice(0, 3))
    alone = [draw(slice(i, i + 1)) for i in range(3)]
    assert torch.equal(img, torch.cat([a[0] for a in alone]))  # the same arithmetic, bit for bit
    whole, whole_grad = draw(slice(0, 3), split=False)
    assert (img - whole).abs().max() < (5e-2 if precision == "bf16" else 1e-5)
    if grads:
        assert torch.equal(grad, torch.cat([a[1] for a in alone]))
        assert torch.nn.functional.cosine_similarity(grad.flatten(), whole_grad.flatten(), dim=0) > 0.999


def test_transform_translates_and_rotates(tiny_G3):
    G = tiny_G3
    ws = G.mapping_forward(G.z_from_seed(7))
    plain = G.synthesize(ws)
    assert torch.equal(G.synthesize(ws, transform=make_transform()), plain)
    moved = G.synthesize(ws, transform=make_transform((0.25, 0), 0))
    assert (moved - plain).abs().max() > 1e-3
    G.set_transform((0.25, 0), 0)
    try:
        assert torch.equal(G.synthesize(ws), moved)
    finally:
        G.set_transform()
    assert torch.equal(G.synthesize(ws), plain)
    # gen_images.py's convention: the generator takes the inverse of [[c, s, tx], [-s, c, ty]].
    m = make_transform((0, 0), 90)
    assert torch.allclose(m[:2, :2], torch.tensor([[0.0, -1.0], [1.0, 0.0]]), atol=1e-6)
    with pytest.raises(ValueError):
        make_transform((math.nan, 0), 0)


def test_layer_groups_follow_detail_scale():
    G = tiny_generator3(resolution=64, num_layers=10, num_critical=2)
    rows = {group: select_ws(group, G).nonzero().flatten().tolist() for group in ("coarse", "medium", "fine")}
    assert rows["coarse"][0] == 0 and rows["fine"][-1] == G.num_ws - 1
    assert sorted(rows["coarse"] + rows["medium"] + rows["fine"]) == list(range(G.num_ws))
    assert max(rows["coarse"]) < min(rows["medium"]) <= max(rows["medium"]) < min(rows["fine"])
    name = G.style_layers[3].name
    assert select_style_layers(name, G) == [name]
    with pytest.raises(UsageError, match="L1_"):
        select_ws("b16.conv0", G)


def test_sample_and_transform_arguments(tiny_G3):
    [a] = list(sample(tiny_G3, [5], truncation_psi=0.7))
    [b] = list(sample(tiny_G3, [5], truncation_psi=0.7, translate=(0.1, 0.2), rotate=30))
    assert torch.equal(a.ws, b.ws) and not torch.equal(a.image, b.image)
    expected = tiny_G3.synthesize(a.ws, transform=make_transform((0.1, 0.2), 30))
    assert torch.equal(b.image, expected)
    with pytest.raises(UsageError, match="StyleGAN3"):
        next(sample(tiny_generator(), [0], rotate=10))


# -- catalogue and real weights ------------------------------------------------------------------------------


def test_catalogue_lists_nvidia_stylegan3_pickles():
    from styleclip.hub.catalog import ASSETS, NVIDIA_NC

    sg3 = {a.name: a for a in ASSETS if a.name.startswith("stylegan3-")}
    for cfg in ("t", "r"):
        for key in ("ffhq", "ffhqu", "ffhqu-256", "metfaces", "metfacesu", "afhqv2"):
            a = sg3.pop(f"stylegan3-{cfg}:{key}")
            assert a.licence == NVIDIA_NC and a.kind == "generator" and a.file_format == "stylegan3-pytorch"
            size = "256x256" if key.endswith("256") else "512x512" if key == "afhqv2" else "1024x1024"
            stem = key.split("-")[0]
            assert a.urls == (
                f"https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
                f"stylegan3-{cfg}-{stem}-{size}.pkl",
            )
            assert "encoder" not in a.defaults  # e4e / ReStyle belong to StyleGAN2's W space
    assert not sg3


@pytest.mark.slow
@pytest.mark.parametrize("name", ["stylegan3-t:afhqv2", "stylegan3-r:afhqv2"])
def test_real_stylegan3_pickle(name):
    """Needs the 330 MB download: the stored filters equal our design, and seeds give sensible images."""
    G = load_generator(name, device="cpu")
    fresh = Generator3(G.config)
    for (key, stored), (_, designed) in zip(G.named_buffers(), fresh.named_buffers(), strict=True):
        if key.endswith("_filter"):
            torch.testing.assert_close(stored, designed, rtol=0, atol=1e-7, msg=key)
    img = G(G.z_from_seed([0, 1]), truncation_psi=0.7)
    assert img.shape == (2, 3, 512, 512) and torch.isfinite(img).all() and 0.2 < img.std() < 1.0
