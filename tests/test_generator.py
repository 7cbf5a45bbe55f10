"""The generator's three editing spaces, truncation, noise, devices and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from styleclip import UsageError

from conftest import tiny_generator


@pytest.mark.parametrize("architecture", ["skip", "orig", "resnet"])
def test_w_wplus_and_style_space_give_the_same_image(architecture):
    G = tiny_generator(architecture=architecture)
    ws = G.mapping_forward(G.z_from_seed([1, 2]), truncation_psi=0.7)
    assert ws.shape == (2, G.num_ws, G.w_dim)
    assert torch.equal(ws[:, 0], ws[:, -1])  # W broadcast to W+
    from_w = G.synthesize(ws[:, 0])
    from_wplus = G.synthesize(ws)
    from_s = G.synthesis_from_styles(G.styles(ws))
    assert from_wplus.shape == (2, 3, 32, 32)
    assert torch.equal(from_w, from_wplus)
    assert torch.equal(from_wplus, from_s)


def test_style_layers_name_every_affine_with_its_resolution():
    G = tiny_generator()
    styles = G.styles(G.mapping_forward(G.z_from_seed(0)))
    names = [info.name for info in G.style_layers]
    assert list(styles) == names
    assert names[:5] == ["b4.conv1", "b4.torgb", "b8.conv0", "b8.conv1", "b8.torgb"]
    for info in G.style_layers:
        assert styles[info.name].shape == (1, info.channels)
        assert info.name.startswith(f"b{info.resolution}.")
        assert 0 <= info.w_index < G.num_ws
    # 17 conv + 9 ToRGB layers at 1024 px (the StyleSpace paper's 26 style vectors); here 32 px: 7 + 4.
    assert sum(i.kind == "conv" for i in G.style_layers) == 7
    assert sum(i.kind == "torgb" for i in G.style_layers) == 4


def test_each_style_layer_is_driven_by_its_own_w():
    G = tiny_generator()
    ws = G.mapping_forward(G.z_from_seed(0))
    base = G.styles(ws)
    for k in range(G.num_ws):
        bumped = ws.clone()
        bumped[:, k] += 1
        changed = {n for n, s in G.styles(bumped).items() if not torch.equal(s, base[n])}
        assert changed == {i.name for i in G.style_layers if i.w_index == k}


def test_gradients_reach_wplus_and_styles_but_not_weights():
    G = tiny_generator()
    ws = G.mapping_forward(G.z_from_seed(0)).requires_grad_(True)
    G.synthesize(ws).square().mean().backward()
    assert ws.grad is not None and ws.grad.abs().sum() > 0
    styles = {k: v.detach().requires_grad_(True) for k, v in G.styles(ws.detach()).items()}
    G.synthesis_from_styles(styles).mean().backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in styles.values())
    assert all(p.grad is None for p in G.parameters())


@pytest.mark.parametrize("batch", [1, 3])
def test_modulation_paths_agree_in_value_and_gradient(batch):
    G = tiny_generator(conv_clamp=0.5)
    ws = G.mapping_forward(G.z_from_seed(list(range(batch))))
    out = {}
    for mode in ("fused", "activation"):
        w = ws.clone().requires_grad_(True)
        img = G.synthesize(w, modulation=mode)
        img.square().sum().backward()
        out[mode] = (img.detach(), w.grad)
    torch.testing.assert_close(out["fused"][0], out["activation"][0], rtol=1e-5, atol=1e-5)
    # Rounding can move a value across the clamp, where the gradient switches off: compare in norm.
    g_fused, g_act = out["fused"][1], out["activation"][1]
    assert (g_fused - g_act).norm() < 1e-3 * g_fused.norm()


def test_truncation_psi_zero_gives_the_average_image():
    G = tiny_generator()
    ws = G.mapping_forward(G.z_from_seed([3, 4]), truncation_psi=0.0)
    avg = G.w_avg.expand_as(ws)
    torch.testing.assert_close(ws, avg, rtol=0, atol=0)
    img = G.synthesize(ws)
    torch.testing.assert_close(img[0], img[1], rtol=0, atol=1e-6)
    # batch 1 takes the fused path on CPU, batch 2 the activation one: equal up to rounding
    torch.testing.assert_close(img[:1], G.synthesize(G.w_avg[None]), rtol=0, atol=1e-4)


def test_truncation_cutoff_only_touches_the_first_layers():
    G = tiny_generator()
    z = G.z_from_seed(5)
    full = G.mapping_forward(z)
    cut = G.mapping_forward(z, truncation_psi=0.5, truncation_cutoff=3)
    torch.testing.assert_close(cut[:, :3], G.w_avg.lerp(full[:, :3], 0.5))
    assert torch.equal(cut[:, 3:], full[:, 3:])


def test_z_from_seed_matches_numpy_and_is_float32():
    G = tiny_generator()
    z = G.z_from_seed(9)
    assert z.dtype == torch.float32
    np.testing.assert_array_equal(z.numpy(), np.random.RandomState(9).randn(1, 16).astype(np.float32))
    # float64 input (NumPy's default) is cast before it reaches the device
    ws64 = G.mapping_forward(np.random.RandomState(9).randn(1, 16))
    assert ws64.dtype == torch.float32
    assert torch.equal(ws64, G.mapping_forward(z))


def test_noise_modes():
    G = tiny_generator()
    ws = G.mapping_forward(G.z_from_seed(0))
    const1, const2 = G.synthesize(ws), G.synthesize(ws, noise_mode="const")
    assert torch.equal(const1, const2)
    gen = torch.Generator().manual_seed(0)
    r1 = G.synthesize(ws, noise_mode="random", generator=gen)
    r2 = G.synthesize(ws, noise_mode="random", generator=gen)
    assert not torch.equal(r1, r2)
    none = G.synthesize(ws, noise_mode="none")
    assert not torch.equal(none, const1)
    with pytest.raises(UsageError, match="noise_mode"):
        G.synthesize(ws, noise_mode="loud")


def test_conditional_generator_needs_and_uses_its_label():
    G = tiny_generator(c_dim=4)
    z = G.z_from_seed(0)
    with pytest.raises(UsageError, match="conditional"):
        G.mapping_forward(z)
    w0 = G.mapping_forward(z, G.label(0))
    w1 = G.mapping_forward(z, G.label(1))
    assert not torch.equal(w0, w1)
    with pytest.raises(UsageError, match="out of range"):
        G.label(4)


def test_shape_errors_are_one_line_and_name_the_expected_shape():
    G = tiny_generator()
    with pytest.raises(UsageError, match=r"W \[N, 16\] or W\+ \[N, 8, 16\]"):
        G.synthesize(torch.zeros(1, 5, 16))
    with pytest.raises(UsageError, match=r"z must be \[N, 16\]"):
        G.mapping_forward(torch.zeros(1, 3))
    styles = G.styles(G.mapping_forward(G.z_from_seed(0)))
    styles.pop("b8.conv1")
    with pytest.raises(UsageError, match=r"b8\.conv1"):
        G.synthesis_from_styles(styles)


def test_fp16_layers_run_in_fp32_on_cpu():
    G = tiny_generator(num_fp16_res=2, conv_clamp=256)
    assert [b.use_fp16 for b in G.synthesis.blocks()] == [False, False, True, True]
    ws = G.mapping_forward(G.z_from_seed(0))
    img = G.synthesize(ws)
    assert img.dtype == torch.float32 and torch.isfinite(img).all()
    assert torch.equal(img, G.synthesize(ws, force_fp32=True))


def test_module_repr_exposes_architecture_facts():
    G = tiny_generator()
    text = repr(G)
    assert "num_ws=8" in text and "img_resolution=32" in text


@pytest.mark.parametrize("modulation", ["fused", "activation"])
@pytest.mark.parametrize("grad", [False, True])
def test_cpu_convolutions_stay_channels_last(monkeypatch, modulation, grad):
    # oneDNN is 1.3-2x faster on NHWC; a stray reshape silently drops the layout for the rest of the net.
    import torch.nn.functional as F

    import styleclip.nets.stylegan2.ops as ops

    seen = []

    def spy(fn):
        def wrapped(x, w, *args, **kwargs):
            y = fn(x, w, *args, **kwargs)
            if x.shape[1] > 3:
                seen.append(
                    x.is_contiguous(memory_format=torch.channels_last)
                    and y.is_contiguous(memory_format=torch.channels_last)
                )
            return y

        return wrapped

    monkeypatch.setattr(ops.F, "conv2d", spy(F.conv2d))
    monkeypatch.setattr(ops.F, "conv_transpose2d", spy(F.conv_transpose2d))
    G = tiny_generator(resolution=64)
    ws = G.mapping_forward(G.z_from_seed(0)).requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        img = G.synthesize(ws, modulation=modulation)
    assert seen and all(seen)
    assert img.is_contiguous()


def test_fp16_layers_compute_the_same_image_in_half_precision():
    # The CUDA fp16 path (pre-normalised weights and styles) also runs on the CPU when asked to.
    G = tiny_generator(num_fp16_res=2, conv_clamp=256)
    ws = G.mapping_forward(G.z_from_seed([0, 1]))
    full = G.synthesize(ws, force_fp32=True)
    for modulation in ("fused", "activation"):
        half = G.synthesize(ws, force_fp32=False, modulation=modulation)
        assert half.dtype == torch.float32  # the image accumulates in fp32
        assert (half - full).abs().max() < 0.05 * full.abs().max()


def test_random_noise_from_a_generator_object():
    G = tiny_generator()
    ws = G.mapping_forward(G.z_from_seed(0))
    a = G.synthesize(ws, noise_mode="random", generator=torch.Generator().manual_seed(3))
    b = G.synthesize(ws, noise_mode="random", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("grad", [False, True])
def test_cpu_batches_drawn_one_sample_at_a_time_from_the_split_resolution(precision, grad):
    # On CPUs the high-resolution blocks draw a batch sample by sample (faster there), and every block does when
    # back-propagating or in bf16; a batch drawn entirely so equals its samples drawn alone, bit for bit (the gradients to W+
    # up to the batched style affines' rounding), and a split batch agrees with the one-batch path.
    # (bf16's rounding moves values across a clamp as tight as 0.5, where gradients switch off: 3-5 % of the gradient)
    G = tiny_generator(conv_clamp=0.5) if precision == "fp32" else tiny_generator()
    syn = G.synthesis
    ws = G.mapping_forward(G.z_from_seed([0, 1, 2]))

    def draw(w, split):
        syn.split_resolution = split
        w = w.clone().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            img = G.synthesize(w, precision=precision)
            if grad:
                img.square().sum().backward()
        return img.detach(), w.grad

    lone = [draw(ws[i : i + 1], 4) for i in range(3)]
    # with gradients or in bf16 the whole network splits whatever the setting
    whole = draw(ws, 16 if grad or precision == "bf16" else 4)
    assert torch.equal(whole[0], torch.cat([img for img, _ in lone]))
    if grad:
        torch.testing.assert_close(whole[1], torch.cat([g for _, g in lone]), rtol=1e-4, atol=1e-5)
    batched, split = draw(ws, 0), draw(ws, 16)
    tol = 1e-5 if precision == "fp32" else 0.02 * float(batched[0].abs().max())
    torch.testing.assert_close(split[0], batched[0], rtol=0, atol=tol)
    if grad:
        assert (split[1] - batched[1]).norm() < (1e-3 if precision == "fp32" else 0.02) * batched[1].norm()


def test_random_noise_keeps_the_batch_whole():
    # so that a seeded torch.Generator draws the same noise however the synthesis is split
    G = tiny_generator()
    ws = G.mapping_forward(G.z_from_seed([0, 1]))
    out = []
    for split in (0, 4):
        G.synthesis.split_resolution = split
        out.append(G.synthesize(ws, noise_mode="random", generator=torch.Generator().manual_seed(3)))
    assert torch.equal(*out)
