"""The real `dvc repro`, killed with SIGKILL after the train stage's first finished unit, resumed by
the next `dvc repro`: the finished unit's files untouched, the metrics those of an uninterrupted
run; one more seed trains one more unit per variant."""

import re
import hashlib
import json
import os
import signal
import subprocess
import time

import pytest
import yaml
from dvcproject import make_project
from dvcproject import sh

from mtlbench.formats import write_idx_dataset

pytestmark = pytest.mark.integration
STUDY = "mnist_fashion_mlp"


def _project(root):
    def set_params(params):
        params["run"].update(studies=[STUDY], seeds=[0, 1, 2], train_limit=100, max_epochs=2)
        params["mlflow"]["log_models"] = False

    def write_mirror(mirror):
        write_idx_dataset(mirror / "mnist", n_train=150, n_test=60, seed=1)
        write_idx_dataset(mirror / "fashion-mnist", n_train=150, n_test=60, seed=2)

    return make_project(root, set_params, write_mirror)


def _files(folder):
    return {p.relative_to(folder).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _kill_after_first_unit(repo, env) -> str:
    """Start `dvc repro`, SIGKILL its whole process group once a unit has landed; the unit's folder."""
    units = repo / "results" / STUDY / "units.json"
    process = subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    try:
        while time.time() < deadline and process.poll() is None:
            try:
                finished = json.loads(units.read_text())
            except (OSError, ValueError):
                finished = {}
            if finished:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return next(iter(finished))
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    pytest.fail("the train stage finished no unit before the deadline (or the run ended first)")


def test_a_killed_repro_resumes_from_its_finished_units(tmp_path):
    repo, env = _project(tmp_path / "killed")
    first = _kill_after_first_unit(repo, env)
    kept = _files(repo / "results" / STUDY / first)
    assert not (repo / "results" / STUDY / "context.json").exists()  # not complete, and not trusted
    assert f"train@{STUDY}" in sh(["dvc", "status"], repo, env).stdout

    resumed = sh(["dvc", "repro"], repo, env)
    assert re.search(r"plan on cpu: 6 units, [1-5] kept, [1-5] to train", resumed.stderr)
    assert _files(repo / "results" / STUDY / first) == kept
    assert not (repo / "results" / STUDY / ".units").exists()
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout.lower()

    whole, whole_env = _project(tmp_path / "whole")
    sh(["dvc", "repro"], whole, whole_env)
    metric = f"metrics/{STUDY}.json"
    assert (repo / metric).read_bytes() == (whole / metric).read_bytes()

    # a damaged unit file: the next repro retrains that unit (named), and dvc.lock records the good copy
    damaged = repo / "results" / STUDY / "dedicated" / "seed1" / "predictions.npz"
    damaged.write_bytes(damaged.read_bytes()[:100])
    repaired = sh(["dvc", "repro"], repo, env)
    assert "unit dedicated/seed1: predictions.npz has changed" in repaired.stderr
    assert "plan on cpu: 6 units, 5 kept, 1 to train" in repaired.stderr
    # the retrained unit is estimated by what it took before: the plan gives a time, not a probe's bound
    assert re.search(r"dedicated +seeds 0, 1, 2: 2 kept, 1 to train, up to \d+ s a unit", repaired.stderr)
    assert (repo / metric).read_bytes() == (whole / metric).read_bytes()
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout.lower()

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["run"]["seeds"] = [0, 1, 2, 3]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    more = sh(["dvc", "repro"], repo, env)
    assert "plan on cpu: 8 units, 6 kept, 2 to train" in more.stderr
    assert _files(repo / "results" / STUDY / first) == kept
