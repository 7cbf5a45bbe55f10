"""The JSON report every benchmark writes: machine facts, settings, and the measured rows."""

from __future__ import annotations

import json
import platform
import statistics
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
    """Peak memory since the last reset: CUDA's allocated bytes, else the process's peak RSS (VmHWM on Linux)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20, "cuda_allocated"
    from styleclip.benchmark.costs import peak_rss_mb

    return peak_rss_mb(), "process_peak_rss"


def sync(device: torch.device) -> None:
    """Wait for ``device`` to finish its queued work (a timing must not stop before the kernels do)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def best_time(fn, device: torch.device, repeats: int = 3) -> float:
    """Fastest of ``repeats`` calls after one warm-up, waiting for the device each time."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def median_time(fn, device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median of ``repeats`` calls after ``warmup`` calls, waiting for the device each time."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
