"""dvc stage `prepare`: the label matrix of every enabled study whose tasks come from a task-spec
file (tasks/<study>.yaml), one column per task, under data/tasks."""

from __future__ import annotations

import sys
from pathlib import Path

from mtlbench.data.taskspec import prepare_task_labels
from mtlbench.fileio import atomic_dir, write_json
from mtlbench.stages import load_params, run_stage
from mtlbench.studies import STUDIES

PREPARED_DIR = Path("data/prepared")
TASKS_DIR = Path("data/tasks")


def main() -> None:
    params = load_params()
    with atomic_dir(TASKS_DIR) as out_dir:  # always written
        written = {}
        for name in dict.fromkeys(params.study_of(run) for run in params.run.studies):
            study = STUDIES[name]
            if not study.needs_prepared_labels:  # class-group tasks map the labels as they load
                continue
            tasks = list(study.task_definitions().values())  # read and validated once
            record = prepare_task_labels(name, tasks, PREPARED_DIR, out_dir, study.task_file)
            written[name] = {"task_file": study.task_file, "tasks": len(record["tasks"])}
            print(f"{name}: labels for {len(record['tasks'])} tasks from {study.task_file}", file=sys.stderr)
        # what the folder holds, also when no enabled study needs label matrices: DVC warns of an
        # empty output ("'data/tasks' is empty") at every stage that reads it
        write_json(out_dir / "index.json", {"label_matrices": written})


if __name__ == "__main__":
    run_stage(main)
