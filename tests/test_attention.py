"""Batch-first attention for frozen CLIP towers: the same function as nn.MultiheadAttention, computed as plain
products (guidance/attention.py)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from styleclip.guidance.attention import BatchFirstAttention, use_batch_first_attention

from conftest import tiny_clip


def _pair(batch_first: bool = True) -> tuple[nn.MultiheadAttention, nn.MultiheadAttention]:
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(32, 4, batch_first=batch_first).eval().requires_grad_(False)
    with torch.no_grad():
        ref.in_proj_bias.normal_()
        ref.out_proj.bias.normal_()
    fast = copy.deepcopy(ref)
    assert use_batch_first_attention(fast) == 1
    return ref, fast


def _masks(length: int, batch: int, heads: int):
    causal = torch.ones(length, length, dtype=torch.bool).triu(1)
    return {
        "none": None,
        "bool": causal,
        "additive": torch.zeros(length, length).masked_fill(causal, float("-inf")),
        "per-head": torch.randn(batch * heads, length, length),
    }


@pytest.mark.parametrize("mask_kind", ["none", "bool", "additive", "per-head"])
def test_self_attention_matches_multihead_attention_with_gradients(mask_kind):
    ref, fast = _pair()
    x0 = torch.randn(3, 7, 32)
    mask = _masks(7, 3, 4)[mask_kind]
    out = {}
    for name, module in (("ref", ref), ("fast", fast)):
        x = x0.clone().requires_grad_(True)
        y, weights = module(x, x, x, need_weights=False, attn_mask=mask)
        assert weights is None
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        out[name] = (y.detach(), x.grad)
    torch.testing.assert_close(out["fast"][0], out["ref"][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["fast"][1], out["ref"][1], rtol=1e-5, atol=1e-5)


def test_uncovered_calls_go_to_multihead_attention():
    ref, fast = _pair()
    x, other = torch.randn(2, 5, 32), torch.randn(2, 5, 32)
    y_ref, w_ref = ref(x, x, x)  # need_weights defaults to True: the weights come back
    y, w = fast(x, x, x)
    assert w is not None and torch.equal(w, w_ref) and torch.equal(y, y_ref)
    torch.testing.assert_close(fast(x, other, other)[0], ref(x, other, other)[0])  # cross-attention
    pad = torch.tensor([[False] * 4 + [True], [False] * 5])
    torch.testing.assert_close(
        fast(x, x, x, key_padding_mask=pad, need_weights=False)[0],
        ref(x, x, x, key_padding_mask=pad, need_weights=False)[0],
    )
    ref_lnd, fast_lnd = _pair(batch_first=False)
    x_lnd = torch.randn(5, 2, 32)
    assert torch.equal(fast_lnd(x_lnd, x_lnd, x_lnd, need_weights=False)[0],
                       ref_lnd(x_lnd, x_lnd, x_lnd, need_weights=False)[0])  # fmt: skip


def test_clip_guide_switches_its_attention_and_keeps_weights_and_results():
    from styleclip.guidance.clip import ClipGuide

    model = tiny_clip()
    keys = list(model.state_dict())
    original = copy.deepcopy(model)
    guide = ClipGuide(model, None, "tiny")
    attention = [m for m in guide.model.modules() if isinstance(m, nn.MultiheadAttention)]
    assert attention and all(type(m) is BatchFirstAttention for m in attention)
    assert list(guide.model.state_dict()) == keys
    img = torch.rand(3, 3, 32, 32) * 2 - 1
    ref = ClipGuide(original, None, "tiny")
    for m in ref.model.modules():  # the stock module, for reference
        if type(m) is BatchFirstAttention:
            m.__class__ = nn.MultiheadAttention
    torch.testing.assert_close(guide.encode_image(img), ref.encode_image(img), rtol=1e-5, atol=1e-5)
    tokens = torch.randint(0, 49408, (2, 77))
    with torch.no_grad():  # the text tower's causal mask
        torch.testing.assert_close(guide.model.encode_text(tokens), ref.model.encode_text(tokens), rtol=1e-4, atol=1e-5)
