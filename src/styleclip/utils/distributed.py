"""Multi-process jobs (mapper training, batch edits, relevance precompute) through PyTorch's own engine.

``torchrun`` sets the environment, we read it.

Under ``torchrun --nproc_per_node N`` every process sees ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; the process
group starts from ``env://`` with NCCL on GPUs and gloo on CPUs. Without ``WORLD_SIZE`` (or with 1) everything
here is a no-op, so one code path serves one process and many.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import UsageError


@dataclass
class Context:
    """Where this process stands: ``rank`` of ``world`` processes, its ``device``, and whether it started the
    process group (and so must end it)."""

    rank: int = 0
    world: int = 1
    device: torch.device | None = None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_mean(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise mean of ``values`` over all processes (the tensor itself with one process)."""
        if self.world == 1:
            return values
        values = values.detach().clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values / self.world

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return values
        values = values.detach().clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def max_difference(self, tensors) -> float:
        """The largest difference between any process's ``tensors`` and rank 0's (0.0 with one process)."""
        if self.world == 1:
            return 0.0
        worst = torch.zeros((), device=self.device)
        for t in tensors:
            ref = t.detach().clone()
            dist.broadcast(ref, src=0)
            worst = torch.maximum(worst, (t.detach() - ref).abs().max())
        dist.all_reduce(worst, op=dist.ReduceOp.MAX)
        return float(worst)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: torch.device) -> Context:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    ``device``: the device asked for; under torchrun a CUDA request becomes ``cuda:LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(device=device)
    if not dist.is_available():
        raise UsageError("this PyTorch build has no torch.distributed; run with one process")
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise UsageError(f"process {local} has no GPU (only {torch.cuda.device_count()}): lower --nproc_per_node")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
        owns = True
    return Context(rank=rank, world=world, device=device, owns_group=owns)
