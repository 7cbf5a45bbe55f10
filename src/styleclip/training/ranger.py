"""Ranger: RAdam with Lookahead and gradient centralisation, the optimiser StyleCLIP trains its mappers with.

Per parameter, each step (``t`` counts from 1):

1. gradient centralisation: for tensors with more than one dimension, subtract the mean over all but dim 0;
2. RAdam: ``m = β1·m + (1-β1)·g``, ``v = β2·v + (1-β2)·g²``, ``ρ∞ = 2/(1-β2) - 1``,
   ``ρ_t = ρ∞ - 2t·β2^t/(1-β2^t)``; if ``ρ_t > 5``,
   ``p -= lr · r_t · sqrt(1-β2^t)/(1-β1^t) · m/(sqrt(v)+ε)`` with the rectification
   ``r_t = sqrt((ρ_t-4)(ρ_t-2)ρ∞ / ((ρ∞-4)(ρ∞-2)ρ_t))``, else ``p -= lr/(1-β1^t) · m`` (momentum SGD while
   the variance estimate is unreliable);
3. Lookahead: every ``k`` steps the slow copy moves ``alpha`` of the way to the weights, and the weights
   jump back to it.

StyleCLIP's settings are the defaults: β = (0.95, 0.999), ε = 1e-5, k = 6, alpha = 0.5, threshold 5.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim import Optimizer


class Ranger(Optimizer):
    """RAdam + Lookahead + gradient centralisation (see the module docstring for the update)."""

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,  # step size (StyleCLIP's mappers: 0.5)
        betas: tuple[float, float] = (0.95, 0.999),  # moment decay rates
        eps: float = 1e-5,  # added to sqrt(v)
        weight_decay: float = 0.0,  # L2 decay added to the update
        alpha: float = 0.5,  # Lookahead: how far the slow weights move towards the fast ones
        k: int = 6,  # Lookahead: steps between synchronisations
        threshold: float = 5.0,  # RAdam: rectify only once ρ_t exceeds this
        centralize: bool = True,  # gradient centralisation for tensors with more than one dimension
    ) -> None:
        if not lr > 0 or not eps > 0 or not 0 <= alpha <= 1 or k < 1:
            raise ValueError(f"invalid Ranger settings: lr={lr}, eps={eps}, alpha={alpha}, k={k}")
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, alpha=alpha, k=k,
                        threshold=threshold, centralize=centralize)  # fmt: skip
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Ranger does not support sparse gradients")
                grad = p.grad.float()
                if group["centralize"] and grad.ndim > 1:
                    grad = grad - grad.mean(dim=tuple(range(1, grad.ndim)), keepdim=True)
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                    state["slow"] = p.detach().float().clone()
                state["step"] += 1
                t = int(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                weights = p.detach().float()
                if group["weight_decay"]:
                    weights.add_(weights, alpha=-group["weight_decay"] * group["lr"])
                rho_inf = 2 / (1 - beta2) - 1
                beta2_t = beta2**t
                rho_t = rho_inf - 2 * t * beta2_t / (1 - beta2_t)
                if rho_t > group["threshold"]:
                    rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                    size = rect * math.sqrt(1 - beta2_t) / (1 - beta1**t)
                    weights.addcdiv_(m, v.sqrt().add_(group["eps"]), value=-group["lr"] * size)
                else:
                    weights.add_(m, alpha=-group["lr"] / (1 - beta1**t))
                if t % group["k"] == 0:
                    slow = state["slow"]
                    slow.add_(weights - slow, alpha=group["alpha"])
                    weights.copy_(slow)
                p.copy_(weights)
        return loss
