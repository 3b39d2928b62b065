"""dvc stage `download`: fetch, verify and convert the datasets of the enabled studies."""

from __future__ import annotations

import sys
from pathlib import Path

from mtlbench.data.prepared import prepare
from mtlbench.data.sources import SOURCES
from mtlbench.fileio import atomic_dir
from mtlbench.stages import load_params, run_stage
from mtlbench.studies import datasets_for

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")


def main() -> None:
    params = load_params()
    datasets = datasets_for(tuple(params.study_of(run) for run in params.run.studies))
    with atomic_dir(PREPARED_DIR) as folder:  # only the enabled datasets, and only if all succeed
        for name in datasets:
            record = prepare(SOURCES[name], params.data.mirror, params.data.verify, RAW_DIR, folder)
            shapes = ", ".join(f"{k} {v}" for k, v in record["shapes"].items())
            print(f"{name}: {shapes}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
