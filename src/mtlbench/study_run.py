"""Run one study under params of its own in a scratch copy of the project, and keep its answer.

`python -m mtlbench.study_run --study mnist_fashion_hps --set run.train_limit=5000 --out bench/mnist_fashion_hps_cpu`
copies the pipeline and code (check.copy_project), runs the real `dvc repro` there with the study
enabled and the given params, and copies back what a reader needs, without touching this
workspace's dvc.lock, results or MLflow store: the compact metric, the study's details and report,
the run's resolved context, and each variant's mean training time per epoch (`epoch_times.json`,
from the runs' own per-epoch timings). The README's tables for such runs are generated from these
files (`make readme`).

Runs of hours: `--scratch DIR` runs in DIR instead of a temporary folder; after an interruption the
same command resumes there, with the code and params it started with, keeping every finished unit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

import yaml

from mtlbench.check import ROOT, CheckError, copy_project, git_repo_env, init_repo
from mtlbench.config import MIRROR_ENV
from mtlbench.fileio import atomic_dir, read_json, write_json
from mtlbench.runtime import cpu_model
from mtlbench.studies import BASELINE_KIND, STUDIES, Study
from mtlbench.train.units import code_digest


def parse_setting(text: str) -> tuple[str, str, object]:
    """`section.key=value`, the value read as YAML (as `dvc exp run -S` reads it)."""
    key, equals, value = text.partition("=")
    section, _, name = key.partition(".")
    if not (section and name and equals):
        raise SystemExit(f"--set {text!r}: expected section.key=value, e.g. run.train_limit=5000")
    return section, name, yaml.safe_load(value)


def resolved(settings: list[str]) -> dict[str, object]:
    """--set options as the params they make: their order does not matter, but for a key set twice
    (the last one wins), so a resumed run is recognised however its settings were typed."""
    return {f"{section}.{key}": value for section, key, value in map(parse_setting, settings)}


def epoch_times(results: Path, study: Study) -> dict[str, dict[str, float]]:
    """Each variant's mean seconds per training epoch over its seeds' epochs (a multitask run
    counts once, not once per task; the baseline kind trains one model per task)."""
    times: dict[str, dict[str, float]] = {}
    for variant_dir in sorted(p for p in results.iterdir() if p.is_dir()):
        seconds = []
        for run_file in sorted(variant_dir.glob("seed*/run.json")):
            tasks = json.loads(run_file.read_text())["tasks"]
            fits = list(tasks.values())  # dedicated: one fit per task; multitask: one joint fit, in every task
            seconds += [r["seconds"] for t in (fits if study.variant_kind(variant_dir.name) == BASELINE_KIND else fits[:1]) for r in t["history"]]
        times[variant_dir.name] = {"seconds_per_epoch": mean(seconds), "epochs": len(seconds)}
    return times


def scratch_project(scratch: Path | None, identity: dict, edit) -> tuple[Path, bool]:
    """The scratch project to run in, and whether it resumes one. Without --scratch: a fresh
    temporary folder. With it: that folder, created on first use with this project's code and
    params; on a later use (after a kill, a closed session, a full disk) the project found there,
    with the code it started with, so its finished units are kept. A folder made for other
    settings is refused rather than mixed."""
    if scratch is None:
        scratch = Path(tempfile.mkdtemp(prefix="mtlbench-study-"))
    marker = scratch / "study_run.json"
    if marker.is_file():
        made_for = read_json(marker)
        if made_for.get("study") != identity["study"] or resolved(made_for.get("set", [])) != resolved(identity["set"]):
            raise CheckError(f"--scratch {scratch} holds a run of {made_for.get('study')} with --set "
                             f"{' '.join(made_for.get('set', [])) or '(none)'}; this run asks for {identity['study']} "
                             f"with {' '.join(identity['set']) or '(none)'}: give another --scratch folder, or remove "
                             "that one to start afresh")
        return scratch / "repo", True
    if scratch.exists() and any(scratch.iterdir()):
        raise CheckError(f"--scratch {scratch} is not empty and holds no study_run project; give an empty or new folder")
    repo = scratch / "repo"
    if repo.exists():
        shutil.rmtree(repo)
    copy_project(ROOT, repo, edit)
    return repo, False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", required=True)
    parser.add_argument("--set", action="append", default=[], help="section.key=value (repeatable)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--scratch", type=Path, help="a folder to run in that outlives the process: run the same "
                        "command again after an interruption and it resumes (finished units kept)")
    args = parser.parse_args(argv)
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        print(f"study_run: set {MIRROR_ENV} to the data mirror (e.g. ../shared/datasets)", file=sys.stderr)
        return 2
    settings = [parse_setting(s) for s in args.set]

    def edit(params: dict) -> None:
        params["run"]["studies"] = [args.study]
        for section, key, value in settings:
            params.setdefault(section, {})[key] = value

    started = time.time()
    identity = {"study": args.study, "set": args.set}
    try:
        repo, resumed = scratch_project(args.scratch, identity, edit)
    except CheckError as err:
        print(f"study_run: {err}", file=sys.stderr)
        return 2
    env = git_repo_env(repo, Path(mirror).resolve())
    try:
        if resumed:
            print(f"study_run: resuming the scratch project {repo} (its own code and params; finished units kept)",
                  file=sys.stderr)
            train_code = read_json(repo.parent / "study_run.json").get("train_code")  # the code it started with
        else:
            init_repo(repo, env)
            train_code = code_digest()  # of the code just copied there
            # after init: a half-made folder is not resumed
            write_json(repo.parent / "study_run.json", {**identity, "train_code": train_code})
        # dvc repro's own output as it goes (the plan, each unit's progress): this run takes hours
        if subprocess.run(["dvc", "repro"], cwd=repo, env=env).returncode != 0:
            raise CheckError(f"dvc repro failed in {repo} (its output is above)")
        with atomic_dir(args.out) as out:
            shutil.copy(repo / "metrics" / f"{args.study}.json", out / "metrics.json")
            shutil.copy(repo / "reports" / "studies" / f"{args.study}.json", out / "details.json")
            shutil.copy(repo / "reports" / f"{args.study}.md", out / "report.md")
            shutil.copy(repo / "results" / args.study / "context.json", out / "context.json")
            write_json(out / "epoch_times.json", epoch_times(repo / "results" / args.study, STUDIES[args.study]))
            write_json(out / "run.json", {"study": args.study, "set": args.set, "cpu": cpu_model(),
                                          "wall_s": round(time.time() - started, 1), "resumed": resumed,
                                          "train_code": train_code,  # mtlbench.pool pools only runs of one code
                                          "command": "python -m mtlbench.study_run " + " ".join(argv or sys.argv[1:])})
    except (CheckError, OSError) as err:
        print(f"study_run: {err}\nthe scratch project is kept: {repo} (run the same command with --scratch "
              f"{repo.parent} to resume it)", file=sys.stderr)
        return 1
    shutil.rmtree(repo.parent)
    print(f"{args.study}: done in {time.time() - started:.0f} s; files in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
