"""Which layers of the generator StyleGAN-NADA trains, and its adaptive choice of them.

NADA works on rosinality's StyleGAN2, whose generator's children are, in order: ``style`` (the mapping network),
``input`` (the 4x4 constant), ``conv1``, ``to_rgb1``, ``convs`` (two per resolution from 8 px up), ``upsamples``,
``to_rgbs`` and ``noises``. Here each is the module of styleclip's generator that holds the same weights:

=========================  =====================================================
rosinality                 styleclip
=========================  =====================================================
``input``                  ``synthesis.b4.const``
``conv1`` / ``to_rgb1``    ``synthesis.b4.conv1`` / ``synthesis.b4.torgb``
``convs[2i]``, ``[2i+1]``  ``synthesis.b{8·2^i}.conv0``, ``synthesis.b{8·2^i}.conv1``
``to_rgbs[i]``             ``synthesis.b{8·2^i}.torgb``
``style``                  ``mapping``
=========================  =====================================================

(each rosinality layer's style affine, noise weight and bias live inside the same styleclip module).

NADA's default trains ``input``, ``conv1`` and every ``convs`` entry; the mapping network and the ToRGB layers
stay frozen. Its adaptive selection scores the W+ rows instead: it runs a few steps of SGD on W+ codes towards
the target text (the global CLIP loss), ranks the rows by how far they moved, and trains the layers of the top
``k``. The row-to-layer table it uses is ``[conv1, to_rgb1, convs[0], convs[1], ...]``: row 1 names the 4x4
ToRGB, and row ``k >= 2`` names ``convs[k - 2]``, one place before the layer that row actually drives. That is
NADA's table, and it is kept here, so that the same rows pick the same layers.

For StyleGAN3 NADA trains the input and the synthesis layers ``L0``..``L9``, ``L11``, ``L13`` and ``L14`` (its
slice of the layer list leaves ``L10`` and ``L12`` out), each without its style affine; it has no adaptive
selection there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..nets.stylegan2 import Generator
from ..nets.stylegan3 import Generator3


@dataclass(frozen=True)
class Layer:
    """One unit NADA trains or freezes: its name in styleclip's generator and its parameters."""

    name: str
    params: tuple[nn.Parameter, ...]


def is_stylegan3(G: nn.Module) -> bool:
    return isinstance(G, Generator3)


def _module(G: nn.Module, name: str) -> Layer:
    module = G.get_submodule(name)
    return Layer(name, tuple(module.parameters()))


def _without_affine(G: nn.Module, name: str) -> Layer:
    module = G.get_submodule(name)
    return Layer(name, tuple(p for n, p in module.named_parameters() if not n.startswith("affine.")))


def convs(G: Generator) -> list[Layer]:
    """rosinality's ``convs``: ``conv0``, ``conv1`` of every block from 8 px up, in order."""
    res = G.synthesis.block_resolutions[1:]
    return [_module(G, f"synthesis.b{r}.{c}") for r in res for c in ("conv0", "conv1")]


def default_layers(G: nn.Module) -> list[Layer]:
    """NADA's default trainable set (see the module docstring)."""
    if is_stylegan3(G):
        names = ["synthesis.input", *(f"synthesis.{n}" for n in G.synthesis.layer_names)]
        kept = names[:11] + names[12:13] + names[14:]
        return [_without_affine(G, n) for n in kept]
    first = f"synthesis.b{G.synthesis.block_resolutions[0]}"
    const = Layer(f"{first}.const", (G.get_submodule(first).const,))
    return [const, _module(G, f"{first}.conv1"), *convs(G)]


def all_layers(G: nn.Module) -> list[Layer]:
    """Every synthesis parameter (the mapping stays frozen)."""
    return [Layer("synthesis", tuple(G.synthesis.parameters()))]


def row_layers(G: Generator) -> list[Layer | None]:
    """NADA's row-to-layer table for the adaptive selection (see the module docstring); ``None`` where this
    architecture has no such layer (a 'resnet' StyleGAN2 has no 4x4 ToRGB)."""
    first = f"synthesis.b{G.synthesis.block_resolutions[0]}"
    torgb = _module(G, f"{first}.torgb") if hasattr(G.get_submodule(first), "torgb") else None
    return [_module(G, f"{first}.conv1"), torgb, *convs(G)]


def train_only(G: nn.Module, layers: list[Layer | None]) -> list[nn.Parameter]:
    """Freeze every parameter of ``G`` and unfreeze those of ``layers``; returns the trainable ones."""
    G.requires_grad_(False)
    seen: dict[int, nn.Parameter] = {}
    for layer in layers:
        if layer is not None:
            for p in layer.params:
                seen.setdefault(id(p), p)
    for p in seen.values():
        p.requires_grad_(True)
    return list(seen.values())


def select_layers(
    G: nn.Module,
    ws: torch.Tensor,
    global_loss: Callable[[torch.Tensor], torch.Tensor],
    k: int,
    iters: int,
    draw: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    lr: float = 0.01,
) -> tuple[list[Layer | None], torch.Tensor]:
    """NADA's adaptive layer selection (StyleGAN2).

    Args:
        G: the generator being adapted.
        ws: ``[B, w_dim]`` W codes (NADA: the frozen mapping of fresh z, untruncated); each is repeated over the rows.
        global_loss: ``image [B, C, H, W] -> scalar`` (NADA: the weighted global CLIP loss against the target).
        k: how many rows' layers train (``auto_layer_k``); iters: SGD steps on the codes (``auto_layer_iters``).
        draw: ``(G, ws [B, num_ws, w_dim]) -> image``.
        lr: SGD learning rate on the codes (NADA's 0.01).

    Returns:
        (the chosen layers in rank order, ``[num_ws]`` row scores: the mean |change| of each row).
    """
    table = row_layers(G)
    initial = ws.detach().unsqueeze(1).repeat(1, G.num_ws, 1)
    codes = initial.clone().requires_grad_(True)
    optimizer = torch.optim.SGD([codes], lr=lr)
    for _ in range(iters):
        loss = global_loss(draw(G, codes))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    scores = (codes.detach() - initial).abs().mean(dim=-1).mean(dim=0)
    chosen = torch.topk(scores, min(k, len(table))).indices.tolist()
    return [table[i] for i in chosen], scores
