"""A fresh git + DVC repository holding this project's pipeline and code, for end-to-end tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from mtlbench.check import copy_project, git_repo_env, init_repo

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

    def edit(params: dict) -> None:
        params["run"].update(device="cpu", progress=False)
        params["data"]["verify"] = False  # synthetic files cannot match the official checksums
        set_params(params)

    copy_project(REPO, repo, edit)
    write_mirror(mirror)
    env = git_repo_env(repo, mirror)
    init_repo(repo, env)
    return repo, env
