"""StyleGAN-NADA: the losses, the layer choice and the training steps against NADA's algorithm (tests/nada_reference.py),
and the adaptation run: its folder, exact resume, StyleGAN3, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import styleclip
from styleclip.guidance.clip import load_clip
from styleclip.guidance.directional import (
    PATCH_SIZE,
    CombinedClipLoss,
    DirectionalClipLoss,
    image_features,
    text_direction,
)
from styleclip.training import adapt_layers
from styleclip.training.adapt import AdaptConfig, Adapter, adapt

from conftest import tiny_generator, tiny_generator3
from hostile import refused_by
from nada_reference import NadaClipLoss, NadaReference, n_latent_check, rosinality_modules

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest.one_thread


@pytest.fixture(scope="module")
def guides(tmp_path_factory):
    """Two different tiny CLIPs (NADA's README adapts with two models)."""
    from conftest import tiny_clip

    folder = tmp_path_factory.mktemp("clips")
    out = []
    for seed in (0, 1):
        model = tiny_clip()
        if seed:
            torch.manual_seed(seed)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.02 * torch.randn_like(p))
        path = folder / f"clip{seed}.pt"
        torch.save(model.state_dict(), path)
        out.append(load_clip(str(path), device="cpu"))
    return out


def reference_loss(guide, source="photo", target="sketch", **kw) -> NadaClipLoss:
    return NadaClipLoss(guide.model, guide.resolution, source, target, **kw)


def pictures(seed: int, n: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed)).clamp(-1, 1)


# -- the losses --------------------------------------------------------------------------------------------------


def test_text_direction_is_nadas(guides):
    ours = text_direction(guides[0], "photo", "sketch")
    ref = reference_loss(guides[0]).text_direction()
    assert ours.shape == ref.shape == (1, guides[0].embed_dim)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)
    # NADA averages per-template differences of unit embeddings: not the difference of renormalised means
    plain = guides[0].direction("sketch", "photo", templates="styleclip").reshape(1, -1)
    assert (plain - ref).abs().max() > 1e-5


def test_image_features_are_nadas_preprocessing(guides):
    imgs = pictures(0, size=48)  # a side other than CLIP's: the resize matters
    torch.testing.assert_close(image_features(guides[0], imgs), reference_loss(guides[0]).image_features(imgs))


def test_directional_loss_and_gradient_match_nada(guides):
    frozen, adapted = pictures(1), pictures(2).requires_grad_(True)
    ours = DirectionalClipLoss(guides[0], "photo", "sketch")
    loss = ours(frozen, adapted)
    (grad,) = torch.autograd.grad(loss, adapted)
    adapted_ref = adapted.detach().clone().requires_grad_(True)
    ref = reference_loss(guides[0])(frozen, adapted_ref)
    (grad_ref,) = torch.autograd.grad(ref, adapted_ref)
    torch.testing.assert_close(loss, ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(grad, grad_ref, atol=1e-7, rtol=1e-4)
    assert 0 < float(loss.detach()) < 2


def test_equal_pictures_take_nadas_nudge(guides):
    """At the first step both copies draw the same picture: the direction is taken from a 1e-6 nudge, not 0/0."""
    imgs = pictures(3)
    loss = DirectionalClipLoss(guides[0], "photo", "sketch").directional_loss(imgs, imgs.clone())
    ref = reference_loss(guides[0]).directional(imgs, imgs.clone())
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, ref, atol=1e-5, rtol=1e-4)


