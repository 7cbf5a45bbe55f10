"""Latent optimisation on the tiny generator and tiny CLIP: the method's promises, one test each."""

from __future__ import annotations

import math

import pytest
import torch

from styleclip import OptimizeConfig, UsageError, load_clip, optimize
from styleclip.guidance.identity import IdentityLoss
from styleclip.nets.arcface import IRSE
from styleclip.utils.schedules import learning_rate

from conftest import tiny_generator


@pytest.fixture(scope="module")
def G():
    return tiny_generator()


@pytest.fixture(scope="module")
def guide(tiny_clip_file):
    return load_clip(tiny_clip_file, device="cpu")


def run(G, guide, prompts="a happy dog", **kw):
    kw.setdefault("seeds", [3])
    kw.setdefault("steps", 12)
    return optimize(G, prompts, guide, progress=False, **kw)


def test_clip_term_falls_and_the_latent_moves(G, guide):
    [r] = run(G, guide, steps=30)
    assert r.stopped == "completed" and r.steps_done == 30 and len(r.history) == 30
    assert r.history[-1]["clip"] < r.history[0]["clip"]
    assert r.clip_after > r.clip_before
    assert not torch.equal(r.latent, r.source_latent)
    assert r.latent.shape == (1, G.num_ws, G.w_dim) and r.image.shape == (1, 3, 32, 32)


def test_large_l2_weight_keeps_the_latent_near_the_source(G, guide):
    [free] = run(G, guide, l2_weight=0.0, steps=20)
    [tied] = run(G, guide, l2_weight=1e4, steps=20)
    far = (free.latent - free.source_latent).norm()
    near = (tied.latent - tied.source_latent).norm()
    assert near < 0.1 * far, (near, far)


def test_w_space_keeps_all_rows_tied(G, guide):
    [r] = run(G, guide, space="w")
    assert torch.equal(r.latent, r.latent[:, :1].expand_as(r.latent))
    assert not torch.equal(r.latent, r.source_latent)


def test_layer_selection_leaves_frozen_rows_bit_identical(G, guide):
    [r] = run(G, guide, layers="coarse")  # rows 0-3 (4 and 8 px)
    assert torch.equal(r.latent[:, 4:], r.source_latent[:, 4:])
    assert not torch.equal(r.latent[:, :4], r.source_latent[:, :4])


def test_style_space_changes_only_the_chosen_layers(G, guide):
    [r] = run(G, guide, space="s", layers="b16.conv0,b16.conv1")
    base = G.styles(r.source_latent)
    changed = {k for k in base if not torch.equal(base[k], r.styles[k])}
    assert changed == {"b16.conv0", "b16.conv1"}
    torch.testing.assert_close(r.image, G.synthesis_from_styles(r.styles))


def test_unknown_layer_is_a_clear_error(G, guide):
    with pytest.raises(UsageError, match=r"unknown layer 'b999\.conv0'"):
        run(G, guide, layers="b999.conv0")
    with pytest.raises(UsageError, match="no fine layers"):
        run(G, guide, layers="fine")  # a 32-px generator stops at 32 px


def test_nan_guard_keeps_the_last_good_result(G, guide):
    [r] = run(G, guide, lr=1e30, steps=10)
    assert r.stopped == "nan" and "NaN" in r.message and "\n" not in r.message
    assert torch.isfinite(r.latent).all() and torch.isfinite(r.image).all()
    assert all(math.isfinite(h["total"]) for h in r.history)


def test_ctrl_c_from_a_callback_returns_the_best_so_far(G, guide):
    def interrupt(step, info):
        if step == 5:
            raise KeyboardInterrupt

    [r] = run(G, guide, callback=interrupt)
    assert r.stopped == "interrupted" and r.steps_done == 6 and len(r.history) == 6
    [b] = run(G, guide, max_steps=6)  # a step budget stops at the same place with the same choice
    assert b.stopped == "budget"
    assert torch.equal(r.latent, b.latent)
    best = min(range(6), key=lambda i: r.history[i]["total"])
    assert best > 0 and not torch.equal(r.latent, r.source_latent)


