"""dvc stage `train@<study>`: train every model variant of one study over the seeds, unit by unit
into results/<study> (kept between runs: a killed run resumes where it stopped)."""

from __future__ import annotations

import sys
from pathlib import Path

from mtlbench.runtime import reexec_with_fast_allocator
from mtlbench.stages import known_study, load_params, run_stage, study_arg
from mtlbench.train.runner import run_study, variant_plan

PREPARED_DIR = Path("data/prepared")


def main(argv: list[str] | None = None) -> None:
    study = known_study(study_arg(argv, __doc__))
    params = load_params()
    run_study(study, params, PREPARED_DIR, Path("results") / study.name)
    trained = ", ".join(variant for variant, _ in variant_plan(study, params))
    print(f"{study.name}: trained {trained} for seeds {list(params.run.seeds)}", file=sys.stderr)


if __name__ == "__main__":
    reexec_with_fast_allocator("mtlbench.stages.train", sys.argv[1:])
    run_stage(lambda: main(sys.argv[1:]))