def test_global_term_and_weights_combine_as_nadas(guides):
    frozen, adapted = pictures(4), pictures(5)
    ours = CombinedClipLoss(
        [DirectionalClipLoss(g, "dog", "cat", direction=1.0, global_=0.5) for g in guides], [1.0, 0.25]
    )
    refs = [reference_loss(g, "dog", "cat", lambda_global=0.5) for g in guides]
    expected = refs[0](frozen, adapted) + 0.25 * refs[1](frozen, adapted)
    torch.testing.assert_close(ours(frozen, adapted), expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(
        ours.global_loss(adapted, "cat"),
        refs[0].global_loss(adapted, "cat") + 0.25 * refs[1].global_loss(adapted, "cat"),
    )


def test_patch_loss_needs_large_pictures_and_scores_part_directions(guides):
    loss = DirectionalClipLoss(guides[0], "dog", "cat", direction=0.0, patch=1.0)
    with pytest.raises(styleclip.UsageError, match="larger than"):
        loss(pictures(6, n=1), pictures(7, n=1))
    big_a, big_b = pictures(6, n=2, size=PATCH_SIZE + 2), pictures(7, n=2, size=PATCH_SIZE + 2)
    value = loss(big_a, big_b, np.random.RandomState(0))
    again = loss(big_a, big_b, np.random.RandomState(0))
    assert torch.isfinite(value) and float(value) == float(again)
    assert loss._part_directions.shape == (15, guides[0].embed_dim)


def test_manifold_loss_is_the_angle_gap(guides):
    frozen, adapted = pictures(8), pictures(9)
    loss = DirectionalClipLoss(guides[0], "photo", "sketch", direction=0.0, manifold=1.0)
    ref = reference_loss(guides[0])
    src = ref.text_features("photo").mean(0)
    tgt = ref.text_features("sketch").mean(0)
    cos_text = (tgt / tgt.norm()) @ (src / src.norm())
    cos_img = (ref.image_features(adapted) * ref.image_features(frozen)).sum(-1)
    torch.testing.assert_close(loss(frozen, adapted), (cos_img - cos_text).abs().mean(), atol=1e-6, rtol=1e-5)


def test_manifold_loss_encodes_the_prompts_once(guides, monkeypatch):
    """NADA caches the prompts' features: a training step must not run 2 x 79 text passes again."""
    from styleclip.guidance import directional

    frozen, adapted = pictures(8), pictures(9)
    loss = DirectionalClipLoss(guides[0], "photo", "sketch", direction=0.0, manifold=1.0)
    first = loss(frozen, adapted)

    def encoded_again(*args, **kwargs):
        raise AssertionError("the prompts were encoded again")

    monkeypatch.setattr(directional, "_encode_texts", encoded_again)
    assert float(loss(frozen, adapted)) == float(first)


def test_same_prompts_are_refused(guides):
    refused_by(lambda: DirectionalClipLoss(guides[0], "photo", "photo"), match="mean the same")


# -- layers ------------------------------------------------------------------------------------------------------


def test_default_layers_are_nadas_input_conv1_and_convs():
    G = tiny_generator()
    modules = rosinality_modules(G)
    names = {n for layer in adapt_layers.default_layers(G) for n in _names(G, layer)}
    expected = {n for m in ["input", "conv1", *(k for k in modules if k.startswith("convs."))] for n in modules[m]}
    assert names == expected
    assert not any(n.startswith("mapping") or ".torgb." in n for n in names)


def test_the_row_table_keeps_nadas_off_by_one():
    G = tiny_generator()
    modules = rosinality_modules(G)
    table = adapt_layers.row_layers(G)
    assert len(table) == G.num_ws == n_latent_check(G)
    nada = ["conv1", "to_rgb1"] + [f"convs.{j}" for j in range(G.num_ws - 2)]
    for layer, name in zip(table, nada, strict=True):
        assert set(_names(G, layer)) == set(modules[name])


def test_stylegan3_trains_nadas_slice_without_affines():
    G = tiny_generator3(num_layers=14)
    layers = adapt_layers.default_layers(G)
    trained = {layer.name for layer in layers}
    assert "synthesis.input" in trained
    left_out = {f"synthesis.{n}" for n in G.synthesis.layer_names} - trained
    assert left_out == {f"synthesis.{G.synthesis.layer_names[10]}", f"synthesis.{G.synthesis.layer_names[12]}"}
    params = {id(p) for layer in layers for p in layer.params}
    for name, p in G.named_parameters():
        if ".affine." in name or name.startswith("mapping"):
            assert id(p) not in params, name


def _names(G, layer) -> list[str]:
    ids = {id(p): n for n, p in G.named_parameters()}
    return [ids[id(p)] for p in layer.params]


# -- training steps against NADA's ------------------------------------------------------------------------------


def _snapshots(G, cfg: AdaptConfig, guides, steps: int):
    """Our trainer's weights after each step, and the latents it drew (fed to the reference)."""
    trainer = Adapter(G, cfg, torch.device("cpu"), guides)
    out = []
    for step in range(steps):
        z = trainer.latents(step)[0]
        g = torch.Generator()
        sel = None
        if cfg.layers == "auto":
            from styleclip.training.adapt import step_rng

            g = step_rng(cfg.seed, step, 1)
            sel = torch.randn(cfg.auto_layer_batch, G.z_dim, generator=g)
        trainer.step(step)
        out.append((z, sel, {n: p.detach().clone() for n, p in trainer.trainable.named_parameters()}))
        out[-1] += (list(trainer.last_layers),)
    return out


@pytest.mark.parametrize("layers", ["auto", "nada"])
def test_adam_steps_match_nada(guides, layers):
    G = tiny_generator(seed=4)
    cfg = AdaptConfig(
        target="sketch", source="photo", layers=layers, auto_layer_k=3, auto_layer_batch=2, noise="const",
        clip_models=("a", "b"), clip_weights=(1.0, 0.5), batch_size=2,
    )  # fmt: skip
    ours = _snapshots(G, cfg, guides, 3)
    ref = NadaReference(
        tiny_generator(seed=4), [reference_loss(g) for g in guides], [1.0, 0.5], "sketch", auto_layer_k=3
    )
    moved = set()
    for step, (z, sel, weights, our_layers) in enumerate(ours):
        chosen = ref.step(z, sel if layers == "auto" else None)
        for name, p in ref.trainable.named_parameters():
            torch.testing.assert_close(weights[name], p.detach(), atol=2e-6, rtol=1e-5, msg=f"step {step}: {name}")
            if (p != G.state_dict()[name]).any():
                moved.add(name)
        if layers == "auto":
            assert len(chosen) == 3
            expected = {n for layer in chosen for n in ref.modules.get(layer, [])}
            ids = {n for n in weights if any(n.startswith(name + ".") or n == name for name in our_layers)}
            assert ids == expected, f"step {step}"
    assert moved and not any(n.startswith("mapping") for n in moved)


def test_selection_scores_rows_as_nada(guides):
    G = tiny_generator(seed=5)
    ref = NadaReference(tiny_generator(seed=5), [reference_loss(guides[0])], [1.0], "sketch", auto_layer_k=2)
    z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(3))
    ref_layers, ref_scores = ref.determine_opt_layers(z)
    loss = CombinedClipLoss([DirectionalClipLoss(guides[0], "photo", "sketch")], [1.0])
    w = G.mapping_forward(z)[:, 0]
    chosen, scores = adapt_layers.select_layers(
        G, w, lambda img: loss.global_loss(img, "sketch"), 2, 1, lambda g, ws: g.synthesize(ws, noise_mode="const")
    )
    torch.testing.assert_close(scores, ref_scores, atol=1e-7, rtol=1e-4)
    modules = rosinality_modules(G)
    assert [set(_names(G, c)) for c in chosen] == [set(modules[m]) for m in ref_layers]


