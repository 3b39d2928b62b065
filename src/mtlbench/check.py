"""`make check`: the reproducibility check CI runs (docs/reproducibility.md).

It re-runs, from scratch, the committed profile `check/profile.yaml` (params.yaml overrides: every
study at small size, CPU, 2 seeds; then the studies whose committed answer is under the modern
protocol again under it) with the real `dvc repro` in a fresh copy of the project, on real
MNIST/Fashion-MNIST from the data mirror (the test sets cut to their first images) and small CIFAR
archives in the official format written here (mtlbench.formats), and compares its numbers with
`check/expected.json`, which holds one record per CPU kind, each made on that kind.

On a CPU kind with a fresh record of its own the comparison is exact: every number of every metrics
and details file. Float results depend on the kernels a CPU gets (measured: no setting of ATen, MKL,
oneDNN, NNPACK or threads gives the same bits on AMD EPYC and Intel Sapphire Rapids), so any other
CPU, or one whose record a number-moving update elsewhere marked stale, is compared robustly with
the newest fresh record: each seed's training loss per epoch (relative) and primary metric (per
study), within the file's `cross_cpu` bounds, which docs/reproducibility.md derives. The first line
says which record and which comparison, the last line the verdict; exit 1 when numbers moved.
`--update` records this CPU's values (commit them with the code change that moved them).

It also reports whether the committed dvc.lock still matches the code and params (`dvc status`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from mtlbench.config import MIRROR_ENV
from mtlbench.evaluate import task_comparisons
from mtlbench.fileio import write_json
from mtlbench.formats import idx_bytes, write_cifar10, write_cifar100
from mtlbench.runtime import NUMERICS_ENV, PORTABLE_NUMERICS, cpu_model

ROOT = Path(__file__).resolve().parents[2]
PROFILE = Path("check/profile.yaml")
# Catalogue studies the profile does not run yet, each with why and what is owed. A new study joins
# the profile with `make check-update` (30 min), which records only the CPU at hand; until then it is
# named here, and `make check` says so in its first lines.
NOT_YET_CHECKED = {"digit_groups": "added 2026-12-07 for the map; its code path (a class-group task file on one "
                                   "dataset; dedicated, RSN2, hps_sum) is fashion_groups', which the profile runs; "
                                   "owed: add it to check/profile.yaml and `make check-update`"}
EXPECTED = Path("check/expected.json")
PROJECT_FILES = ("dvc.yaml", ".gitignore", ".dvcignore", "MLproject", "python_env.yaml")
PROJECT_FOLDERS = ("tasks", "plans")  # besides src/: the task files and the analysis plans
# What the cross-CPU comparison compares (robust_key): each seed's primary metric, within an absolute
# bound per study, and each seed's training loss per epoch, within a relative bound (check/expected.json's
# `cross_cpu`, docs/reproducibility.md says how each was measured).
ROBUST_METRICS = ("accuracy", "mse")
CURVE_METRIC = "train_loss"
MODERN = "modern/"  # the key prefix of the profile's second pass, under the modern protocol


class CheckError(RuntimeError):
    """The check could not run (no data mirror, dvc repro failed): not a result that moved."""


def copy_project(root: Path, dest: Path, edit_params: Callable[[dict], None]) -> None:
    """The pipeline and code of `root` in `dest`, with params.yaml edited by `edit_params`."""
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        if (root / name).exists():
            shutil.copy(root / name, dest / name)
    shutil.copytree(root / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for folder in PROJECT_FOLDERS:  # what dvc.yaml's stages read besides the code
        shutil.copytree(root / folder, dest / folder)
    params = yaml.safe_load((root / "params.yaml").read_text())
    edit_params(params)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def git_repo_env(repo: Path, mirror: Path) -> dict[str, str]:
    """The environment a copied project runs in: its own code, the given mirror, no MLflow or DVC
    variables of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        PYTHONPATH=str(repo / "src"),  # the copy's code is what runs and what DVC hashes
        MTLBENCH_DATA_MIRROR=str(mirror),
        GIT_AUTHOR_NAME="mtlbench", GIT_AUTHOR_EMAIL="mtlbench@localhost",
        GIT_COMMITTER_NAME="mtlbench", GIT_COMMITTER_EMAIL="mtlbench@localhost",
    )
    return env


