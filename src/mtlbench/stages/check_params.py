"""dvc stage `check_params`: validate all of params.yaml (every key, not only those a stage uses)
and the task-spec files of the enabled studies."""

from __future__ import annotations

import sys

from mtlbench.stages import load_params, run_stage
from mtlbench.studies import STUDIES


def main() -> None:
    params = load_params()
    for name in params.run.studies:
        STUDIES[name].specs()  # a bad task-spec file names the task and the fault
    print(f"params.yaml is valid: studies {list(params.run.studies)}, seeds {list(params.run.seeds)}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
