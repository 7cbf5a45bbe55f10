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


def describe_device(device: torch.device) -> str:
    """The device in words, for reports: the GPU's name, or the CPU's model name and the threads torch uses."""
    import platform
    from pathlib import Path

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    if device.type == "mps":
        return f"Apple {platform.machine()} GPU (MPS)"
    name = ""
    try:  # platform.processor() is often empty on Linux; the kernel knows the model name
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name or platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