def test_a_step_whose_rows_name_no_layer_trains_nothing(guides, monkeypatch):
    """A 'resnet' StyleGAN2 has no 4x4 ToRGB, the layer NADA's table gives row 1: when the selection picks only that
    row, the step trains nothing instead of failing in backward()."""
    G = tiny_generator(architecture="resnet")
    assert adapt_layers.row_layers(G)[1] is None
    monkeypatch.setattr(adapt_layers, "select_layers", lambda G, *a, **k: ([adapt_layers.row_layers(G)[1]], None))
    before = {k: v.clone() for k, v in G.state_dict().items()}
    result = adapt(G, clips=guides, progress=False, **{**SMALL, "steps": 1, "auto_layer_k": 1})
    assert result.steps_done == 1 and result.history[0]["layers"] == 0
    assert all(torch.equal(before[k], v) for k, v in result.generator.state_dict().items())


# -- the run -----------------------------------------------------------------------------------------------------

SMALL = dict(
    source="photo", target="sketch", clip_models=("a", "b"), clip_weights=(1.0, 1.0), steps=4, log_every=1,
    sample_every=2, checkpoint_every=2, auto_layer_batch=2, samples=2,
)  # fmt: skip


def test_run_folder_and_loading(guides, tmp_path):
    G = tiny_generator()
    result = adapt(G, clips=guides, outdir=tmp_path / "run", progress=False, **SMALL)
    assert (
        result.stopped == "done"
        and result.steps_done == 4
        and result.path == tmp_path / "run" / "generator.safetensors"
    )
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == [
        "step-000001.png", "step-000002.png", "step-000004.png"
    ]  # fmt: skip
    lines = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in lines] == [1, 2, 3, 4] and all(np.isfinite(e["loss"]) for e in lines)
    loaded = styleclip.load_generator(result.path)
    adapted = loaded.meta["adapted"]
    assert adapted["source"] == "photo" and adapted["target"] == "sketch" and adapted["steps"] == 4
    assert adapted["base"]["fingerprint"] == styleclip.stylespace.generator_fingerprint(G)
    ws = G.mapping_forward(G.z_from_seed([1, 2]), truncation_psi=0.7)
    torch.testing.assert_close(loaded.synthesize(ws), result.generator.synthesize(ws))
    assert (loaded.synthesize(ws) - G.synthesize(ws)).abs().max() > 1e-3  # it did move
    for a, b in zip(G.mapping.parameters(), loaded.mapping.parameters(), strict=True):
        assert torch.equal(a, b)  # W codes stay shared with the base


