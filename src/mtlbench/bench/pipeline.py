"""`python -m mtlbench.bench.pipeline`: what a smoke run costs outside training, and what it stores.

Runs the real `dvc repro` of one study (default: `mnist_fashion_mlp`, 3 seeds, the first 2000
training rows, real data from the mirror) in a fresh copy of the project, then evaluates again with
nothing changed, and writes bench/pipeline.json: the wall time of the whole repro, the training
time inside it (the train stage's own start and end, results/<run>/context.json), the overhead
share (everything that is not training: stage start-ups, data preparation, DVC hashing, evaluate,
MLflow logging), the time of the unchanged re-evaluation, and the bytes left in results/, the DVC
cache and mlartifacts/ with the MLflow run count. A benchmark, not a test: timings vary."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from mtlbench.check import ROOT, copy_project, git_repo_env, init_repo, run_command
from mtlbench.config import MIRROR_ENV
from mtlbench.fileio import write_json
from mtlbench.runtime import cpu_model


def folder_bytes(path: Path) -> int:
    """Bytes of a file, or of every file below a folder (0 when absent)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def measure(study: str, seeds: list[int], train_limit: int, mirror: Path, workdir: Path) -> dict:
    repo = workdir / "repo"

    def edit(params: dict) -> None:
        params["run"].update(studies=[study], seeds=seeds, train_limit=train_limit, device="cpu", progress=False)

    copy_project(ROOT, repo, edit)
    env = git_repo_env(repo, mirror)
    init_repo(repo, env)
    started = time.perf_counter()
    run_command(["dvc", "repro"], repo, env)
    total = time.perf_counter() - started
    context = json.loads((repo / "results" / study / "context.json").read_text())
    training = context["ended_at"] - context["started_at"]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(study)
    runs_before, artifacts_before = len(client.search_runs([experiment.experiment_id])), folder_bytes(repo / "mlartifacts")
    started = time.perf_counter()
    run_command(["dvc", "repro", "--force", "--single-item", f"evaluate@{study}"], repo, env)
    again = time.perf_counter() - started
    return {
        "study": study, "seeds": seeds, "train_limit": train_limit, "cpu": cpu_model(),
        "repro_wall_s": round(total, 1), "training_s": round(training, 1),
        "overhead_share": round(1 - training / total, 3),
        "re_evaluate_unchanged_s": round(again, 1),
        "bytes": {"results": folder_bytes(repo / "results"), "dvc_cache": folder_bytes(repo / ".dvc" / "cache"),
                  "mlartifacts": folder_bytes(repo / "mlartifacts"), "mlflow_db": folder_bytes(repo / "mlflow.db")},
        "mlflow_runs": len(client.search_runs([experiment.experiment_id])), "mlflow_runs_before_re_evaluate": runs_before,
        "mlartifacts_growth_on_re_evaluate": folder_bytes(repo / "mlartifacts") - artifacts_before,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default="mnist_fashion_mlp")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train-limit", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("bench/pipeline.json"))
    args = parser.parse_args(argv)
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        print(f"error: set {MIRROR_ENV} to the data mirror (the smoke run trains on the real files)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="mtlbench-bench-"))
    try:
        result = measure(args.study, [int(s) for s in args.seeds.split(",")], args.train_limit, Path(mirror), workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    write_json(args.out, result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
