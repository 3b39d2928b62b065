"""`make records`: does the MLflow store still hold every run the committed evaluations logged?

DVC cannot see the MLflow store (a database or a server outside the workspace): after runs are
deleted in the UI, or mlflow.db and mlartifacts are removed, `dvc repro` still says everything is up
to date. Each evaluate writes `results/mlflow/<run>.json`, the ids of the runs it logged; this
command checks each id against the store, and where any is gone it removes that record file, a
declared output of evaluate@<run>: DVC then sees the stage as changed, and `dvc repro` (which `make
records` runs next) logs the record afresh. A DVC stage marked `always_changed` would do the check
on every `dvc repro`, but `dvc status` would then never be clean; this is asked for instead (and
`make ui` runs it first).

    python -m mtlbench.records            # says which runs lost their record, and invalidates them
    python -m mtlbench.records --check    # only says (what `make ui` runs first)
"""

from __future__ import annotations

import sys
from pathlib import Path

from mtlbench.config import load_params, project_root
from mtlbench.fileio import read_json

RECORDS = Path("results") / "mlflow"


def logged_ids(record: dict) -> list[str]:
    """Every run id an evaluate record names: each variant's parent and its seed runs."""
    return [i for entry in record.get("runs", {}).values() for i in (entry.get("parent"), *entry.get("seeds", {}).values()) if i]


def invalidate_lost_records(root: Path, tracking_uri: str, remove: bool = True) -> list[str]:
    """The runs whose MLflow record is incomplete in the store at `tracking_uri`; their record files
    are removed (so that evaluate@<run> is out of date for DVC) unless `remove` is false."""
    from mtlbench.tracking import missing_runs  # mlflow is slow to import; only this command needs it

    lost = []
    for path in sorted((root / RECORDS).glob("*.json")):
        try:
            record = read_json(path)
        except (OSError, ValueError):
            record = {"runs": {}}
        missing = missing_runs(tracking_uri, logged_ids(record)) if record.get("runs") else ["(unreadable record)"]
        if missing:
            lost.append(path.stem)
            what = (f"removed {path.relative_to(root)}, so `dvc repro` logs the record again (evaluate@{path.stem})"
                    if remove else "`make records` logs it again")
            print(f"{path.stem}: {len(missing)} of its {len(logged_ids(record))} MLflow runs are not in {tracking_uri} "
                  f"(deleted in the UI, or the store was removed); {what}", file=sys.stderr)
            if remove:
                path.unlink()
    return lost


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv not in ([], ["--check"]):
        print(f"usage: python -m mtlbench.records [--check]; got {' '.join(argv)}", file=sys.stderr)
        return 2
    root = project_root()
    lost = invalidate_lost_records(root, load_params().mlflow.tracking_uri, remove=argv != ["--check"])
    if not lost:
        print(f"every evaluated run's MLflow record is in the store ({len(list((root / RECORDS).glob('*.json')))} "
              "runs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