def init_repo(repo: Path, env: dict[str, str]) -> None:
    for args in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                 ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        run_command(args, repo, env)


def run_command(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run `args` in `cwd`; a failure is a CheckError holding the end of what it printed."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise CheckError(f"{' '.join(args)} failed in {cwd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def first_rows_idx(source: Path, dest: Path, rows: int) -> None:
    """An IDX .gz file holding the first `rows` entries of `source` (the real test set, cut)."""
    content = gzip.decompress(source.read_bytes())
    ndim = content[3]
    shape = [int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    array = np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    dest.write_bytes(gzip.compress(idx_bytes(array[:rows]), mtime=0))


def write_mirror(mirror: Path, real_mirror: Path, sizes: dict) -> None:
    """Real MNIST and Fashion-MNIST from the data mirror (the training files as they are, the first
    `mnist_test` test images: a 10000-image test set costs a CNN 14 s a prediction on 2 cores), and
    small CIFAR archives written here."""
    for folder in ("mnist", "fashion-mnist"):
        source = real_mirror / folder
        if not source.is_dir():
            raise CheckError(f"{source}: the data mirror lacks {folder}/; `make check` trains on the real "
                             f"MNIST and Fashion-MNIST files: set {MIRROR_ENV} to a folder holding "
                             "mnist/ and fashion-mnist/ with the official IDX .gz files")
        (mirror / folder).mkdir()
        for split in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
            (mirror / folder / f"{split}.gz").symlink_to((source / f"{split}.gz").resolve())
        for split in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            first_rows_idx(source / f"{split}.gz", mirror / folder / f"{split}.gz", sizes["mnist_test"])
    write_cifar10(mirror / "cifar-10-python.tar.gz", per_batch=sizes["cifar10_per_batch"], n_test=sizes["cifar10_test"], seed=3)
    write_cifar100(mirror / "cifar-100-python.tar.gz", n_train=sizes["cifar100_train"], n_test=sizes["cifar100_test"], seed=4)


def numbers(document, prefix: str = "") -> dict[str, float | None]:
    """Every number (and null) of a JSON document by its path, e.g. `rsn2.digits.accuracy.mean`."""
    out: dict[str, float | None] = {}
    if isinstance(document, dict):
        for key, value in document.items():
            out.update(numbers(value, f"{prefix}{key}."))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            out.update(numbers(value, f"{prefix}{i}."))
    elif document is None or (isinstance(document, (int, float)) and not isinstance(document, bool)):
        out[prefix.rstrip(".")] = document
    return out


def collect(repo: Path, studies: list[str], tag: str = "") -> dict[str, float | None]:
    """Every number of the DVC metrics of `studies` and the summary, and from the studies' details
    the per-seed values of every metric of every headline task (all tasks where a study names none;
    beyond them the primary metric's), each paired comparison's mean and t-test p, and each seed's
    training loss per epoch: everything else derives from these. Keys are `<tag><file>:<path>`."""
    got: dict[str, float | None] = {}
    for path in [repo / "metrics" / f"{study}.json" for study in sorted(studies)] + [repo / "metrics" / "summary.json"]:
        got.update(numbers(json.loads(path.read_text()), f"{tag}metrics/{path.name}:"))
    for path in [repo / "reports" / "studies" / f"{study}.json" for study in sorted(studies)]:
        details = json.loads(path.read_text())
        headline = details.get("headline")
        kept: dict = {"variants": {}, "comparisons": {}}
        for variant, tasks in details["variants"].items():
            kept["variants"][variant] = {
                task: {metric: s["values"] for metric, s in by_metric.items()
                       if headline is None or task in headline or metric in ("accuracy", "mse")}
                for task, by_metric in tasks.items()}
        for variant, entry in details["comparisons"].items():
            kept["comparisons"][variant] = {task: {k: c["paired"].get(k) for k in ("mean", "p_t", "p", "p_tost")}
                                            for task, c in task_comparisons(entry).items() if "paired" in c}
        kept["against_unitary"] = {method: {task: {k: c.get(k) for k in ("mean", "p", "p_tost")}
                                            for task, c in by_task.items()}
                                   for method, by_task in details.get("against_unitary", {}).items()}
        kept["curves"] = {variant: {task: {seed: [{CURVE_METRIC: epoch.get(CURVE_METRIC)} for epoch in epochs]
                                           for seed, epochs in by_seed.items()}
                                    for task, by_seed in tasks.items()}
                          for variant, tasks in details.get("curves", {}).items()}
        got.update(numbers(kept, f"{tag}reports/studies/{path.name}:"))
    return got


def machine() -> dict[str, str]:
    import torch

    return {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__.split("+")[0], "python": platform.python_version(),
            "numerics": PORTABLE_NUMERICS[NUMERICS_ENV]}  # what the profile trains under


def load_expected(path: Path) -> dict:
    """check/expected.json ({} where there is no file): `machines`, records each with `machine` (cpu,
    torch) and `values`, and `cross_cpu`, the bounds of the robust comparison; anything else is a
    CheckError saying how to restore the file."""
    if not path.is_file():
        return {}
    remedy = f"restore it with `git checkout -- {EXPECTED}`, or record this machine's values with `make check-update`"
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckError(f"{EXPECTED}: unreadable ({str(err).splitlines()[0]}); {remedy}") from None
    records = document.get("machines") if isinstance(document, dict) else None
    if not isinstance(records, list) or not records:
        raise CheckError(f"{EXPECTED}: expected {{\"machines\": [{{\"machine\": {{...}}, \"values\": {{...}}}}, ...]}} "
                         f"with at least one record; {remedy}")
    for i, record in enumerate(records):
        info = record.get("machine") if isinstance(record, dict) else None
        values = record.get("values") if isinstance(record, dict) else None
        if not isinstance(info, dict) or not {"cpu", "torch"} <= set(info) or not isinstance(values, dict):
            raise CheckError(f"{EXPECTED}: machines[{i}] needs \"machine\" (with cpu and torch) and \"values\" "
                             f"(metric -> number); {remedy}")
    bounds = document.get("cross_cpu")
    if bounds is not None and not (isinstance(bounds, dict) and all(isinstance(bounds.get(k), (int, float))
                                                                    for k in ("primary_default", "train_loss_default"))
                                   and all(isinstance(bounds.get(k), dict) for k in ("primary_by_study", "train_loss_by_study"))):
        raise CheckError(f"{EXPECTED}: cross_cpu needs primary_default, primary_by_study, train_loss_default and "
                         f"train_loss_by_study (check.derive_bounds makes them); {remedy}")
    return document


def robust_key(key: str) -> str | None:
    """"primary" for a seed's primary metric (details' `variants.<variant>.<task>.<metric>.<i>`),
    "curve" for a seed's training loss at one epoch (`curves.<variant>.<task>.<seed>.<epoch>.train_loss`),
    None for the rest: seed statistics at n = 2 and p-values swing with float noise; these do not."""
    file, _, inner = key.partition(":")
    if not file.removeprefix(MODERN).startswith("reports/studies/"):
        return None
    path = inner.split(".")
    if len(path) == 5 and path[0] == "variants" and path[3] in ROBUST_METRICS:
        return "primary"
    if len(path) == 6 and path[0] == "curves" and path[5] == CURVE_METRIC:
        return "curve"
    return None


def robust(values: dict[str, float | None]) -> dict[str, float | None]:
    """The numbers the cross-CPU comparison compares (robust_key)."""
    return {key: value for key, value in values.items() if robust_key(key)}


def _study_of(key: str) -> str:
    """The study a details key is of, as tolerances name it: `fashion_groups`, `modern/fashion_groups`."""
    file = key.split(":", 1)[0]
    tag = MODERN if file.startswith(MODERN) else ""
    return tag + file.removeprefix(tag).removeprefix("reports/studies/").removesuffix(".json")


def _relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b)) if a != b else 0.0


def measured_differences(a: dict[str, float | None], b: dict[str, float | None]) -> dict:
    """The robust numbers' largest difference per study between two runs of the profile under other
    kernels: absolute for the primary metrics, relative for the training losses; and how many of them
    differed at all."""
    primary: dict[str, float] = {}
    loss: dict[str, float] = {}
    moved = compared = 0
    for key, value in robust(a).items():
        other = b.get(key)
        if value is None or other is None:
            continue
        compared += 1
        moved += value != other
        study = _study_of(key)
        if robust_key(key) == "curve":
            loss[study] = max(loss.get(study, 0.0), _relative(value, other))
        else:
            primary[study] = max(primary.get(study, 0.0), abs(value - other))
    return {"primary_by_study": dict(sorted(primary.items())), "train_loss_by_study": dict(sorted(loss.items())),
            "compared": compared, "moved": moved}


# The bounds are this many times the largest difference measured: the full measurement is of other
# kernels on one CPU kind, the other kind's only of the primary metrics (docs/reproducibility.md).
MARGIN = 3
# A seed's primary metric may move by this much on any study (5 of the profile's 2000 test images):
# the measured moves are near-ties of near-chance models flipped by float noise.
PRIMARY_FLOOR = 0.0025
# A seed's training loss may move by this fraction on any study: Adam's first steps move a weight by
# about lr times the sign of its gradient, so float noise in a near-zero gradient moves that weight by
# a whole step (measured moves reach 5e-4 after two epochs); a seed or a learning rate 10% off moves
# it by percents (tests/test_check_bounds.py).
TRAIN_LOSS_FLOOR = 1e-4


def derive_bounds(measured: list[dict]) -> dict:
    """check/expected.json's `cross_cpu` bounds from its `measured` differences (each a
    measured_differences of two runs under other kernels or on another CPU, with how it was made):
    per study, MARGIN times the largest difference measured, never below the floors."""
    def largest(field: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for entry in measured:
            for study, difference in entry.get(field, {}).items():
                out[study] = max(out.get(study, 0.0), difference)
        return out

    def bound(difference: float, floor: float) -> float:
        return float(f"{max(floor, MARGIN * difference):.2g}")

    return {"primary_default": PRIMARY_FLOOR,
            "primary_by_study": {s: bound(d, PRIMARY_FLOOR) for s, d in sorted(largest("primary_by_study").items())},
            "train_loss_default": TRAIN_LOSS_FLOOR,
            "train_loss_by_study": {s: bound(d, TRAIN_LOSS_FLOOR) for s, d in sorted(largest("train_loss_by_study").items())}}


def _within(key: str, a: float, b: float, bounds: dict) -> bool:
    study = _study_of(key)
    if robust_key(key) == "curve":
        return _relative(a, b) <= bounds["train_loss_by_study"].get(study, bounds["train_loss_default"])
    return abs(a - b) <= bounds["primary_by_study"].get(study, bounds["primary_default"])


def compare(expected: dict[str, float | None], got: dict[str, float | None],
            bounds: dict | None = None) -> list[tuple[str, object, object]]:
    """(metric, expected, got) of every number that moved, appeared or vanished: exactly, or where
    `bounds` (check/expected.json's `cross_cpu`) is given, beyond them."""
    moved = []
    for key in sorted(set(expected) | set(got)):
        if key not in got:
            moved.append((key, expected[key], "(missing)"))
        elif key not in expected:
            moved.append((key, "(new)", got[key]))
        elif expected[key] != got[key] and (bounds is None or expected[key] is None or got[key] is None
                                            or not _within(key, expected[key], got[key], bounds)):
            moved.append((key, expected[key], got[key]))
    return moved


def moved_table(moved: list[tuple[str, object, object]], limit: int = 60) -> str:
    lines = ["| metric | expected | got |", "|---|---|---|"]
    lines += [f"| {key} | {want} | {have} |" for key, want, have in moved[:limit]]
    if len(moved) > limit:
        lines.append(f"| ... {len(moved) - limit} more | | |")
    return "\n".join(lines)


def lock_drift(root: Path) -> list[str]:
    """Stages of the committed dvc.lock that no longer match the code, params or command (outputs
    and data merely absent, as on a fresh clone, do not count; nor do stages the lock never ran)."""
    if not (root / "dvc.lock").is_file():
        return ["dvc.lock is not committed"]
    result = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        return [f"dvc status failed: {result.stderr.strip()[-500:]}"]
    locked = set((yaml.safe_load((root / "dvc.lock").read_text()) or {}).get("stages", {}))
    drift = []
    for stage, changes in (json.loads(result.stdout or "{}") or {}).items():
        if stage not in locked:  # never run here (a study outside the baseline): nothing to drift from
            continue
        for change in changes:
            if isinstance(change, str):  # "changed command", "always changed"
                drift.append(f"{stage}: {change}")
                continue
            for kind in ("changed deps", "changed params"):
                for path, state in (change.get(kind) or {}).items():
                    if state not in ("deleted", "not in cache"):
                        drift.append(f"{stage}: {kind.removeprefix('changed ')} {path} {state}")
    return drift


def prepare(root: Path, workdir: Path, mirror_source: Path, profile: dict, portable: bool = True) -> tuple[Path, dict]:
    """A git + DVC copy of the project in `workdir`, with the profile's params and data mirror, and
    the environment to run it in (portable numerics unless `portable` is False)."""
    repo, mirror = workdir / "repo", workdir / "mirror"
    mirror.mkdir()
    write_mirror(mirror, mirror_source, profile["sizes"])

    def edit(params: dict) -> None:
        for section, values in profile["params"].items():
            params[section].update(values)

    copy_project(root, repo, edit)
    env = {**git_repo_env(repo, mirror), **(PORTABLE_NUMERICS if portable else {})}
    init_repo(repo, env)
    return repo, env


def run_profile(repo: Path, env: dict, studies: list[str], tag: str = "", force: bool = False,
                **run: object) -> dict[str, float | None]:
    """`dvc repro` of `studies` with `run` set in params.yaml's run section, and its numbers (collect).
    Data is prepared once per repo; units are keyed by protocol, seeds and numerics, so what changed
    trains anew. `force` where only the environment changed (numerics), which DVC does not see."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["run"].update(studies=studies, **run)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_command(["dvc", "repro", *(["--force"] if force else [])], repo, env)
    return collect(repo, studies, tag)


def reproduce(root: Path, workdir: Path, mirror_source: Path, portable: bool = True) -> dict[str, float | None]:
    """The profile's numbers: every study under its params, then the `modern:` studies under modern."""
    profile = yaml.safe_load((root / PROFILE).read_text())
    repo, env = prepare(root, workdir, mirror_source, profile, portable)
    got = run_profile(repo, env, profile["params"]["run"]["studies"])
    modern = profile.get("modern", {}).get("studies")
    if modern:  # the same repo again: data prepared once; units keyed by protocol, so these train anew
        got.update(run_profile(repo, env, modern, MODERN, protocol="modern"))
    return got


def _made_on(record: dict) -> str:
    info, when = record["machine"], record.get("recorded", {})
    made = f"{info['cpu']} (torch {info['torch']}, {info.get('numerics', 'native')} numerics"
    if when:
        made += f", {when.get('date')}, commit {str(when.get('commit'))[:10]}"
    return made + ")"


def choose_reference(records: list[dict], here: dict) -> tuple[dict, str, str]:
    """The record to compare with, how ("exact" or "robust") and why. A CPU with a fresh record of its
    own (same torch and numerics) is compared exactly with it; any other, or one whose record a
    number-moving update on another CPU marked stale, robustly with the newest fresh record: a record
    is only ever made on the CPU it is for."""
    same_software = [r for r in records if r["machine"]["torch"] == here["torch"]
                     and r["machine"].get("numerics", "native") == here["numerics"]]
    own = next((r for r in same_software if r["machine"]["cpu"] == here["cpu"]), None)
    if own is not None and not own.get("stale"):
        return own, "exact", "this CPU's own record"
    fresh = [r for r in same_software if not r.get("stale")]
    reference = fresh[-1] if fresh else records[-1]
    if own is not None:
        stale = own["stale"]
        why = (f"this CPU's record is stale: an update on {stale.get('by')} ({stale.get('date')}) moved "
               f"{stale.get('moved')} numbers; `make check-update` on this CPU records it again")
    elif same_software:
        why = f"{here['cpu']} has no record of its own; `make check-update` on this CPU adds one"
    else:
        why = f"no record under torch {here['torch']} with {here['numerics']} numerics"
    return reference, "robust", why


def _bounds_text(bounds: dict) -> str:
    def listed(by_study: dict) -> str:
        return ", ".join(f"{study} {bound:g}" for study, bound in by_study.items())

    return (f"each seed's training loss per epoch within a relative {bounds['train_loss_default']:g} "
            f"({listed(bounds['train_loss_by_study'])}); each seed's primary metric within "
            f"{bounds['primary_default']:g} ({listed(bounds['primary_by_study'])})")


def verdict(reference: dict, how: str, got: dict[str, float | None], bounds: dict | None) -> tuple[int, str]:
    """Print the comparison of `got` with the reference record; (exit code, one-line verdict)."""
    moved = compare(reference["values"], got)
    if not moved:
        same = "exactly" if how == "exact" else f"bit-identical to the record made on {_made_on(reference)}"
        return 0, f"PASSED: all {len(got)} numbers as expected ({same})"
    if how == "exact":
        print(f"{len(moved)} of {len(got)} numbers moved:\n{moved_table(moved)}")
        return 1, f"FAILED: {len(moved)} of {len(got)} numbers moved (exact comparison)"
    if bounds is None:
        return 2, f"ERROR: {EXPECTED} has no `cross_cpu` bounds for a robust comparison; restore it from git"
    differ = len(moved)
    print(f"{differ} of {len(got)} numbers differ from the record, as float noise makes them across CPUs; "
          f"comparing the robust numbers: {_bounds_text(bounds)}")
    kept = robust(got)
    seen = measured_differences(reference["values"], got)
    print(f"largest robust differences here (the measurement docs/reproducibility.md derives the bounds from): "
          f"training loss {json.dumps(seen['train_loss_by_study'])}; primary metric {json.dumps(seen['primary_by_study'])}")
    moved = compare(robust(reference["values"]), kept, bounds)
    if moved:
        print(f"{len(moved)} of {len(kept)} robust numbers moved beyond the bounds:\n{moved_table(moved)}")
        return 1, f"FAILED: {len(moved)} of {len(kept)} robust numbers moved beyond the cross-CPU bounds"
    return 0, f"PASSED: all {len(kept)} robust numbers within the cross-CPU bounds ({differ} of {len(got)} not bit-identical)"


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through main's `finally`, which removes the temporary project


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help=f"record the values in {EXPECTED} for this CPU")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project (its path is printed)")
    parser.add_argument("--native", action="store_true", help="train under the CPU's own kernels instead of portable "
                        "numerics: measures what other kernels move (docs/reproducibility.md); never recorded")
    args = parser.parse_args(argv)
    if args.native and args.update:
        parser.error("--native runs are compared, never recorded: the records are of portable numerics")
    mirror_source = os.environ.get(MIRROR_ENV)
    if not mirror_source:
        print(f"error: {MIRROR_ENV} is not set; `make check` trains on the real MNIST/Fashion-MNIST files of a "
              f"data mirror (e.g. {MIRROR_ENV}=../shared/datasets make check)", file=sys.stderr)
        return 2
    expected_path = ROOT / EXPECTED
    try:  # before the profile's minutes of training: a damaged file is said at once
        document = load_expected(expected_path)
    except CheckError as err:
        if not args.update:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"note: {err}; --update writes a new one", file=sys.stderr)
        document = {}
    records = document.get("machines", [])
    if not records and not args.update:
        print(f"error: {EXPECTED} does not exist; run `make check-update` and commit it", file=sys.stderr)
        return 2
    here = machine()  # portable numerics: what a record is of (--native is never recorded)
    if args.update:
        print(f"make check --update: records this CPU, {here['cpu']} (torch {here['torch']}, {here['numerics']} "
              f"numerics), in {EXPECTED}")
    else:
        reference, how, why = choose_reference(records, here)
        if args.native:  # other kernels on this CPU, as another CPU has: what the robust comparison is for
            how, why = "robust", "native numerics: this CPU's own kernels against a portable record"
        print(f"make check: {how} comparison ({why}) with the record made on {_made_on(reference)}")
    for study, why in NOT_YET_CHECKED.items():
        print(f"make check: not in the profile yet: {study} ({why})")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="mtlbench-check-"))
    try:
        got = reproduce(ROOT, workdir, Path(mirror_source), portable=not args.native)
    except CheckError as err:
        print(f"error: {err}", file=sys.stderr)
        print("make check: ERROR: the profile did not run (above)")
        return 2
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    drift = lock_drift(ROOT)
    print(f"reproduced the profile in {time.time() - started:.0f} s on {here['cpu']} ({len(got)} numbers)")
    for line in drift:
        print(f"dvc.lock out of date: {line} (run `dvc repro` and commit dvc.lock)")
    if args.update:
        return record(expected_path, document, here, got)
    code, line = verdict(reference, how, got, document.get("cross_cpu"))
    print(f"make check: {line}")
    return code


