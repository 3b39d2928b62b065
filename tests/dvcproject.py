"""A fresh git + DVC repository holding this project's pipeline and code, for end-to-end tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import yaml

REPO = Path(__file__).resolve().parents[1]


def sh(args, cwd, env, check=True):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def repro_error(repo: Path, env: dict) -> str:
    """Run `dvc repro` expecting it to fail; returns everything it printed."""
    failed = sh(["dvc", "repro"], repo, env, check=False)
    assert failed.returncode != 0, f"dvc repro succeeded:\n{failed.stdout}\n{failed.stderr}"
    return failed.stdout + failed.stderr


def make_project(root: Path, set_params: Callable[[dict], None], write_mirror: Callable[[Path], None]) -> tuple[Path, dict]:
    """Copy the pipeline and code into root/repo, edit its params.yaml, write a mirror of small
    files in the official formats, commit; returns the repository and the environment to run in."""
    repo, mirror = root / "repo", root / "mirror"
    repo.mkdir()
    for name in ("dvc.yaml", ".gitignore", "MLproject"):
        shutil.copy(REPO / name, repo / name)
    shutil.copytree(REPO / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO / "tasks", repo / "tasks")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["run"].update(device="cpu", progress=False)
    params["data"]["verify"] = False  # synthetic files cannot match the official checksums
    set_params(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_mirror(mirror)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        PYTHONPATH=str(repo / "src"),  # the copy's code is what runs and what DVC hashes
        MTLBENCH_DATA_MIRROR=str(mirror),
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t",
    )
    sh(["git", "init", "-q"], repo, env)
    sh(["dvc", "init", "-q"], repo, env)
    sh(["dvc", "config", "core.analytics", "false"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "init"], repo, env)
    return repo, env
