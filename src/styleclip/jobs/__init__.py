"""Batch jobs: sources x prompts x methods, sharded over torchrun processes, resumable, summarised."""

from .runner import BatchResult, run_batch, write_manifest
from .spec import BatchSpec, Job, Run, Source, make_run, read_job_file, read_prompts

__all__ = [
    "BatchResult", "BatchSpec", "Job", "Run", "Source", "make_run", "read_job_file", "read_prompts", "run_batch",
    "write_manifest",
]  # fmt: skip
