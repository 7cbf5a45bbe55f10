"""Choosing a torch device by name, with the best available as the default."""

from __future__ import annotations

import torch

from ..errors import UsageError


def best_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/'auto' -> best available; otherwise the named device, checked to exist."""
    if device is None or (isinstance(device, str) and device in ("", "auto")):
        return best_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {device!r}; use cpu, cuda, cuda:N, mps or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("CUDA was requested but this PyTorch sees no CUDA GPU; use --device cpu")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("MPS was requested but is not available here; use --device cpu")
    return dev
