"""The MLflow layout, on a real temporary SQLite store."""

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from mtlbench.evaluate import SeedOutcome, TaskOutcome, VariantOutcome, classification_metrics, summarize
from mtlbench.models import build_dedicated
from mtlbench.tracking import Tracker


def _outcome(seeds=(0, 1)) -> VariantOutcome:
    rng = np.random.default_rng(0)
    seed_outcomes, per_seed = [], {}
    for seed in seeds:
        y_true, y_pred = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
        metrics = {**classification_metrics(y_true, y_pred, 3), "epochs": 2, "best_val_loss": 0.5,
                   "wall_time_s": 1.0, "params_total": 10, "params_nonzero": 9}
        history = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.1 / e, "t_loss": 1.0 / e, "t_accuracy": 0.5,
                    "val_t_loss": 1.1 / e, "val_t_accuracy": 0.4 + 0.1 * e} for e in (1, 2)]
        task = TaskOutcome("t", metrics, history, np.eye(3, dtype=int), ["a", "b", "c"], "report text",
                           {"accuracy": 0.5}, y_true, y_pred)
        model = build_dedicated("mlp", (1, 2, 2), 3, seed=seed)
        seed_outcomes.append(SeedOutcome(seed, [task], {"model_t": lambda m=model: m}))
        per_seed[seed] = metrics
    summary = summarize({"dedicated": {"t": per_seed}})["dedicated"]
    return VariantOutcome("dedicated", {"study": "s", "lr": 0.001}, seed_outcomes, summary)


@pytest.fixture
def tracking_uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_parent_per_variant_child_per_seed_with_records(tracking_uri, tmp_path):
    tracker = Tracker(tracking_uri, log_models=True, root=tmp_path, stage="evaluate@s")
    parents = tracker.log_study("study_x", [_outcome()], "# report")
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("study_x")
    assert experiment.artifact_location.startswith((tmp_path / "mlartifacts").as_uri())
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.info.run_id == parents["dedicated"])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and sorted(r.data.tags["mtlbench.seed"] for r in children) == ["0", "1"]
    assert parent.data.metrics["t/accuracy_n"] == 2 and "t/accuracy_sd" in parent.data.metrics
    assert parent.data.tags["dvc_stage"] == "evaluate@s" and "git_commit" in parent.data.tags
    child = children[0]
    assert {"t/accuracy", "t/macro_f1", "t/val_loss", "t/wall_time_s"} <= set(child.data.metrics)
    assert child.data.params["lr"] == "0.001" and child.data.params["seed"] in ("0", "1")
    curve = client.get_metric_history(child.info.run_id, "t/val_accuracy")
    assert [(m.step, round(m.value, 6)) for m in curve] == [(1, 0.5), (2, 0.6)]
    artifacts = {a.path for a in client.list_artifacts(child.info.run_id, "t")}
    assert {"t/confusion_matrix.png", "t/confusion_matrix.json", "t/classification_report.txt",
            "t/classification_report.json"} <= artifacts
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"seed_statistics.json", "report.md"}


def test_logged_model_loads_and_predicts_the_same(tracking_uri, tmp_path):
    import mlflow

    Tracker(tracking_uri, log_models=True, root=tmp_path, stage="evaluate@s").log_study("study_m", [_outcome((0,))], "")
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("study_m")
    child = next(r for r in client.search_runs([experiment.experiment_id]) if "mtlbench.seed" in r.data.tags)
    logged = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id], output_format="list")
    assert [m.name for m in logged] == ["model_t"] and logged[0].source_run_id == child.info.run_id
    loaded = mlflow.pytorch.load_model(f"models:/{logged[0].model_id}")
    x = torch.rand(4, 1, 2, 2)
    assert torch.equal(loaded(x), build_dedicated("mlp", (1, 2, 2), 3, seed=0)(x))


def test_rsn2_model_logs_with_its_code_and_loads(tracking_uri, tmp_path):
    import mlflow

    from mtlbench.models.rsn2 import RSN2Net, init_rsn2

    outcome = _outcome((0,))
    net = init_rsn2(RSN2Net("mlp", ((1, 2, 2),) * 2, (3, 3)), seed=0).eval()
    outcome.seeds[0].models = {"model_rsn2": lambda: net}
    Tracker(tracking_uri, log_models=True, root=tmp_path, stage="e").log_study("study_r", [outcome], "")
    mlflow.set_tracking_uri(tracking_uri)
    experiment = MlflowClient(tracking_uri).get_experiment_by_name("study_r")
    (logged,) = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id], output_format="list")
    loaded = mlflow.pytorch.load_model(f"models:/{logged.model_id}")
    x = torch.rand(2, 1, 2, 2)
    assert all(torch.equal(a, b) for a, b in zip(loaded(x, x), net(x, x)))


def test_mlflow_run_launcher_is_tagged_not_hijacked(tracking_uri, tmp_path, monkeypatch):
    client = MlflowClient(tracking_uri)
    launcher_exp = client.create_experiment("launcher")
    launcher = client.create_run(launcher_exp).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", launcher)
    parents = Tracker(tracking_uri, log_models=False, root=tmp_path, stage="e").log_study("study_l", [_outcome()], "")
    assert parents["dedicated"] != launcher
    experiment = client.get_experiment_by_name("study_l")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3 and all(r.data.tags["mtlbench.launcher_run_id"] == launcher for r in runs)
    assert client.get_run(launcher).data.metrics == {}  # nothing was written into the launcher's run
