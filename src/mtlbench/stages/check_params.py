"""dvc stage `check_params`: validate all of params.yaml (every key, not only those a stage uses)
the task-spec files of the enabled studies and their variants' methods."""

from __future__ import annotations

import sys

from mtlbench.config import check_against_studies
from mtlbench.stages import load_params, run_stage
from mtlbench.studies import STUDIES
from mtlbench.train.runner import check_builds, variant_plan


def main() -> None:
    params = load_params()
    check_against_studies(params)
    for study in STUDIES.values():  # every task file, enabled or not: tasks/ is this stage's dependency
        if study.task_file is not None:
            study.specs()  # a bad task-spec file names the task and the fault
    for name in params.run.studies:
        study, run_params = STUDIES[params.study_of(name)], params.for_run(name)
        plan = variant_plan(study, run_params)  # each variant's kind checks it (methods, RSN2's tasks)
        check_builds(study, plan, study.specs())  # so do networks that cannot be built
    print(f"params.yaml is valid: runs {list(params.run.studies)}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
