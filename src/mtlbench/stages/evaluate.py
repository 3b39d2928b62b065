"""dvc stage `evaluate@<run>`: metrics, reports and plots from the trained results; MLflow runs.

The MLflow record is written last, then `results/mlflow/<study>.json` (the run ids): a declared
output, so a killed evaluate leaves it missing and the next `dvc repro` runs the stage again, which
replaces the incomplete runs (tracking.Tracker)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mtlbench.config import Params, project_root
from mtlbench.evaluate import evaluate_study, primary_metric
from mtlbench.evaluate.plans import plan_status
from mtlbench.errors import ExpectedError
from mtlbench.fileio import is_disk_full, is_unwritable, no_space, read_json, write_json
from mtlbench.outputs import data_warnings, write_study_outputs
from mtlbench.stages import known_run, load_params, run_stage, run_arg
from mtlbench.studies import Study
from mtlbench.summary import rows_phrase, study_figures


def store_fault(err: Exception, tracking_uri: str) -> ExpectedError | None:
    """The MLflow store's own faults, said as such: a full disk (OSError on an artifact, or SQLite's
    "database or disk is full") or a store that cannot be written (a read-only file system or no
    permission: OSError on its lock file or artifacts, or SQLite's "attempt to write a readonly
    database"). The study's metrics and reports are written before the record, so they stand."""
    if is_disk_full(err, project_root(), None) or "disk is full" in str(err):
        return no_space(project_root() / "mlartifacts", None)
    if is_unwritable(err) or "readonly database" in str(err):
        where = getattr(err, "filename", None) or tracking_uri
        return ExpectedError(f"the MLflow store {tracking_uri} cannot be written ({where}: read-only or no permission); "
                             "make it writable, or point mlflow.tracking_uri at a writable store (e.g. "
                             "`dvc exp run -S mlflow.tracking_uri=sqlite:///$PWD/mlflow.db`), and run again: the "
                             "study's metrics and reports are written, only its MLflow record is missing")
    text = str(err)
    if "Max retries exceeded" in text or "Failed to establish a new connection" in text or "Connection refused" in text:
        return ExpectedError(f"the MLflow tracking server {tracking_uri} does not answer; start it (or fix "
                             "mlflow.tracking_uri / MLFLOW_TRACKING_URI) and run `dvc repro` again: the study's metrics "
                             "and reports are written, only its MLflow record is missing")
    if "file is not a database" in text or "database disk image is malformed" in text:
        return ExpectedError(f"the MLflow store {tracking_uri} is not a readable SQLite database; move it aside "
                             "(e.g. `mv mlflow.db mlflow.db.broken`) and run `dvc repro -f -s evaluate@<run>` to log "
                             "the record afresh: the study's metrics and reports are written")
    if "must be in the 'active' state" in str(err):  # a local store is locked; a tracking server is not
        return ExpectedError(f"this study's MLflow record in {tracking_uri} was replaced while this evaluate wrote it "
                             "(another workspace evaluating the same study at once?); run `dvc repro` again when "
                             "that one has finished: it replaces the incomplete runs")
    return None


def experiment_description(study: Study, run: str | None = None, params: Params | None = None) -> str:
    """The MLflow experiment's description: what the run compares, as it trained (its variants,
    protocol and training rows), and where the study's reference is (for a run declared under
    params.yaml's runs:, which run of which study)."""
    chosen = params.run.variants if params is not None and params.run.variants else study.variants
    variants = ", ".join(f"{v} ({study.variant_kind(v)})" for v in study.variants if v in chosen)
    protocol = "modern" if params is not None and params.run.protocol == "modern" else study.protocol
    rows = rows_phrase({"train_limit": params.run.train_limit, "train_sample": params.run.train_sample}
                       if params is not None else {})
    title = f"**{study.name}**" if run in (None, study.name) else f"**{run}** (a run of **{study.name}**, params.yaml `runs:`)"
    return (f"{title}: does one multitask network beat dedicated ones? Tasks: {', '.join(study.headline or study.tasks)}"
            f"{' (headline of ' + str(len(study.tasks)) + ')' if study.headline else ''}; architecture `{study.architecture}`; "
            f"protocol `{protocol}`; {rows}; variants: {variants}. Each parent run's description holds its mean +- SD "
            "table and its paired verdicts against dedicated; the reference results are SPEC.md section 6 "
            "(reference/ in the shared folder). Compare: select the parent runs (`mtlbench.role = parent`).")


def main(argv: list[str] | None = None) -> None:
    name = run_arg(argv, __doc__)
    study, params = known_run(load_params(), name)
    results_dir = Path("results") / name
    outcomes = evaluate_study(study, results_dir)
    context_path = results_dir / "context.json"
    context = read_json(context_path) if context_path.is_file() else {}
    warnings = data_warnings(context)
    for warning in warnings:
        print(f"warning: {name}: {warning}", file=sys.stderr)
    started = [t.started_at for o in outcomes for s in o.seeds for t in s.tasks if t.started_at]
    plan = plan_status(name, [s.seed for s in outcomes[0].seeds], params.analysis.margin,
                       min(started, default=None), project_root())
    affinity_path = Path("reports") / "affinity" / f"{name}.json"  # the affinity stage's; absent outside dvc
    affinity = read_json(affinity_path) if affinity_path.is_file() else None
    report_md, details = write_study_outputs(study, outcomes, Path("."), warnings, context, params.analysis, plan, name,
                                             affinity)
    figures = study_figures(details)

    from mtlbench.tracking import Tracker  # mlflow is slow to import; only this stage needs it

    stage = os.environ.get("DVC_STAGE", "outside dvc")  # DVC names the stage it runs, e.g. evaluate@<run>
    try:
        tracker = Tracker(params.mlflow.tracking_uri, params.mlflow.log_models, project_root(), stage)
        record = tracker.log_study(name, outcomes, report_md, study.headline, context=context,
                                   description=experiment_description(study, name, params), figures=figures,
                                   comparisons=details["comparisons"], affinity=details.get("affinity"))
    except Exception as err:
        fault = store_fault(err, params.mlflow.tracking_uri)
        if fault is None:
            raise
        raise fault from None
    write_json(Path("results") / "mlflow" / f"{name}.json",
               {"tracking_uri": params.mlflow.tracking_uri, "experiment": name, "runs": record})
    for o in outcomes:
        scores = ", ".join(f"{task} {primary_metric(s)} {s[primary_metric(s)]['mean']:.4f}"
                           for task, s in list(o.summary.items())[:10])
        print(f"{name} {o.variant}: mean test {scores} (MLflow run {record[o.variant]['parent']})", file=sys.stderr)


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1:]))
