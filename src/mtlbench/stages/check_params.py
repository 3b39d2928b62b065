"""dvc stage `check_params`: validate all of params.yaml (every key, not only those a stage uses)."""

from __future__ import annotations

import sys

from mtlbench.stages import load_params, run_stage


def main() -> None:
    params = load_params()
    print(f"params.yaml is valid: studies {list(params.run.studies)}, seeds {list(params.run.seeds)}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
