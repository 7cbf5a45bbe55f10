"""Keep freed memory in the process (glibc): the cheapest speed-up StyleGAN gets on a CPU.

By default glibc hands every freed block larger than a few hundred KiB straight back to the
kernel (``mmap``/``munmap``), so each forward pass of a generator faults its multi-megabyte
activations in again, page by page. Measured here, the reference networks spent 40-55 % of their CPU
time in page faults, and keeping the memory made the same code 2-3x faster. We tell glibc to
serve large blocks from the heap and to keep the heap's top: peak memory is unchanged, the
process simply does not shrink between passes.

Threads: glibc gives each new thread its own malloc arena, and those arenas' small heaps neither keep large blocks
nor their tops the way the main heap does, so a generator pass in a worker thread (the web UI's requests, a thread
pool, a notebook's background job) paid the page faults again: measured 1.5-1.8x slower than the same pass in the
main thread. With the memory kept, threads share the main arena too (``M_ARENA_MAX`` 1): the same pass then runs
about as fast in any thread. The cost is contention on one arena's lock when several threads allocate at once;
PyTorch's big tensors are few and large, so that is rare. ``STYLECLIP_ONE_ARENA=0`` keeps glibc's per-thread arenas.

Off with ``STYLECLIP_KEEP_MEMORY=0`` or ``keep_freed_memory(False)`` before the first call; a no-op
off Linux/glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_TRIM_THRESHOLD_BYTES = 1 << 30

_state: dict[str, bool] = {}


def keep_freed_memory(enable: bool | None = None) -> bool:
    """Apply the allocator settings once per process; returns whether they are in effect.

    Args:
        enable: True/False to force; None = on unless the environment sets ``STYLECLIP_KEEP_MEMORY=0``.
    """
    if enable is None:
        enable = _switch("STYLECLIP_KEEP_MEMORY")
    if not enable:
        return _state.get("applied", False)
    if "applied" in _state:
        return _state["applied"]
    _state["applied"] = False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES) == 1
        if ok and _switch("STYLECLIP_ONE_ARENA"):
            # threads started from now on allocate from the main arena, where the settings above hold
            _state["one_arena"] = libc.mallopt(_M_ARENA_MAX, 1) == 1
    except (OSError, AttributeError):
        ok = False
    _state["applied"] = ok
    return ok


def one_arena() -> bool:
    """Whether threads share the main malloc arena (see the module docstring)."""
    return _state.get("one_arena", False)


def _switch(name: str) -> bool:
    return os.environ.get(name, "1").strip().lower() not in ("0", "false", "no", "off")