def test_batch_of_two_prompts_and_two_seeds(G, guide):
    results = run(G, guide, ["a happy dog", "a tiger"], seeds=[1, 2], steps=5)
    assert [(r.prompt, r.seed) for r in results] == [
        ("a happy dog", 1),
        ("a happy dog", 2),
        ("a tiger", 1),
        ("a tiger", 2),
    ]
    [alone] = run(G, guide, "a tiger", seeds=[2], steps=5)
    torch.testing.assert_close(results[3].latent, alone.latent, atol=1e-5, rtol=0)


def test_reproducible_from_the_config(G, guide):
    [a] = run(G, guide, augment=2, steps=6)
    config = OptimizeConfig.from_dict(a.config.to_dict())
    [b] = optimize(G, clip=guide, config=config, progress=False)
    assert torch.equal(a.latent, b.latent)


def test_frames_count_and_size(G, guide):
    [r] = run(G, guide, steps=10, frame_every=3)
    assert len(r.frames) == len(range(0, 10, 3)) + 1  # steps 0, 3, 6, 9 and the final image
    assert all(f.shape == (32, 32, 3) and f.dtype.name == "uint8" for f in r.frames)
    streamed = []
    run(G, guide, steps=10, frame_every=3, on_frame=lambda i, step, f: streamed.append(step))
    assert streamed == [0, 3, 6, 9, 10]


def test_free_generation_starts_from_the_mean_latent(G, guide):
    [r] = run(G, guide, mode="free", seeds=[])
    assert torch.equal(r.source_latent[0, 0], G.w_avg)
    assert all(h["l2"] == 0 for h in r.history) and r.seed is None


def test_directional_loss_and_its_neutral_prompt(G, guide):
    with pytest.raises(UsageError, match="neutral"):
        run(G, guide, loss="directional")
    [r] = run(G, guide, loss="directional", neutral="a dog")
    assert r.history[-1]["clip"] < r.history[0]["clip"]


def test_identity_term_for_faces(G, guide):
    ident = IdentityLoss(IRSE(50))
    [r] = run(G, guide, steps=3, id_weight=0.5, identity=ident)
    assert r.identity_similarity is not None and -1 <= r.identity_similarity <= 1
    assert r.history[0]["id"] == pytest.approx(0, abs=1e-5) and r.history[-1]["id"] > 0
    G.meta["domain"] = "face"
    try:  # the face domain turns it on by default
        [f] = run(G, guide, steps=2, identity=ident)
        assert f.identity_similarity is not None
    finally:
        G.meta.pop("domain")
    [n] = run(G, guide, steps=2)
    assert n.identity_similarity is None


def test_bad_settings_are_one_line_errors(G, guide):
    for kw, match in [
        ({"steps": 0}, "steps must be at least 1"),
        ({"space": "z"}, "space must be"),
        ({"lr": float("nan")}, "lr must be"),
        ({"image": "photo.jpg"}, "no such file"),
    ]:
        with pytest.raises(UsageError, match=match):
            run(G, guide, **kw)
    with pytest.raises(UsageError, match="empty prompt"):
        run(G, guide, "  ")


def test_schedule_matches_styleclip():
    assert learning_rate(0.0, 0.1) == 0.0
    assert learning_rate(0.5, 0.1) == pytest.approx(0.1)
    assert learning_rate(0.025, 0.1) == pytest.approx(0.05)
    assert learning_rate(0.875, 0.1) == pytest.approx(0.05)  # half way down the last 25 %
    assert learning_rate(0.75, 0.1, rampdown=0.5) == pytest.approx(0.05)


def test_w_space_refuses_layer_selection_and_the_config_is_not_changed(G, guide):
    with pytest.raises(UsageError, match="layer selection needs W\\+ or S"):
        run(G, guide, space="w", layers="coarse")
    config = OptimizeConfig(prompts=["a tiger"], steps=2, clip="ViT-L-14:openai")
    optimize(G, clip=guide, config=config, progress=False)
    assert config.clip == "ViT-L-14:openai" and config.steps == 2
