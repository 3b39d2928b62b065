"""End to end: the whole cifar100_binary study (every variant, 2 seeds, 1 epoch) through the real
`dvc repro` on a small CIFAR-100 archive in the official format; metrics, report, plots and MLflow
hold every variant x task x seed, and a bad task-spec file stops the pipeline naming the fault."""

import json

import numpy as np
import pytest
import yaml
from dvcproject import make_project, repro_error, sh
from mtlbench.formats import write_cifar100
from mlflow.tracking import MlflowClient

from mtlbench.studies import STUDIES

STUDY = STUDIES["cifar100_binary"]
pytestmark = pytest.mark.integration


def _details(repo, study: str) -> dict:
    """The full evaluation record (reports/studies/<run>.json) as {variant: summary, "comparisons": ...}."""
    doc = json.loads((repo / "reports" / "studies" / f"{study}.json").read_text())
    return {**doc["variants"], "comparisons": doc["comparisons"]}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    def set_params(params):
        params["run"].update(studies=[STUDY.name], seeds=[0, 1], train_limit=120)
        params["hs"]["epochs"] = 1
        params["mlflow"]["log_models"] = False

    repo, env = make_project(tmp_path_factory.mktemp("c100"), set_params,
                             lambda mirror: write_cifar100(mirror / "cifar-100-python.tar.gz", n_train=150, n_test=60, seed=4))
    sh(["dvc", "repro"], repo, env)
    return repo, env


def test_metrics_hold_every_variant_task_and_seed_with_numpys_statistics(project):
    repo, _ = project
    doc = _details(repo, STUDY.name)
    assert set(doc) - {"comparisons"} == set(STUDY.variants)
    for variant in STUDY.variants:
        assert set(doc[variant]) == set(STUDY.tasks_of(variant)), variant
        for task, by_metric in doc[variant].items():
            acc = by_metric["accuracy"]
            values = np.array(acc["values"])
            assert acc["n"] == 2 and acc["mean"] == pytest.approx(values.mean())
            assert acc["sd"] == pytest.approx(values.std(ddof=1)) and acc["min"] == values.min()
    # the multitask variants are compared on the tasks that have dedicated runs (T1..T5)
    assert set(doc["comparisons"]["hps3"]) >= {"T1", "T2", "T3", "delta_m_accuracy_pct"}
    labels = np.load(repo / "data" / "tasks" / f"{STUDY.name}.npz")
    assert labels["y_train"].shape == (120 + 30, 140) and list(labels["names"][:2]) == ["T1", "T2"]


def test_report_and_plots_lay_out_the_study(project):
    repo, _ = project
    report = (repo / "reports" / f"{STUDY.name}.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| task |"))
    assert header.split(" | ")[1:] == [*STUDY.variants[:-1], STUDY.variants[-1] + " |"]
    for task in STUDY.headline:
        assert f"\n| {task} | " in report
    assert "| mean of random tasks (n) |" in report and " +- " in report
    curves = {p.name for p in (repo / "plots" / "curves" / STUDY.name).glob("*.csv")}
    for variant in STUDY.variants[1:]:  # the hps variants
        assert f"{variant}__mean_real__seed0.csv" in curves
        assert (f"{variant}__mean_random__seed1.csv" in curves) == variant.startswith("mix")
    weights = (repo / "plots" / "curves" / STUDY.name / "mix10_10_mean__T1__seed0.csv").read_text().splitlines()
    assert weights[0].endswith(",weight") and float(weights[1].split(",")[-1]) == pytest.approx(1 / 20)


def test_mlflow_holds_every_variant_task_and_seed(project):
    repo, _ = project
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(STUDY.name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = {r.data.tags["mtlbench.variant"]: r for r in runs if r.data.tags["mtlbench.role"] == "parent"}
    children = [r for r in runs if r.data.tags["mtlbench.role"] == "seed"]
    assert set(parents) == set(STUDY.variants) and len(children) == 2 * len(parents)
    doc = _details(repo, STUDY.name)
    for child in children:
        variant = child.data.tags["mtlbench.variant"]
        assert {f"{t}/accuracy" for t in STUDY.tasks_of(variant)} <= set(child.data.metrics)
    child = next(c for c in children if c.data.tags["mtlbench.variant"] == "hps3")
    assert child.data.metrics["T3/weight"] == 1.0  # the effective loss weight, per epoch
    mix = parents["mix90_10_mean"]
    for task in ("T1", "T90", "R10"):
        assert mix.data.metrics[f"{task}/accuracy_mean"] == pytest.approx(doc["mix90_10_mean"][task]["accuracy"]["mean"])
    artifacts = {a.path for a in client.list_artifacts(mix.info.run_id)}
    assert {"average_loss_curves.png", "seed_statistics.json"} <= artifacts


def test_a_bad_task_spec_stops_the_pipeline_naming_the_task(project):
    repo, env = project
    path = repo / "tasks" / f"{STUDY.name}.yaml"
    original = path.read_text()
    try:
        spec = yaml.safe_load(original)
        spec["tasks"]["T2"]["ones"].append("dragons")
        path.write_text(yaml.safe_dump(spec))
        assert "task T2: unknown superclass 'dragons'" in repro_error(repo, env)
    finally:
        path.write_text(original)
