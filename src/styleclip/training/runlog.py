"""What both trainings (the latent mapper, StyleGAN-NADA) share about a run: its log and its gradient scaler.

``RunLog`` writes JSON lines to ``log.jsonl`` (a resumed run first drops the lines past its checkpoint) and TensorBoard
curves when TensorBoard is installed; ``gradient_scaler`` guards fp16 gradients on CUDA.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch


class _NoScaler:
    """The gradient scaler's interface, doing nothing: fp32 and bf16 gradients do not underflow."""

    def scale(self, loss):
        return loss

    def step(self, optimizer):
        optimizer.step()

    def update(self):
        pass


def gradient_scaler(precision: str, device: torch.device):
    """A gradient scaler for fp16 on CUDA (gradients through fp16 layers can underflow); none otherwise."""
    if device.type != "cuda" or precision != "fp16":
        return _NoScaler()
    # torch.amp.GradScaler is torch >= 2.3; the project supports 2.2, where it lives in torch.cuda.amp.
    return torch.amp.GradScaler("cuda") if hasattr(torch.amp, "GradScaler") else torch.cuda.amp.GradScaler()


def _step(line: str) -> float:
    """The step a log line records; a damaged line (a disk that filled mid-write) counts as past every step."""
    try:
        step = json.loads(line)["step"]
        return step if isinstance(step, int) else math.inf
    except (ValueError, KeyError, TypeError):
        return math.inf


class RunLog:
    """JSON lines in ``log.jsonl`` (lines past the resumed step are dropped first) and TensorBoard if installed."""

    def __init__(self, outdir: Path | None, start: int, active: bool) -> None:
        self.file = self.board = None
        if outdir is None or not active:
            return
        path = outdir / "log.jsonl"
        outdir.mkdir(parents=True, exist_ok=True)
        from ..utils.files import atomic_write_text

        if path.is_symlink():  # the log is appended to: never through a link to a file elsewhere
            path.unlink()
        from .checkpoints import refuse_linked_folders

        refuse_linked_folders(outdir)
        if path.exists():  # a resumed run rewrites what came after its checkpoint
            kept = [line for line in path.read_text(errors="replace").splitlines() if _step(line) <= start]
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        self.file = open(path, "a")  # noqa: SIM115 (closed by close())
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.board = SummaryWriter(str(outdir / "tensorboard"), purge_step=start + 1 if start else None)
        except ImportError:
            self.board = None

    def write(self, entry: dict) -> dict:
        if self.file is not None:
            self.file.write(json.dumps(entry) + "\n")
            self.file.flush()
        if self.board is not None:
            for k, v in entry.items():
                if k not in ("step", "split", "seconds"):
                    self.board.add_scalar(f"{entry['split']}/{k}", v, entry["step"])
        return entry

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.board is not None:
            self.board.close()
