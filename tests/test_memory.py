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