def _head_commit() -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def record(path: Path, document: dict, here: dict, got: dict[str, float | None]) -> int:
    """Replace this CPU's record (same cpu, torch and numerics) with `got`, written atomically. Where
    numbers moved against this CPU's previous fresh record, the code moved them: every other CPU's
    record is marked stale, and those CPUs compare robustly with this record until they record again.
    Where this CPU had no fresh record (a first one, or one marked stale), only another CPU's record
    that `got` does not match robustly is marked stale."""
    def same(r: dict) -> bool:
        return all(r["machine"].get(k, "native") == here[k] for k in ("cpu", "torch", "numerics"))

    records = document.get("machines", [])
    old = next((r for r in records if same(r)), None)
    bounds = document.get("cross_cpu")
    when = {"date": time.strftime("%Y-%m-%d"), "commit": _head_commit()}
    kept = []
    for other in (r for r in records if not same(r)):
        if old is not None and not old.get("stale"):
            moved = compare(old["values"], got)
        else:
            moved = compare(robust(other["values"]), robust(got), bounds) if bounds else []
        if moved and not other.get("stale"):
            other = {**other, "stale": {"by": here["cpu"], **when, "moved": len(moved)}}
            print(f"{_made_on(other)}: marked stale ({len(moved)} numbers moved); that CPU compares robustly with "
                  "this record until `make check-update` runs there")
        kept.append(other)
    write_json(path, {**document, "machines": [*kept, {"machine": here, "recorded": when, "values": got}]})
    print(f"recorded {len(got)} values for {here['cpu']} in {EXPECTED}")
    print(f"make check: RECORDED {len(got)} numbers for {here['cpu']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
