"""One precision setting: detection, resolution, the bf16 generator path, and edits that keep their quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from styleclip.edits.optimize import optimize
from styleclip.errors import UsageError
from styleclip.guidance.clip import load_clip
from styleclip.io.images import to_uint8
from styleclip.nets.stylegan2.layers import SynthesisLayer, ToRGBLayer
from styleclip.utils import precision as P

from conftest import tiny_generator, varied_generator

INTEL = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile\nbogomips\t: 4000\n"
ZEN3 = "processor\t: 0\nflags\t\t: fpu sse avx2 sha_ni\n"


def test_bf16_flags_come_from_the_cpu_flags_only():
    assert P.bf16_flags(INTEL) == ["amx_bf16", "avx512_bf16"]
    assert P.bf16_flags(ZEN3) == []
    assert P.bf16_flags("vendor_id\t: GenuineIntel\n") == []  # the vendor says nothing


def test_resolution(monkeypatch):
    monkeypatch.delenv("STYLECLIP_PRECISION", raising=False)
    assert P.resolve_precision("bf16", "cpu") == "bf16" and P.resolve_precision("fp32", "cpu") == "fp32"
    monkeypatch.setattr(P, "cpu_native_bf16", lambda: ("amx_bf16",))
    assert P.resolve_precision("auto", "cpu") == "bf16"
    assert P.describe("auto", "bf16", "cpu")["why"] == "CPU with native bf16 (amx_bf16)"
    monkeypatch.setattr(P, "cpu_native_bf16", lambda: ())
    assert P.resolve_precision(None, "cpu") == "fp32"
    monkeypatch.setenv("STYLECLIP_PRECISION", "bf16")
    assert P.resolve_precision("auto", "cpu") == "bf16" and P.resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(UsageError, match="fp16 is slow"):
        P.resolve_precision("fp16", "cpu")
    with pytest.raises(UsageError, match="precision must be one of"):
        P.resolve_precision("int8", "cpu")


def test_this_cpus_auto_precision(monkeypatch):
    monkeypatch.delenv("STYLECLIP_PRECISION", raising=False)
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file() or not P.bf16_flags(cpuinfo.read_text()):
        pytest.skip("this CPU has no native bf16 (AMX-BF16 / AVX512-BF16): auto stays fp32 here")
    assert P.resolve_precision("auto", "cpu") == "bf16"


def _dtypes(G, fn):
    """The output dtypes of every modulated conv layer while ``fn`` runs."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o.dtype)) for m in G.modules()
             if isinstance(m, SynthesisLayer | ToRGBLayer)]  # fmt: skip
    try:
        out = fn()
    finally:
        for h in hooks:
            h.remove()
    return out, seen


@pytest.mark.parametrize("seed", [3, 5])
def test_bf16_synthesis_runs_bf16_end_to_end_and_stays_within_4_levels(seed):
    G = tiny_generator(64, seed=seed)
    ws = G.mapping_forward(G.z_from_seed([1, 2, 3]), truncation_psi=0.7)
    with torch.no_grad():
        raw = [G.synthesize(ws, precision=p) for p in ("fp32", "bf16")]
        # Random weights draw images with std ~3 (mostly clipped); trained generators stay in about [-1, 1].
        # Scale the ToRGB layers until this one does too, as the PNG comparison is meant for real pictures.
        for _ in range(3):
            k = 0.5 / float(G.synthesize(ws).std())
            for name, p in G.named_parameters():
                if "torgb" in name:
                    p.data.mul_(k)
        ref, seen32 = _dtypes(G, lambda: G.synthesize(ws))
        img, seen = _dtypes(G, lambda: G.synthesize(ws, precision="bf16"))
    assert set(seen32) == {torch.float32} and set(seen) == {torch.bfloat16}  # no fp32 between layers
    assert img.dtype == torch.float32 and float(ref.abs().max()) < 2
    levels = np.abs(to_uint8(img).astype(int) - to_uint8(ref).astype(int))
    assert levels.max() <= 4, levels.max()
    raw_levels = np.abs(to_uint8(raw[1]).astype(int) - to_uint8(raw[0]).astype(int))
    assert raw_levels.mean() < 1.0  # even where the random weights' extremes amplify bf16's rounding


def test_scope_reaches_the_generator_and_an_explicit_argument_wins():
    G = tiny_generator(32)
    ws = G.mapping_forward(G.z_from_seed(0))
    with torch.no_grad(), P.computing_in("bf16"):
        _, seen = _dtypes(G, lambda: G.synthesize(ws))
        _, forced = _dtypes(G, lambda: G.synthesize(ws, force_fp32=True))
        _, fp32 = _dtypes(G, lambda: G.synthesize(ws, precision="fp32"))
    assert set(seen) == {torch.bfloat16} and set(forced) == {torch.float32} and set(fp32) == {torch.float32}
    _, outside = _dtypes(G, lambda: G.synthesize(ws))
    assert set(outside) == {torch.float32}


