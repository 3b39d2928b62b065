"""The fast-allocator re-exec: jemalloc when installed, else huge pages; skipped on request; never
changes results."""

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


def test_huge_pages_where_jemalloc_is_missing(monkeypatch):
    from mtlbench import runtime

    monkeypatch.setattr(runtime.ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(runtime, "_thp_available", lambda: True)
    env = runtime.fast_allocation_env({"PATH": "/bin"})
    assert env == {"PATH": "/bin", runtime.THP_ENV: "1"}
    assert runtime.allocator_in_use(env) == "system+thp"
    assert runtime.fast_allocation_env(env) is None  # already restarted: no loop
    monkeypatch.setattr(runtime, "_thp_available", lambda: False)
    assert runtime.fast_allocation_env({"PATH": "/bin"}) is None  # nothing better: carry on as is


def test_huge_page_allocation_gives_the_same_training():
    """The allocator is not part of the result: one training step, bit for bit, either way."""
    script = ("import torch; from mtlbench.models import build_dedicated as b; m = b('cnn28', (1, 12, 12), 3, 0); "
              "x = torch.rand(64, 1, 12, 12, generator=torch.Generator().manual_seed(0)); "
              "m(x).square().mean().backward(); print(m[0].weight.grad.double().sum().item().hex())")
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}
    runs = [subprocess.run([sys.executable, "-c", script], env={**env, "THP_MEM_ALLOC_ENABLE": thp},
                           capture_output=True, text=True, check=True).stdout for thp in ("0", "1")]
    assert runs[0] == runs[1] and runs[0].strip()
