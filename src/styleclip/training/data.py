"""Training latents for the mapper, and which of them each process sees at each step."""

from __future__ import annotations

import torch

from ..errors import UsageError
from ..nets.stylegan2 import Generator

# Seed offsets keep the training, held-out and per-step streams apart.
TEST_STREAM, STEP_STREAM = 1_000_003, 2_000_003


@torch.no_grad()
def sample_latents(G: Generator, count: int, truncation_psi: float, seed: int, chunk: int = 512) -> torch.Tensor:
    """``count`` W+ latents ``[count, num_ws, w_dim]`` (float32, CPU) from seeded z at ``truncation_psi``."""
    z = torch.randn(count, G.z_dim, generator=torch.Generator().manual_seed(seed))
    parts = [G.mapping_forward(z[i : i + chunk], truncation_psi=truncation_psi).cpu() for i in range(0, count, chunk)]
    return torch.cat(parts)


class LatentData:
    """The training and held-out W+ latents, and the deterministic batch of every step.

    Step ``t`` takes positions ``t·B .. t·B + B - 1`` of an endless sequence of permutations of the training
    set (permutation ``e`` seeded by ``seed`` and ``e``), so the batches do not depend on the number of
    processes; process ``r`` of ``W`` takes the ``r``-th ``B / W`` of each. With ``train_size`` 0 every step
    draws fresh latents, seeded by the step.
    """

    def __init__(self, G: Generator, cfg, ctx) -> None:
        from ..latents import load_latent

        self.G, self.cfg, self.ctx = G, cfg, ctx
        self._perms: dict[int, torch.Tensor] = {}
        test = load_latent(cfg.test_latents, G).cpu() if cfg.test_latents else None
        if cfg.latents:
            train = load_latent(cfg.latents, G).cpu()
            if test is None and len(train) >= 10:  # hold out the last tenth (at most 1000)
                n = min(1000, len(train) // 10)
                train, test = train[:-n], train[-n:]
            elif test is None:
                test = train
            self.train: torch.Tensor | None = train
        else:
            self.train = sample_latents(G, cfg.train_size, cfg.truncation_psi, cfg.seed) if cfg.train_size else None
        if test is None:
            test = sample_latents(G, cfg.test_size, cfg.truncation_psi, cfg.seed + TEST_STREAM)
        self.test = test
        if self.train is not None and len(self.train) < 1:
            raise UsageError("no training latents")

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            gen = torch.Generator().manual_seed(self.cfg.seed * 7919 + epoch)
            self._perms = {e: p for e, p in self._perms.items() if e >= epoch - 1}
            self._perms[epoch] = torch.randperm(len(self.train), generator=gen)
        return self._perms[epoch]

    @torch.no_grad()
    def train_batch(self, step: int) -> torch.Tensor:
        """This process's share of step ``step``'s batch, ``[B / W, num_ws, w_dim]`` float32."""
        B, world, rank = self.cfg.batch_size, self.ctx.world, self.ctx.rank
        share = slice(rank * B // world, (rank + 1) * B // world)
        if self.train is None:
            gen = torch.Generator().manual_seed(self.cfg.seed + STEP_STREAM + step)
            z = torch.randn(B, self.G.z_dim, generator=gen)[share]
            return self.G.mapping_forward(z, truncation_psi=self.cfg.truncation_psi)
        n = len(self.train)
        positions = torch.arange(step * B, (step + 1) * B)[share]
        idx = torch.stack([self._perm(int(p) // n)[int(p) % n] for p in positions])
        return self.train[idx]
