"""``styleclip benchmark``: the edit methods compared the way papers compare them (see :mod:`.run`)."""

from .run import BenchmarkResult, BenchmarkSettings, default_judges, plan_runs, run_benchmark

__all__ = ["BenchmarkResult", "BenchmarkSettings", "default_judges", "plan_runs", "run_benchmark"]
