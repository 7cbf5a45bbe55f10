"""Each loss: its minimum for identical inputs, positive otherwise, differentiable, one value per sample."""

from __future__ import annotations

import torch

from styleclip.guidance.losses import ClipLoss, CosineLoss, DirectionalClipLoss, LatentL2Loss, StyleL2Loss


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def test_clip_and_cosine_losses():
    t = unit(torch.randn(8))
    same = t.expand(3, 8).clone().requires_grad_(True)
    other = unit(torch.randn(3, 8)).requires_grad_(True)
    for loss in (ClipLoss(), CosineLoss()):
        assert torch.allclose(loss(same, t), torch.zeros(3), atol=1e-6)
        value = loss(other, t)
        assert value.shape == (3,) and (value > 0).all()
        value.sum().backward()
        assert other.grad is not None and other.grad.abs().sum() > 0
        other.grad = None
    # StyleCLIP scales by logit_scale / 100: with OpenAI's 100 it is the cosine distance
    torch.testing.assert_close(ClipLoss(100.0)(other, t), CosineLoss()(other, t))
    torch.testing.assert_close(ClipLoss(50.0)(other, t), 1 - (1 - CosineLoss()(other, t)) / 2)


def test_directional_loss_rewards_moving_along_the_text_direction():
    src = unit(torch.randn(2, 8))
    delta_t = unit(torch.randn(8))
    along = (src + 0.1 * delta_t).requires_grad_(True)
    against = src - 0.1 * delta_t
    loss = DirectionalClipLoss()
    good, bad = loss(along, src, delta_t), loss(against, src, delta_t)
    assert torch.allclose(good, torch.zeros(2), atol=1e-5) and torch.allclose(bad, torch.full((2,), 2.0), atol=1e-5)
    good.sum().backward()
    assert along.grad is not None


def test_latent_and_style_l2():
    w = torch.randn(2, 4, 16, requires_grad=True)
    assert torch.equal(LatentL2Loss()(w, w.detach()), torch.zeros(2))
    moved = LatentL2Loss()(w, w.detach() + 1)
    torch.testing.assert_close(moved, torch.full((2,), 64.0))
    moved.sum().backward()
    assert w.grad is not None
    s = {"b4.conv1": torch.randn(2, 8), "b4.torgb": torch.randn(2, 8)}
    s2 = {k: v + 0.5 for k, v in s.items()}
    assert torch.equal(StyleL2Loss()(s, s), torch.zeros(2))
    torch.testing.assert_close(StyleL2Loss()(s, s2), torch.full((2,), 4.0))


def test_directional_loss_has_a_bounded_gradient_where_the_edit_has_not_moved_yet():
    src = unit(torch.randn(2, 8))
    edited = (src + 1e-7 * torch.randn(2, 8)).requires_grad_(True)
    DirectionalClipLoss()(edited, src, unit(torch.randn(8))).sum().backward()
    assert edited.grad.norm() < 1e3  # without the floor: about 1e7
