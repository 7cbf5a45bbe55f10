"""The JSON report every benchmark writes: machine facts, settings, and the measured rows."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

import styleclip

RESULTS = Path(__file__).parent / "results"


def write_report(benchmark: str, device: torch.device, rows: list[dict], path: Path, **settings) -> Path:
    report = {
        "benchmark": benchmark,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "styleclip": styleclip.__version__,
        **settings,
        "rows": rows,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return path


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """Peak memory since the last reset: CUDA's allocated bytes, else the process's maximum RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20, "cuda_allocated"
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_max_rss"  # KiB on Linux


def best_time(fn, device: torch.device, repeats: int = 3) -> float:
    """Fastest of ``repeats`` calls after one warm-up, waiting for the device each time."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        elif device.type == "mps":
            torch.mps.synchronize()

    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best
