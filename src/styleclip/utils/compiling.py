"""Optional ``torch.compile`` of the generator, with a fallback to eager PyTorch wherever compiling is unavailable.

Compiling fuses the passes over activations that eager PyTorch runs one by one (noise, bias, activation, the
modulation scales and all their gradients) into a few generated kernels: on a 2-core AMX CPU a generator forward +
backward at 1024 px took 0.567 s instead of 0.654 s in bf16 and 1.46 s instead of 2.18 s in fp32
(``benchmarks/bench_generator.py --compile off on``). The price is the first call of each new shape or setting:
a minute or more on 2 cores, or seconds once PyTorch's on-disk cache holds the kernels. That pays off over long jobs
(batches, mapper training, projections) rather than one short edit or the UI's slider, so it is off unless asked for.

Compiling needs a working C++ compiler on CPUs (Triton on GPUs) and a Python that ``torch.compile`` supports. Where
it fails, the job warns once and goes on in eager PyTorch with the function it would have compiled (a batch drawn
whole, as the compiled graph draws it): the same results to rounding, only slower.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import StyleclipError

log = logging.getLogger(__name__)

_scope = threading.local()
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError  # torch < 2.5: CUDA's


@dataclass
class CompileRecord:
    """What a job asked for and what it got, for its report."""

    requested: bool
    failed: str | None = None  # why compiling fell back to eager PyTorch, if it did

    def report(self) -> dict[str, Any]:
        """``{"requested": bool, "used": bool, "why": str}``."""
        if not self.requested:
            return {"requested": False, "used": False, "why": "not asked for"}
        if self.failed:
            return {"requested": True, "used": False, "why": f"unavailable here: {self.failed}"}
        return {"requested": True, "used": True, "why": "asked for"}


@contextlib.contextmanager
def compiling(enabled: bool | None) -> Iterator[CompileRecord]:
    """Within the block (this thread), generators run compiled (``enabled``) or eagerly; None keeps the enclosing
    block's choice (eager outside any). Yields the record that notes a fallback to eager PyTorch."""
    before = getattr(_scope, "record", None)
    if enabled is None:
        yield before if before is not None else CompileRecord(False)
        return
    record = CompileRecord(bool(enabled))
    if record.requested and (reason := compile_unavailable()):
        record.failed = reason
    _scope.record = record
    try:
        yield record
    finally:
        _scope.record = before


def is_compiling() -> bool:
    """True while ``torch.compile`` traces the code that asks (then module-level caches must be bypassed)."""
    check = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    if check is None:
        from torch import _dynamo

        check = _dynamo.is_compiling
    return bool(check())


def compile_requested() -> bool:
    """Whether the enclosing :func:`compiling` block asks for compiled generators."""
    record = getattr(_scope, "record", None)
    return record is not None and record.requested and not is_compiling()


def compile_unavailable() -> str | None:
    """Why ``torch.compile`` cannot work here, or None when it may (a compiler failure still shows only when used)."""
    try:
        import torch._dynamo as dynamo
    except Exception as e:  # any import failure means the same here
        return f"torch.compile is not importable ({e})"
    if not dynamo.is_dynamo_supported():
        return "torch.compile does not support this Python version"
    return None


class Compiled:
    """``fn`` run through ``torch.compile`` on first use; after any compile failure, ``fn`` itself (one warning).

    styleclip's own errors, interrupts and out-of-memory errors pass through untouched; anything else raised by the
    compiled call counts as a compiler failure (so callers check their input before calling).
    """

    def __init__(self, fn: Callable[..., Any], what: str) -> None:
        self.fn = fn
        self.what = what
        self.compiled: Callable[..., Any] | None = None
        self.failed: str | None = compile_unavailable()
        self.warned = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed is not None:
            self._warn()
            return self.fn(*args, **kwargs)
        if self.compiled is None:
            # dynamic=None: the first shape compiles static; a second batch size recompiles once with a symbolic one.
            self.compiled = torch.compile(self.fn)
            log.info(
                "compiling %s: the first call of each shape takes a while (cached on disk for later runs)", self.what
            )
        started = time.perf_counter()
        try:
            out = self.compiled(*args, **kwargs)
        except (StyleclipError, KeyboardInterrupt, _OUT_OF_MEMORY):
            raise  # the job's own failures, not the compiler's
        except Exception as e:  # compilers fail in many ways; eager is the fallback
            self.failed = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
            self._warn()
            return self.fn(*args, **kwargs)
        took = time.perf_counter() - started
        if took > 5:
            log.info("compiled %s in %.0f s (new shape or setting; later calls reuse it)", self.what, took)
        return out

    def __deepcopy__(self, memo: dict) -> None:
        return None  # a copied network compiles anew for itself, on its own first call

    def __reduce__(self):
        return (type(None), ())  # likewise when pickled

    def _warn(self) -> None:
        record = getattr(_scope, "record", None)
        if record is not None and record.requested:
            record.failed = self.failed
        if not self.warned:
            self.warned = True
            warnings.warn(
                f"compiling {self.what} is unavailable here ({self.failed}); running it eagerly", stacklevel=3
            )
