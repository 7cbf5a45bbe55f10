"""Which number format the networks compute in: one ``precision`` setting for every job.

``auto`` means bf16 on CPUs with native bf16 arithmetic (Intel AMX-BF16 or AVX512-BF16, AMD Zen 4 and later:
read from the CPU's flags, never guessed from the vendor), bf16 on CUDA devices that support it (fp16 on older
ones), fp16 on Apple MPS, and fp32 everywhere else. ``STYLECLIP_PRECISION`` (fp32, bf16, fp16) overrides what
``auto`` means on this machine. Latents, optimiser state and loss sums always stay fp32; only the networks'
arithmetic changes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import subprocess
import threading
from pathlib import Path

import torch

from ..errors import UsageError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # Linux /proc/cpuinfo names


def bf16_flags(cpuinfo: str) -> list[str]:
    """The native-bf16 flags named in a Linux ``/proc/cpuinfo`` text (its first ``flags`` line)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags = set(value.split())
            return [f for f in BF16_FLAGS if f in flags]
    return []


@functools.lru_cache(maxsize=1)
def cpu_native_bf16() -> tuple[str, ...]:
    """The CPU features that make bf16 fast here (empty when there are none)."""
    path = Path("/proc/cpuinfo")
    if path.is_file():
        try:
            return tuple(bf16_flags(path.read_text(errors="replace")))
        except OSError:
            return ()
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        # Apple M2 and later have bf16 matrix instructions; the kernel reports them as FEAT_BF16.
        try:
            out = subprocess.run(
                ["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.SubprocessError):
            return ()
        return ("FEAT_BF16",) if out.stdout.strip() == "1" else ()
    return ()


def resolve_precision(precision: str | None, device: torch.device | str) -> str:
    """``'fp32'``, ``'bf16'`` or ``'fp16'`` for ``precision`` (``auto``/None: the best exact-enough format of
    ``device``, see the module docstring); one-line :class:`UsageError` for unknown names or unsupported pairs."""
    precision = (precision or "auto").lower()
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == "auto":
        forced = os.environ.get("STYLECLIP_PRECISION", "").lower()
        if forced:
            if forced not in DTYPES:
                raise UsageError(f"STYLECLIP_PRECISION must be fp32, bf16 or fp16, got {forced!r}")
            precision = forced
        elif device.type == "cpu":
            precision = "bf16" if cpu_native_bf16() else "fp32"
        elif device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device.type == "mps":
            precision = "fp16"
        else:
            precision = "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise UsageError("fp16 is slow and inexact on CPUs: use --precision bf16 (or fp32)")
    return precision


def autocast(precision: str, device: torch.device | str):
    """A context where matrix products and convolutions run in ``precision`` (no-op for fp32)."""
    device = torch.device(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


_scope = threading.local()


@contextlib.contextmanager
def computing_in(precision: str | None):
    """Within the block (this thread), the generator, CLIP, ArcFace and LPIPS compute in ``precision``
    ('fp32', 'bf16', 'fp16'; resolve 'auto' first with :func:`resolve_precision`) unless told otherwise."""
    if precision is not None and precision not in DTYPES:
        raise UsageError(f"precision must be fp32, bf16 or fp16 here, got {precision!r}")
    before = getattr(_scope, "precision", None)
    _scope.precision = precision
    try:
        yield precision
    finally:
        _scope.precision = before


def current_precision() -> str | None:
    """The precision of the enclosing :func:`computing_in` block, or None outside one."""
    return getattr(_scope, "precision", None)


def network_autocast(device: torch.device | str, own: str = "auto"):
    """Autocast for a network whose own setting is ``own``: an explicit one wins, else the job's
    :func:`computing_in` scope, else what ``auto`` means for ``device``."""
    precision = own if own != "auto" else (current_precision() or resolve_precision("auto", device))
    return autocast(precision, device)


def describe(requested: str | None, used: str, device: torch.device | str) -> dict[str, str]:
    """For reports: what was asked for, what ran, and why (``auto``'s reasoning on this machine)."""
    requested = (requested or "auto").lower()
    device = torch.device(device)
    if requested != "auto":
        why = "asked for"
    elif os.environ.get("STYLECLIP_PRECISION"):
        why = f"STYLECLIP_PRECISION={os.environ['STYLECLIP_PRECISION']}"
    elif device.type == "cpu":
        flags = cpu_native_bf16()
        why = f"CPU with native bf16 ({', '.join(flags)})" if flags else "CPU without native bf16 (no AMX/AVX512-BF16)"
    elif device.type == "cuda":
        why = "CUDA device with bf16" if used == "bf16" else "CUDA device without bf16"
    else:
        why = f"{device.type} device"
    return {"requested": requested, "used": used, "why": why}


class LayerDtypes:
    """How a synthesis network picks each layer's dtype for one call.

    ``precision`` (an argument) wins; then ``force_fp32`` (an argument); then the job's :func:`computing_in` scope;
    else the checkpoint's own setting: its fp16 layers in fp16 on CUDA, fp32 elsewhere. 'bf16' runs every layer in
    bf16; 'fp16' runs the checkpoint's fp16 layers in fp16 on any device.
    """

    def __init__(self, precision: str | None, force_fp32: bool | None, device: torch.device) -> None:
        if precision is None and force_fp32 is None:
            precision = current_precision()
        if precision not in (None, "fp32", "bf16", "fp16"):
            raise UsageError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
        if precision is not None:
            force_fp32 = precision == "fp32"
        elif force_fp32 is None:
            force_fp32 = torch.device(device).type != "cuda"
        self.precision, self.force_fp32 = precision, force_fp32

    def __call__(self, use_fp16: bool) -> torch.dtype:
        """The dtype of a layer that the checkpoint runs in fp16 when ``use_fp16``."""
        if self.precision == "bf16":
            return torch.bfloat16
        return torch.float16 if use_fp16 and not self.force_fp32 else torch.float32
