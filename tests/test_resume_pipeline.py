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


def _kill_after_first_unit(repo, env, index: str = "results") -> str:
    """Start `dvc repro`, SIGKILL its whole process group once a unit has landed in `index`'s
    folder (results/, or the ledger/ a commit carries); the unit's folder."""
    units = repo / index / STUDY / "units.json"
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


def test_a_run_cut_off_goes_on_from_a_fresh_clone_of_its_committed_ledger(tmp_path):
    """The machine that trained part of a run is gone: what it committed (ledger/, finished units
    without weights) lets a fresh clone finish the run without training those units again, and the
    metrics are those of a run never interrupted."""
    from mtlbench.check import git_repo_env

    repo, env = _project(tmp_path / "first")
    first = _kill_after_first_unit(repo, env, index="ledger")
    ledger = repo / "ledger" / STUDY
    assert (ledger / first / "predictions.npz").is_file() and not list((ledger / first).glob("model_*.pt"))
    sh(["git", "add", "ledger"], repo, env)
    sh(["git", "commit", "-qm", "the finished units"], repo, env)

    clone = tmp_path / "second"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)  # no results/, no DVC cache: another machine
    clone_env = git_repo_env(clone, tmp_path / "first" / "mirror")
    resumed = sh(["dvc", "repro"], clone, clone_env)
    assert re.search(r"\[mnist_fashion_mlp\] [1-5] units? restored from ledger/mnist_fashion_mlp", resumed.stderr)
    assert re.search(r"plan on cpu: 6 units, [1-5] kept, [1-5] to train", resumed.stderr)  # the restored are kept
    restored = json.loads((clone / "results" / STUDY / "units.json").read_text())
    assert "weights" in restored[first] and not list((clone / "results" / STUDY / first).glob("model_*.pt"))
    assert set(json.loads((clone / "ledger" / STUDY / "units.json").read_text())) == {
        f"{v}/seed{k}" for v in ("dedicated", "rsn2") for k in (0, 1, 2)}  # the ledger now holds the whole run

    whole, whole_env = _project(tmp_path / "whole")
    sh(["dvc", "repro"], whole, whole_env)
    for path in (f"metrics/{STUDY}.json", f"reports/studies/{STUDY}.json"):
        assert (clone / path).read_bytes() == (whole / path).read_bytes(), path
