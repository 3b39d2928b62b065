"""study_run --scratch: a run of hours killed midway resumes with the same command, its finished
units kept; a scratch folder made for other settings is refused. The real `dvc repro` on tiny
synthetic MNIST/Fashion files."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mtlbench.check import CheckError
from mtlbench.fileio import write_json
from mtlbench.study_run import scratch_project
from mtlbench.train.units import code_digest

TINY = ["--set", "data.verify=false", "--set", "run.train_limit=60", "--set", "run.max_epochs=1",
        "--set", "run.seeds=[0, 1]", "--set", "mlflow.log_models=false", "--set", "run.device=cpu"]


def _command(scratch, out, extra=()):
    return [sys.executable, "-m", "mtlbench.study_run", "--study", "mnist_fashion_mlp", *TINY, *extra,
            "--scratch", str(scratch), "--out", str(out)]


def _env(mirror):
    return {**os.environ, "MTLBENCH_DATA_MIRROR": str(mirror), "OMP_NUM_THREADS": "1"}


def _wait_until_gone(group: int, timeout: float = 60.0) -> None:
    """Wait until no process of the group is left (the killed study_run's `dvc repro` exits a moment
    after it; resuming before that finds its DVC lock still held by a live PID)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes of the killed group {group} still alive after {timeout:.0f} s")


def test_a_killed_study_run_resumes_with_its_finished_units(idx_mirror, tmp_path):
    mirror, _ = idx_mirror
    scratch, out = tmp_path / "scratch", tmp_path / "out"
    units = scratch / "repo" / "results" / "mnist_fashion_mlp" / "units.json"
    first = subprocess.Popen(_command(scratch, out), env=_env(mirror), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None:
        if units.is_file() and json.loads(units.read_text() or "{}"):
            break
        time.sleep(0.5)
    assert first.poll() is None, "finished before a kill could test resuming"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    _wait_until_gone(first.pid)  # its dvc child too: a closed session leaves no process holding DVC's lock
    kept = json.loads(units.read_text())
    assert kept and not out.exists()

    second = subprocess.run(_command(scratch, out), env=_env(mirror), capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming the scratch project" in second.stderr
    assert f"{len(kept)} kept" in second.stderr, second.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["resumed"] is True
    assert run["train_code"] == code_digest()  # the code it started with, which mtlbench.pool matches parts by
    assert not scratch.exists()  # done: the scratch project is removed, the answer is in out
    assert set(json.loads((out / "details.json").read_text())["variants"]) == {"dedicated", "rsn2"}


def test_a_scratch_folder_made_for_other_settings_is_refused(idx_mirror, tmp_path):
    mirror, _ = idx_mirror
    scratch = tmp_path / "scratch"
    write_json(scratch / "study_run.json", {"study": "mnist_fashion_hps", "set": ["run.train_limit=3000"]})
    done = subprocess.run(_command(scratch, tmp_path / "out"), env=_env(mirror), capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"--scratch {scratch} holds a run of mnist_fashion_hps with --set run.train_limit=3000" in done.stderr
    (scratch / "study_run.json").unlink()
    (scratch / "notes.txt").write_text("mine")
    done = subprocess.run(_command(scratch, tmp_path / "out"), env=_env(mirror), capture_output=True, text=True)
    assert done.returncode == 2 and "is not empty and holds no study_run project" in done.stderr
    assert (scratch / "notes.txt").read_text() == "mine"


def test_a_scratch_folder_is_resumed_whatever_the_order_its_settings_were_typed_in(tmp_path):
    scratch = tmp_path / "scratch"
    write_json(scratch / "study_run.json", {"study": "mnist_fashion_hps", "set": ["run.train_limit=3000", "run.seeds=[0, 1]"]})
    same = {"study": "mnist_fashion_hps", "set": ["run.seeds=[0,1]", "run.train_limit=3000"]}
    assert scratch_project(scratch, same, edit=None) == (scratch / "repo", True)
    other = {"study": "mnist_fashion_hps", "set": ["run.seeds=[0,1]", "run.train_limit=3000", "run.train_limit=5000"]}
    with pytest.raises(CheckError, match="holds a run of mnist_fashion_hps"):  # the last value of a key counts
        scratch_project(scratch, other, edit=None)
