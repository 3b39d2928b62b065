"""dvc stage `evaluate@<study>`: metrics, reports and plots from the trained results; MLflow runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mtlbench.config import project_root
from mtlbench.evaluate import evaluate_study, primary_metric
from mtlbench.outputs import write_study_outputs
from mtlbench.stages import known_study, load_params, run_stage, study_arg


def main(argv: list[str] | None = None) -> None:
    study = known_study(study_arg(argv, __doc__))
    params = load_params()
    outcomes = evaluate_study(study, Path("results") / study.name)
    report_md = write_study_outputs(study.name, outcomes, Path("."), study.headline)

    from mtlbench.tracking import Tracker  # mlflow is slow to import; only this stage needs it

    stage = os.environ.get("DVC_STAGE", "outside dvc")  # DVC names the stage it runs, e.g. evaluate@<study>
    tracker = Tracker(params.mlflow.tracking_uri, params.mlflow.log_models, project_root(), stage)
    parents = tracker.log_study(study.name, outcomes, report_md, study.headline)
    for o in outcomes:
        scores = ", ".join(f"{task} {primary_metric(s)} {s[primary_metric(s)]['mean']:.4f}"
                           for task, s in list(o.summary.items())[:10])
        print(f"{study.name} {o.variant}: mean test {scores} (MLflow run {parents[o.variant]})", file=sys.stderr)


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1:]))
