"""The jemalloc re-exec: used when installed, skipped on request, never changes results."""

import ctypes.util
import os
import subprocess
import sys

import pytest

needs_jemalloc = pytest.mark.skipif(ctypes.util.find_library("jemalloc") is None, reason="libjemalloc not installed")


def _allocator(extra_env: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MTLBENCH_ALLOCATOR", "MALLOC_CONF")}
    out = subprocess.run([sys.executable, "-m", "mtlbench.runtime"], env={**env, **extra_env},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


@needs_jemalloc
def test_training_processes_restart_with_jemalloc():
    assert _allocator({}) == "jemalloc"


def test_system_allocator_on_request():
    assert _allocator({"MTLBENCH_ALLOCATOR": "system"}) == "system"