def test_interrupted_then_resumed_equals_uninterrupted(guides, tmp_path):
    def stop_at_two(step, info):
        if step == 2:
            raise KeyboardInterrupt

    first = adapt(tiny_generator(), clips=guides, outdir=tmp_path / "r", progress=False, callback=stop_at_two, **SMALL)
    assert first.stopped == "interrupted" and first.steps_done == 2
    resumed = adapt(tiny_generator(), clips=guides, outdir=tmp_path / "r", resume=True, progress=False, **SMALL)
    straight = adapt(tiny_generator(), clips=guides, progress=False, **SMALL)
    assert resumed.steps_done == 4
    for (name, a), b in zip(resumed.generator.named_parameters(), straight.generator.parameters(), strict=True):
        assert torch.equal(a, b), name
    lines = (tmp_path / "r" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]


def test_resume_refuses_other_settings_and_generators(guides, tmp_path):
    adapt(tiny_generator(), clips=guides, outdir=tmp_path / "r", progress=False, **{**SMALL, "steps": 2})
    refused_by(
        lambda: adapt(tiny_generator(), clips=guides, outdir=tmp_path / "r", resume=True, progress=False,
                      **{**SMALL, "target": "painting"}),
        match="cannot resume",
    )  # fmt: skip
    refused_by(
        lambda: adapt(
            tiny_generator(seed=9), clips=guides, outdir=tmp_path / "r", resume=True, progress=False, **SMALL
        ),
        match="another generator",
    )
    refused_by(
        lambda: adapt(tiny_generator(), clips=guides, outdir=tmp_path / "empty", resume=True, progress=False, **SMALL),
        match="nothing to resume",
    )


def test_mixing_and_fixed_layers_and_stylegan3(guides):
    G = tiny_generator()
    mixed = adapt(G, clips=guides, progress=False, **{**SMALL, "mixing": 1.0, "layers": "nada", "steps": 2})
    assert mixed.steps_done == 2
    for a, b in zip(G.synthesis.b4.torgb.parameters(), mixed.generator.synthesis.b4.torgb.parameters(), strict=True):
        assert torch.equal(a, b)  # NADA's fixed set leaves the ToRGB layers alone
    G3 = tiny_generator3()
    result = adapt(G3, clips=guides[:1], progress=False, **{**SMALL, "clip_models": ("a",), "clip_weights": (1.0,)})
    moved = [
        n
        for (n, a), b in zip(G3.named_parameters(), result.generator.parameters(), strict=True)
        if not torch.equal(a, b)
    ]
    assert moved and not any(".affine." in n or n.startswith("mapping") for n in moved)


def test_bf16_adaptation_stays_finite(guides):
    result = adapt(tiny_generator(), clips=guides, progress=False, precision="bf16", **{**SMALL, "steps": 2})
    assert all(np.isfinite(e["loss"]) for e in result.history)
    assert all(p.dtype == torch.float32 for p in result.generator.parameters())


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"target": "photo"}, "same text"),
        ({"target": " "}, "--target"),
        ({"clip_weights": (1.0,)}, "one --clip-weights"),
        ({"lr": 0.0}, "--lr"),
        ({"layers": "some"}, "--layers"),
        ({"mixing": 2.0}, "--mixing"),
        ({"direction_weight": 0.0}, "at least one positive"),
        ({"noise": "none"}, "--noise"),
        ({"stepz": 3}, "unknown adaptation setting"),
    ],
)
def test_bad_settings_are_one_line(guides, overrides, match):
    refused_by(lambda: adapt(tiny_generator(), clips=guides, progress=False, **{**SMALL, **overrides}), match=match)


def test_conditional_generator_is_refused(guides):
    refused_by(lambda: adapt(tiny_generator(c_dim=3), clips=guides, progress=False, **SMALL), match="unconditional")


def test_clip_computes_in_the_runs_precision(guides, monkeypatch):
    from styleclip.utils import precision as prec

    seen = []
    real = prec.network_autocast

    def spy(device, own="auto"):
        seen.append(prec.current_precision())
        return real(device, own)

    monkeypatch.setattr(prec, "network_autocast", spy)
    adapt(tiny_generator(), clips=guides, progress=False, precision="bf16", **{**SMALL, "steps": 1})
    assert seen and set(seen) == {"bf16"}


def test_nadas_clip_names_load_by_default(monkeypatch, tmp_path):
    """NADA's --clip_models spelling ("ViT-B/32") names open_clip's OpenAI models; no file of that name is looked for."""
    import open_clip

    from conftest import tiny_clip

    asked = []

    def create_model(arch, pretrained=None, **kwargs):
        asked.append((arch, pretrained))
        return tiny_clip()

    monkeypatch.setattr(open_clip, "create_model", create_model)
    monkeypatch.chdir(tmp_path)
    result = adapt(tiny_generator(), source="photo", target="sketch", steps=1, progress=False, auto_layer_batch=2)
    assert result.steps_done == 1
    assert asked == [("ViT-B-32", "openai"), ("ViT-B-16", "openai")]
