"""dvc stage `train@<run>`: train every model variant of one run's study over its seeds, unit by
unit into results/<run> (kept between runs: a killed run resumes where it stopped)."""

from __future__ import annotations

import sys
from pathlib import Path

from mtlbench.runtime import reexec_with_fast_allocator
from mtlbench.stages import known_run, load_params, run_stage, run_arg
from mtlbench.train.runner import run_study, variant_plan

PREPARED_DIR = Path("data/prepared")


def main(argv: list[str] | None = None) -> None:
    name = run_arg(argv, __doc__)
    study, params = known_run(load_params(), name)
    run_study(study, params, PREPARED_DIR, Path("results") / name, ledger=Path("ledger") / name)
    trained = ", ".join(variant for variant, _ in variant_plan(study, params))
    print(f"{name} ({study.name}): trained {trained} for seeds {list(params.run.seeds)}", file=sys.stderr)


if __name__ == "__main__":
    reexec_with_fast_allocator("mtlbench.stages.train", sys.argv[1:])
    run_stage(lambda: main(sys.argv[1:]))
