"""Random views for CLIP guidance: reproducible, right shapes, differentiable."""

from __future__ import annotations

import pytest
import torch

from styleclip import UsageError
from styleclip.guidance.augment import random_views


def test_views_are_seeded_shaped_and_differentiable():
    img = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    a = random_views(img, n=4, seed=7, cutout=0.2)
    b = random_views(img, n=4, seed=7, cutout=0.2)
    c = random_views(img, n=4, seed=8, cutout=0.2)
    assert a.shape == (8, 3, 64, 64)
    assert torch.equal(a, b) and not torch.equal(a, c)
    a.sum().backward()
    assert img.grad is not None and img.grad[0].abs().sum() > 0 and img.grad[1].abs().sum() > 0


def test_full_scale_views_without_cutout_are_the_image():
    img = torch.rand(1, 3, 32, 32)
    assert torch.equal(random_views(img, n=3, min_scale=1.0), img.expand(3, -1, -1, -1))


def test_bad_settings():
    with pytest.raises(UsageError):
        random_views(torch.zeros(1, 3, 8, 8), min_scale=0)
