"""dvc stage `affinity@<run>`: how related the run's tasks look early in training (mtlbench.affinity:
gradient cosine and lookahead affinity on the shared trunk over the first optimizer steps of
unitary-sum training, each seed on its own rows), into reports/affinity/<run>.json; evaluate logs it
beside the run's gains. Measured apart from the train stage, so that editing it re-trains no unit."""

from __future__ import annotations

import sys
from pathlib import Path

from mtlbench.affinity import STEPS, run_affinity
from mtlbench.fileio import write_json
from mtlbench.stages import known_run, load_params, run_stage, run_arg

PREPARED_DIR, TASKS_DIR = Path("data/prepared"), Path("data/tasks")


def main(argv: list[str] | None = None) -> None:
    name = run_arg(argv, __doc__)
    study, params = known_run(load_params(), name)
    result = run_affinity(study, params, PREPARED_DIR, TASKS_DIR)
    write_json(Path("reports") / "affinity" / f"{name}.json", {"run": name, "study": study.name, **result})
    if result["measured"]:
        summary = result["summary"]
        print(f"{name}: affinity over the first {STEPS} steps, mean of {len(result['seeds'])} seeds: gradient cosine "
              f"{summary['cosine']:+.3f}, lookahead {summary['lookahead']:+.3f}", file=sys.stderr)
    else:
        print(f"{name}: affinity not measured: {result['why']}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1:]))
