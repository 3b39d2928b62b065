"""How a team shares results: `dvc push` to a remote (here a local folder, as `dvc remote add` makes
one), then a fresh `git clone` + `dvc pull` holds the trained units, re-evaluates and summarises
without training, and `dvc status` says everything is up to date (docs/outputs.md, "Sharing")."""

import shlex

import pytest
from dvcproject import REPO, make_project, sh

from mtlbench.check import git_repo_env
from mtlbench.formats import write_idx_dataset

pytestmark = pytest.mark.integration
STUDY = "mnist_fashion_mlp"


def test_a_fresh_clone_pulls_the_results_and_evaluates_without_training(tmp_path):
    def set_params(params):
        params["run"].update(studies=[STUDY], seeds=[0], train_limit=100, max_epochs=1)
        params["mlflow"]["log_models"] = False

    def write_mirror(mirror):
        write_idx_dataset(mirror / "mnist", n_train=120, n_test=40, seed=1)
        write_idx_dataset(mirror / "fashion-mnist", n_train=120, n_test=40, seed=2)

    repo, env = make_project(tmp_path, set_params, write_mirror)
    sh(["dvc", "repro"], repo, env)
    remote = tmp_path / "remote"
    sh(["dvc", "remote", "add", "-d", "team", str(remote)], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "results and the team's remote"], repo, env)
    sh(["dvc", "push"], repo, env)

    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    clone_env = git_repo_env(clone, tmp_path / "mirror")
    assert "not in cache" in sh(["dvc", "status"], clone, clone_env).stdout  # before the pull
    sh(["dvc", "pull"], clone, clone_env)
    assert "up to date" in sh(["dvc", "status"], clone, clone_env).stdout.lower()
    assert (clone / "results" / STUDY / "units.json").read_bytes() == (repo / "results" / STUDY / "units.json").read_bytes()

    again = sh(["dvc", "repro", "--force", "--single-item", f"evaluate@{STUDY}"], clone, clone_env)
    assert "plan on" not in again.stderr and "Running stage 'train@" not in again.stdout  # nothing trained
    metric = f"metrics/{STUDY}.json"
    assert (clone / metric).read_bytes() == (repo / metric).read_bytes()
    sh(["dvc", "repro", "summarize"], clone, clone_env)
    assert "up to date" in sh(["dvc", "status"], clone, clone_env).stdout.lower()

    # make exp on an experiment: the param it changed beside the gains, no CI half-widths, Holm p or hashes
    sh(["dvc", "exp", "run", "-S", "run.seeds=[1]"], repo, env)
    recipe = next(line for line in (REPO / "Makefile").read_text().splitlines() if line.startswith("\t$(BIN)/dvc exp show"))
    command = shlex.split(recipe.replace("$(BIN)/", "").replace("$$", "$").strip())
    table = sh(command, repo, {**env, "COLUMNS": "1000"}).stdout
    header = next(line for line in table.splitlines() if "Experiment" in line).split()
    assert "run.seeds" in header and any(c.endswith(".gain") for c in header), header
    assert not [c for c in header if c.endswith(("_ci", ".p")) or c.startswith(("src/", "data/", "results/"))], header
