"""Process set-up for fast CPU training: memory that stays mapped between training steps.

glibc returns large freed blocks to the OS, so every training step faults its activations back in:
measured here, a cnn28 step (batch 512, 2 cores) spent 2.5 s of 3.7 s in the kernel on ~800k page
faults. jemalloc told never to decay dirty pages keeps them: the same step took 2.3 s (1.6x). Where
jemalloc is not installed, PyTorch's own transparent-huge-page allocation (THP_MEM_ALLOC_ENABLE)
faults in 2 MB at a time instead of 4 kB (measured: 3.5 s -> 2.5 s per step). Either only changes
where memory comes from, never a computed value.
"""

from __future__ import annotations

import ctypes.util
import os
import platform
import sys
from pathlib import Path
from typing import Mapping

from mtlbench.errors import ExpectedError

ALLOCATOR_ENV = "MTLBENCH_ALLOCATOR"  # "system" keeps the default allocator
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
THP_ENV = "THP_MEM_ALLOC_ENABLE"  # read by PyTorch once, at its first CPU allocation
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _thp_available() -> bool:
    try:
        return "[never]" not in THP_SETTING.read_text()
    except OSError:
        return False


def fast_allocation_env(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment to restart in (jemalloc preloaded, else huge pages), or None where this
    process already runs that way, the user asked for the system allocator, or neither exists."""
    if environ.get(ALLOCATOR_ENV) == "system" or allocator_in_use(environ) != "system":
        return None
    env = dict(environ)
    library = ctypes.util.find_library("jemalloc")
    if library is not None:
        env["LD_PRELOAD"] = " ".join(filter(None, [library, env.get("LD_PRELOAD")]))
        env.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    elif _thp_available():
        env[THP_ENV] = "1"
    else:
        return None
    return env


def reexec_with_fast_allocator(module: str, argv: list[str]) -> None:
    """Restart this process as `python -m module argv` in `fast_allocation_env`; where there is
    none, return and carry on as it is."""
    env = fast_allocation_env(os.environ)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", module, *argv], env)


def allocator_in_use(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    if "jemalloc" in environ.get("LD_PRELOAD", ""):
        return "jemalloc"
    return "system+thp" if environ.get(THP_ENV) == "1" else "system"


def omp_wait_policy() -> str:
    """How idle OpenMP threads wait: measured here, PASSIVE (sleep at once) cost the mlp 15-20% of
    its speed against OpenMP's default (a brief spin, then sleep); recorded next to every timing."""
    return os.environ.get("OMP_WAIT_POLICY", "default").lower()


NUMERICS_ENV = "MTLBENCH_NUMERICS"  # "portable": the same float results on every x86-64 CPU
# What the kernel libraries would otherwise pick by CPU: ATen's vector width (its dispatch), MKL's
# code branch (conditional numerical reproducibility: on non-Intel CPUs only AUTO and COMPATIBLE
# exist, so COMPATIBLE is the one branch AMD and Intel share; STRICT: independent of alignment),
# and the thread count (reductions split by thread). oneDNN has no such branch (its JIT blocks by
# cache size), so portable numerics turn it off: convolutions take ATen's im2col + MKL path.
PORTABLE_NUMERICS = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE,STRICT",
                     "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", NUMERICS_ENV: "portable"}


def numerics_in_use(environ: Mapping[str, str] | None = None) -> str:
    """"portable" where every PORTABLE_NUMERICS variable is set as it says, else "native"."""
    environ = os.environ if environ is None else environ
    if environ.get(NUMERICS_ENV) != "portable":
        return "native"
    wrong = [f"{k}={environ.get(k)!r} (needs {v!r})" for k, v in PORTABLE_NUMERICS.items() if environ.get(k) != v]
    if wrong:
        raise ExpectedError(f"{NUMERICS_ENV}=portable needs the environment it names, set before Python "
                            f"starts: {', '.join(wrong)}; use `env $(python -m mtlbench.runtime --portable-env) ...`")
    return "portable"


def apply_numerics() -> str:
    """Configure torch for the numerics the environment asks for (before any training) and say which."""
    numerics = numerics_in_use()
    if numerics == "portable":
        import torch

        torch.backends.mkldnn.enabled = False
        torch.set_num_threads(int(PORTABLE_NUMERICS["OMP_NUM_THREADS"]))
    return numerics


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (results record the machine they came from)."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


if __name__ == "__main__":  # `python -m mtlbench.runtime`: which allocator training would use
    if sys.argv[1:] == ["--portable-env"]:
        print(" ".join(f"{k}={v}" for k, v in PORTABLE_NUMERICS.items()))
        raise SystemExit(0)
    reexec_with_fast_allocator("mtlbench.runtime", sys.argv[1:])
    print(allocator_in_use())