@pytest.mark.parametrize("seeds", [[4], [4, 5]])  # one image: the thin blocks take per-sample weights in bf16
def test_bf16_gradients_agree_with_fp32(seeds):
    G = tiny_generator(32, seed=1)
    ws = G.mapping_forward(G.z_from_seed(seeds), truncation_psi=0.7)
    grads = []
    for precision in ("fp32", "bf16"):
        w = ws.clone().requires_grad_(True)
        G.synthesize(w, precision=precision).square().mean().backward()
        grads.append(w.grad.flatten())
    assert torch.nn.functional.cosine_similarity(*grads, dim=0) > 0.999


def test_clip_follows_the_scope(tiny_clip_file):
    guide = load_clip(str(tiny_clip_file), device="cpu")
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    a = guide.encode_image(img)
    with P.computing_in("bf16"):
        b = guide.encode_image(img)
    assert a.dtype == b.dtype == torch.float32
    assert not torch.equal(a, b) and (a * b).sum(-1).min() > 0.99


def test_a_bf16_edit_matches_the_fp32_edit(tiny_clip_file):
    """StyleCLIP's 150 steps: the bf16 latent within 2 % (relative L2) of fp32's, the CLIP gain within 5 %."""
    G = varied_generator()
    guide = load_clip(str(tiny_clip_file), device="cpu")
    runs = {}
    for precision in ("fp32", "bf16"):
        [r] = optimize(G, "a red dog", guide, seeds=[7], steps=150, precision=precision, progress=False)
        runs[precision] = r
    a, b = runs["fp32"], runs["bf16"]
    assert b.precision == {"requested": "bf16", "used": "bf16", "why": "asked for"}
    rel = float((b.latent - a.latent).norm() / a.latent.norm())
    gain_a, gain_b = a.clip_after - a.clip_before, b.clip_after - b.clip_before
    assert gain_a > 0.02
    assert rel < 0.02, rel
    assert abs(gain_b - gain_a) < 0.05 * abs(gain_a), (gain_a, gain_b)


def test_edit_report_records_the_precision(tmp_path, tiny_clip_file):
    from styleclip.cli.main import main
    from styleclip.hub.generators import save_generator

    gen = save_generator(tiny_generator(32), tmp_path / "g.safetensors")
    argv = ["edit", "--generator", str(gen), "--clip", str(tiny_clip_file), "--prompt", "a cat", "--steps", "2",
            "--precision", "bf16", "--no-video", "--device", "cpu", "--outdir", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["precision"]["used"] == "bf16" and report["config"]["precision"] == "bf16"


def test_stylegan3_follows_the_precision_too():
    from conftest import tiny_generator3

    G = tiny_generator3()
    ws = G.mapping_forward(G.z_from_seed([1, 2]), truncation_psi=0.7)
    with torch.no_grad():
        ref = G.synthesize(ws)
        with P.computing_in("bf16"):
            img = G.synthesize(ws)
    assert img.dtype == torch.float32 and not torch.equal(img, ref)
    assert float((img - ref).norm() / ref.norm()) < 0.03
    # the layers hand bf16 on (the resampling inside runs in fp32 on CPUs), and gradients follow fp32's
    seen = []
    hooks = [layer.register_forward_hook(lambda m, i, o: seen.append(o.dtype)) for layer in G.synthesis.layers()]
    grads = []
    for precision in ("fp32", "bf16"):
        w = ws.clone().requires_grad_(True)
        with P.computing_in(precision):
            G.synthesize(w).square().mean().backward()
        grads.append(w.grad.flatten())
    for hook in hooks:
        hook.remove()
    assert seen[len(seen) // 2 :] == [torch.bfloat16] * (len(seen) // 2)
    assert float(torch.nn.functional.cosine_similarity(*grads, dim=0)) > 0.999


@pytest.mark.parametrize("activation", ["lrelu", "swish"])  # swish: its gain sqrt(2) comes after the activation
def test_noise_added_by_the_convolution_matches_the_separate_sum(monkeypatch, activation):
    from styleclip.nets.stylegan2 import layers

    G = tiny_generator(32, seed=3, activation=activation)
    assert all(float(m.noise_strength) != 0 for m in G.modules() if isinstance(m, SynthesisLayer))
    ws = G.mapping_forward(G.z_from_seed([5]), truncation_psi=0.7)
    images = {}
    with torch.no_grad():
        ref = G.synthesize(ws, precision="fp32")
        for conv_adds in (False, True):
            monkeypatch.setattr(layers, "fused_add_available", lambda v=conv_adds: v)
            images[conv_adds] = G.synthesize(ws, precision="bf16")
    for img in images.values():
        assert float((img - ref).norm() / ref.norm()) < 0.02
    assert float((images[True] - images[False]).norm() / ref.norm()) < 0.02
