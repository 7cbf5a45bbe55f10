"""What an edit method costs in memory: one edit in a fresh process, its peak measured there.

Peak memory is a property of a process, and styleclip keeps freed memory in its process
(:mod:`styleclip.utils.memory`), so a method measured after another would be credited with memory the earlier one
left behind. Each method is therefore measured in a process of its own that loads the generator and CLIP model and
makes one edit through the batch machinery, exactly as the benchmark made its edits:

- CPU: the peak resident set (``ru_maxrss``), and the same after importing torch and styleclip (what any
  styleclip process needs before a model loads), so that ``peak − import`` is the models and the edit;
- CUDA: ``torch.cuda.max_memory_allocated``: the tensors alone, what decides whether the edit fits on the GPU.

Run as ``python -m styleclip.benchmark.costs`` with the job as JSON on stdin (the benchmark does this).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# torchrun's variables: the measuring process is alone, never a member of the benchmark's process group
_GROUP_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                    "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")  # fmt: skip


def measure_peak_memory(
    spec: dict[str, Any],
    device: str,
    cache: str | Path | None = None,
    offline: bool | None = None,
    precision: str = "auto",
    threads: int | None = None,
    timeout: float = 3600,
) -> dict[str, Any]:
    """Peak memory of one edit made in a fresh process.

    Args:
        spec: :func:`styleclip.jobs.runner.describe_batch`'s description of a one-job batch (one source, prompt, run).
        device: where the edit runs ('cpu', 'cuda', 'cuda:1', 'mps').
        threads: CPU threads (default: this process's ``torch.get_num_threads()``).

    Returns:
        ``{"peak_mb", "import_mb" (CPU), "how", "seconds"}``, or ``{"error": one line}`` when the process failed.
    """
    import torch

    job = {"spec": spec, "device": str(device), "cache": str(cache) if cache else None, "offline": offline,
           "precision": precision, "threads": threads or torch.get_num_threads()}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in _GROUP_VARIABLES}
    try:
        done = subprocess.run([sys.executable, "-m", "styleclip.benchmark.costs"], input=json.dumps(job),
                              capture_output=True, text=True, timeout=timeout, env=env)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"the memory probe took longer than {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the memory probe failed: {tail[:300]}"}
    return json.loads(lines[-1])


def peak_rss_mb() -> float:
    """This process's peak resident set in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``, the peak of this program's own address space. ``ru_maxrss`` there
    survives ``exec``: a process started by a large one reports its parent's size until it grows past it.
    """
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def _probe(job: dict[str, Any]) -> dict[str, Any]:
    import time

    import torch

    from ..jobs.runner import run_batch
    from ..jobs.spec import BatchSpec, Run

    torch.set_num_threads(int(job["threads"]))
    device = torch.device(job["device"])
    import_mb = peak_rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    s = job["spec"]
    runs = []
    for r in s["runs"]:
        r = dict(r)
        method, prompts = r.pop("method"), r.pop("prompts", None)
        runs.append(Run(method, tuple(sorted(r.items())), (), tuple(prompts) if prompts else None))
    spec = BatchSpec(generator=s["generator"], prompts=list(s["prompts"]), runs=runs, seeds=list(s["seeds"] or []),
                     images=s.get("images"), latents=s.get("latents"), truncation_psi=s["truncation_psi"],
                     clip=s.get("clip"))  # fmt: skip
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="styleclip-probe-") as tmp:
        result = run_batch(spec, tmp, batch_size=1, device=device, cache=job["cache"], offline=job["offline"],
                           precision=job["precision"], progress=False)  # fmt: skip
    if result.failed:
        return {"error": next(iter(result.failed.values()))}
    out: dict[str, Any] = {"seconds": round(time.perf_counter() - t0, 3)}
    if device.type == "cuda":
        out.update(peak_mb=round(torch.cuda.max_memory_allocated(device) / 2**20, 1),
                   how="torch.cuda.max_memory_allocated of a fresh process: generator, CLIP and one edit")  # fmt: skip
    else:
        out.update(peak_mb=round(peak_rss_mb(), 1), import_mb=round(import_mb, 1),
                   how="peak RSS of a fresh process: torch, generator, CLIP and one edit")  # fmt: skip
    return out


def _main() -> int:
    from ..errors import StyleclipError

    job = json.loads(sys.stdin.read())
    try:
        out = _probe(job)
    except StyleclipError as exc:
        out = {"error": str(exc).splitlines()[0]}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
