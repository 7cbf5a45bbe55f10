"""The allocator switch: on by default on Linux/glibc, off by environment variable or argument."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

CODE = "import styleclip, sys; sys.stdout.write(str(styleclip.keep_freed_memory()))"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_memory_is_on_by_default_and_can_be_turned_off():
    on = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout
    off = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True, env={"STYLECLIP_KEEP_MEMORY": "0"}
    ).stdout
    assert (on, off) == ("True", "False")


ARENAS = """
import ctypes, ctypes.util, sys, threading
import styleclip, torch
styleclip.keep_freed_memory()
def work():
    for _ in range(20):
        torch.ones(1 << 16).sum()  # small blocks: served by this thread's arena
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
sys.stderr.flush()
ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_stats()
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_threads_share_the_main_arena_unless_told_not_to():
    def arenas(env):
        err = subprocess.run([sys.executable, "-c", ARENAS], capture_output=True, text=True, check=True, env=env).stderr
        return sum(1 for line in err.splitlines() if line.startswith("Arena "))

    import os

    base = {k: v for k, v in os.environ.items() if k not in ("STYLECLIP_ONE_ARENA", "MALLOC_ARENA_MAX")}
    assert arenas(base) == 1  # worker threads allocate where the kept-memory settings hold
    assert arenas({**base, "STYLECLIP_ONE_ARENA": "0"}) > 1
