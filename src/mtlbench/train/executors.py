"""Where a study's units train (run.executor): one after another in this process (`local`), or as
Ray tasks (`ray`) on a local Ray instance or the cluster at run.ray_address.

Either way a finished unit comes back as the same folders, and the runner places them
(train/units.py), so evaluate, MLflow and DVC cannot tell which executor ran. Ray is the scheduler:
each unit is a task that declares its resources (a GPU, or run.ray_gpus_per_unit of one, on CUDA;
the local run's thread count of CPUs otherwise), failures are retried a bounded number of times,
and results return through Ray's object store (no shared file system needed for them; every node
needs the prepared data at the same path, e.g. the same checkout after `dvc pull`). Ray workers
start with OMP_NUM_THREADS=1; a unit sets torch's thread count to the local run's, so on CPU a
unit gives the same numbers under either executor.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from mtlbench.config import Params, ParamsError
from mtlbench.runtime import PORTABLE_NUMERICS, apply_numerics, numerics_in_use
from mtlbench.train.training import load_unit_tasks, train_unit
from mtlbench.train.units import Unit

RAY_RETRIES = 2  # a unit that fails is tried at most this many more times
FAULT_ONCE_ENV = "MTLBENCH_FAULT_ONCE"  # tests: the first unit to find this path missing creates it and fails

Done = Callable[[Unit, Path, float], None]  # (unit, folder holding its <variant>/seed<k> folders, seconds)


def run_local(units: list[Unit], train: Callable[[Unit, Path], None], scratch: Path, done: Done) -> None:
    for unit in units:
        started = time.perf_counter()
        folder = Path(tempfile.mkdtemp(dir=scratch, prefix="unit-"))
        train(unit, folder)
        done(unit, folder, time.perf_counter() - started)


def import_ray():
    try:
        import ray
    except ImportError:
        raise ParamsError("run.executor: ray needs Ray installed: pip install 'ray[default]' (or the project's "
                          "extra: pip install -e '.[ray]'); or set run.executor: local") from None
    return ray


def reachable(address: str, timeout: float = 3.0) -> bool:
    """Whether something listens at host:port (Ray itself would retry for a minute or more)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def connect(ray, address: str | None) -> None:
    """Join the cluster at `address`, or start a local Ray instance (address null)."""
    if ray.is_initialized():
        return
    if address not in (None, "auto") and not reachable(address):
        raise ParamsError(f"run.ray_address: could not connect to the Ray cluster at {address}: nothing answers "
                          "there; start it with `ray start --head` or set run.ray_address: null")
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except Exception as err:  # Ray raises ConnectionError, RuntimeError or ValueError for a bad address
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise ParamsError(f"run.ray_address: could not connect to {where}: {str(err).splitlines()[0]}; "
                          "start it with `ray start --head` or set run.ray_address: null") from None


def unit_resources(params: Params, threads: int) -> dict:
    if params.run.device != "cpu" and torch.cuda.is_available():
        return {"num_gpus": params.run.ray_gpus_per_unit, "num_cpus": 1}
    return {"num_cpus": threads}


def run_ray(units: list[Unit], study, params: Params, prepared_dir: Path, tasks_dir: Path, scratch: Path,
            done: Done) -> None:
    ray = import_ray()
    connect(ray, params.run.ray_address)
    threads = torch.get_num_threads()
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.update({k: os.environ[k] for k in ("OMP_WAIT_POLICY", FAULT_ONCE_ENV, "PYTHONPATH") if k in os.environ})
    if numerics_in_use() == "portable":  # workers compute as the driver's context.json says
        env.update(PORTABLE_NUMERICS)
    task = ray.remote(train_unit_remote).options(
        **unit_resources(params, threads), max_retries=RAY_RETRIES, retry_exceptions=True,
        runtime_env={"env_vars": env})
    where = [str(p.resolve()) for p in (prepared_dir, tasks_dir, Path("."))]
    pending = {task.remote(study, unit, params, *where, threads): unit for unit in units}
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        unit = pending.pop(ref)
        try:
            files, seconds = ray.get(ref)
        except ray.exceptions.RayError as err:
            raise RuntimeError(f"unit {unit.label} failed {RAY_RETRIES + 1} times under Ray: {err}") from None
        folder = Path(tempfile.mkdtemp(dir=scratch, prefix="unit-"))
        for relative, data in files.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        done(unit, folder, seconds)


def train_unit_remote(study, unit: Unit, params: Params, prepared_dir: str, tasks_dir: str, root: str,
                      threads: int) -> tuple[dict[str, bytes], float]:
    """One unit inside a Ray worker: load its tasks, train into a temporary folder, return the files."""
    torch.set_num_threads(threads)
    apply_numerics()  # portable numerics pin their own thread count
    fault = os.environ.get(FAULT_ONCE_ENV)
    if fault and not Path(fault).exists():
        Path(fault).write_text(unit.label)
        raise RuntimeError(f"injected fault in unit {unit.label} ({FAULT_ONCE_ENV})")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mtlbench-unit-") as tmp:
        tasks = load_unit_tasks(study, [unit], params, Path(prepared_dir), Path(tasks_dir), Path(root))
        train_unit(study, unit, params, tasks, Path(tmp))
        files = {p.relative_to(tmp).as_posix(): p.read_bytes() for p in sorted(Path(tmp).rglob("*")) if p.is_file()}
    return files, time.perf_counter() - started
