"""The MLflow layout, on a real temporary SQLite store."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from mtlbench.evaluate import SeedOutcome, TaskOutcome, VariantOutcome, classification_metrics, summarize
from mtlbench.models import build_dedicated
from mtlbench.models.store import load_model, save_model
from mtlbench.tracking import Tracker, server_lock_name


def _outcome(seeds=(0, 1), folder=None) -> VariantOutcome:
    """A dedicated variant of one task "t"; with `folder`, its models are saved there as the train
    stage saves them (else no models)."""
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
        models = {}
        if folder is not None:
            models["model_t"] = folder / f"seed{seed}" / "model_t.pt"
            save_model(models["model_t"], build_dedicated("mlp", (1, 2, 2), 3, seed=seed),
                       {"architecture": "mlp", "in_shape": [1, 2, 2], "n_classes": 3})
        seed_outcomes.append(SeedOutcome(seed, [task], models, results_hash=f"hash{seed}", model_tasks={"model_t": ["t"]}))
        per_seed[seed] = metrics
    summary = summarize({"dedicated": {"t": per_seed}})["dedicated"]
    return VariantOutcome("dedicated", {"study": "s", "lr": 0.001}, seed_outcomes, summary, "dedicated")


@pytest.fixture
def tracking_uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_parent_per_variant_child_per_seed_with_records(tracking_uri, tmp_path):
    tracker = Tracker(tracking_uri, log_models=True, root=tmp_path, stage="evaluate@s")
    record = tracker.log_study("study_x", [_outcome(folder=tmp_path)], "# report", description="about study_x")
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("study_x")
    assert experiment.artifact_location.startswith((tmp_path / "mlartifacts").as_uri())
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.tags["mlflow.note.content"] == "about study_x"
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.info.run_id == record["dedicated"]["parent"])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and sorted(r.data.tags["mtlbench.seed"] for r in children) == ["0", "1"]
    assert sorted(record["dedicated"]["seeds"]) == ["0", "1"]
    assert "t/accuracy_sd" in parent.data.metrics and "t/accuracy_ci95_low" in parent.data.metrics
    assert not [k for k in parent.data.metrics if k.endswith(("_n", "_min", "_max")) or "epochs" in k]
    assert parent.data.tags["mlflow.runName"].startswith("dedicated @ ") and "+- " in parent.data.tags["mlflow.note.content"]
    assert parent.data.tags["dvc_stage"] == "evaluate@s" and "git_commit" in parent.data.tags
    # the runs table's "Created by" and "Source" columns
    assert parent.data.tags["mlflow.source.name"] == "dvc stage evaluate@s" and parent.data.tags["mlflow.user"]
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

    Tracker(tracking_uri, log_models=True, root=tmp_path, stage="evaluate@s").log_study(
        "study_m", [_outcome((0,), folder=tmp_path)], "")
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("study_m")
    child = next(r for r in client.search_runs([experiment.experiment_id]) if "mtlbench.seed" in r.data.tags)
    logged = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id], output_format="list")
    assert [m.name for m in logged] == ["model_t"] and logged[0].source_run_id == child.info.run_id
    assert mlflow.models.get_model_info(f"models:/{logged[0].model_id}").signature is not None
    x = torch.rand(4, 1, 2, 2)
    expected = build_dedicated("mlp", (1, 2, 2), 3, seed=0).eval()(x).detach().numpy()
    served = mlflow.pyfunc.load_model(f"models:/{logged[0].model_id}")
    assert np.allclose(served.predict(x.reshape(4, 4).numpy()), expected, atol=1e-6)


def test_rsn2_model_takes_every_tasks_input_through_pyfunc(tracking_uri, tmp_path):
    import mlflow

    from mtlbench.models.rsn2 import RSN2Net, init_rsn2

    outcome = _outcome((0,))
    net = init_rsn2(RSN2Net("mlp", ((1, 2, 2),) * 2, (3, 3)), seed=0).eval()
    save_model(tmp_path / "model_rsn2.pt", net)
    outcome.seeds[0].models = {"model_rsn2": tmp_path / "model_rsn2.pt"}
    Tracker(tracking_uri, log_models=True, root=tmp_path, stage="e").log_study("study_r", [outcome], "")
    mlflow.set_tracking_uri(tracking_uri)
    experiment = MlflowClient(tracking_uri).get_experiment_by_name("study_r")
    (logged,) = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id], output_format="list")
    a, b = torch.rand(2, 1, 2, 2), torch.rand(2, 1, 2, 2)
    served = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
    got = served.predict(torch.cat([a.reshape(2, 4), b.reshape(2, 4)], dim=1).numpy())
    saved = load_model(tmp_path / "model_rsn2.pt")  # (unmasked, so packing changes it; trained ones round-trip)
    want = torch.cat(saved(a, b), dim=1).detach().numpy()
    assert got.shape == (2, 6) and np.allclose(got, want, atol=1e-6)


def _two_task_seed(folder, joint: bool) -> SeedOutcome:
    """Seed 0 of tasks a and b: two dedicated models, or (joint) one multitask model serving both,
    whose fit records are the joint fit's in both tasks."""
    rng = np.random.default_rng(1)
    tasks = []
    for name in ("a", "b"):
        y_true, y_pred = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
        fit = {"epochs": 3, "params_total": 10, "params_nonzero": 9}
        fit.update({"joint_best_val_loss": 0.7, "joint_wall_time_s": 2.0} if joint else
                   {"best_val_loss": 0.5 if name == "a" else 0.6, "wall_time_s": 1.0})
        tasks.append(TaskOutcome(name, {**classification_metrics(y_true, y_pred, 3), **fit}, [], np.eye(3, dtype=int),
                                 ["x", "y", "z"], "report", {"accuracy": 0.5}, y_true, y_pred))
    names = {"model_ab": ["a", "b"]} if joint else {"model_a": ["a"], "model_b": ["b"]}
    models = {}
    for name in names:
        models[name] = folder / f"{name}.pt"
        save_model(models[name], build_dedicated("mlp", (1, 2, 2), 3, seed=0), {"architecture": "mlp", "in_shape": [1, 2, 2], "n_classes": 3})
    return SeedOutcome(0, tasks, models, results_hash=f"h{joint}", model_tasks=names)


def test_a_joint_fit_record_is_logged_once_and_each_model_links_only_its_tasks_metrics(tracking_uri, tmp_path):
    import mlflow

    from mtlbench.tracking import metric_models, seed_metrics

    joint = _two_task_seed(tmp_path, joint=True)
    keys = seed_metrics(joint)
    assert keys["joint/best_val_loss"] == 0.7 and not [k for k in keys if "joint_" in k]
    assert set(metric_models(joint, {"model_ab": "m1"}).values()) == {"m1"}
    assert set(metric_models(joint, {"model_ab": "m1"})) == set(keys)  # the one model answers every task
    separate = _two_task_seed(tmp_path, joint=False)
    owners = metric_models(separate, {"model_a": "ma", "model_b": "mb"})
    assert {k for k, m in owners.items() if m == "ma"} == {k for k in seed_metrics(separate) if k.startswith("a/")}

    per_seed = {0: separate.tasks[0].metrics}
    outcome = VariantOutcome("dedicated", {"study": "s"}, [separate],
                             summarize({"dedicated": {"a": per_seed, "b": {0: separate.tasks[1].metrics}}})["dedicated"],
                             "dedicated")
    Tracker(tracking_uri, log_models=True, root=tmp_path, stage="e").log_study("study_links", [outcome], "")
    mlflow.set_tracking_uri(tracking_uri)
    experiment = MlflowClient(tracking_uri).get_experiment_by_name("study_links")
    logged = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id], output_format="list")
    linked = {m.name: {metric.key for metric in m.metrics} for m in logged}
    assert linked["model_a"] and all(k.startswith("a/") for k in linked["model_a"]), linked
    assert linked["model_b"] and all(k.startswith("b/") for k in linked["model_b"]), linked


def test_re_evaluating_unchanged_results_adds_no_run_and_no_artifact(tracking_uri, tmp_path):
    client = MlflowClient(tracking_uri)
    first = Tracker(tracking_uri, log_models=True, root=tmp_path, stage="e").log_study("study_i", [_outcome(folder=tmp_path)], "r")
    artifacts = tmp_path / "mlartifacts"
    size = sum(p.stat().st_size for p in artifacts.rglob("*") if p.is_file())
    second = Tracker(tracking_uri, log_models=True, root=tmp_path, stage="e").log_study("study_i", [_outcome(folder=tmp_path)], "r")
    assert second == first
    experiment = client.get_experiment_by_name("study_i")
    assert len(client.search_runs([experiment.experiment_id])) == 3
    assert sum(p.stat().st_size for p in artifacts.rglob("*") if p.is_file()) == size
    # a changed report (other evaluate code) replaces the parent; the unchanged seed runs move under it
    third = Tracker(tracking_uri, log_models=True, root=tmp_path, stage="e").log_study("study_i", [_outcome(folder=tmp_path)], "r2")
    assert third["dedicated"]["parent"] != first["dedicated"]["parent"] and third["dedicated"]["seeds"] == first["dedicated"]["seeds"]
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3 and all(r.data.tags["mtlbench.complete"] == "true" for r in runs)
    assert {r.data.tags.get("mlflow.parentRunId") for r in runs if "mtlbench.seed" in r.data.tags} == {third["dedicated"]["parent"]}


def test_an_incomplete_record_is_replaced(tracking_uri, tmp_path):
    client = MlflowClient(tracking_uri)
    tracker = Tracker(tracking_uri, log_models=False, root=tmp_path, stage="e")
    experiment_id = tracker.experiment_id("study_k")
    broken = client.create_run(experiment_id, tags={"mtlbench.study": "study_k", "mtlbench.variant": "dedicated",
                                                     "mtlbench.role": "seed", "mtlbench.seed": "0",
                                                     "mtlbench.results_hash": "other"}).info.run_id  # killed mid-logging
    record = tracker.log_study("study_k", [_outcome()], "")
    runs = client.search_runs([experiment_id])
    assert broken not in {r.info.run_id for r in runs} and len(runs) == 3
    assert record["dedicated"]["seeds"]["0"] in {r.info.run_id for r in runs}


def test_concurrent_first_use_of_a_fresh_store(tmp_path):
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = ("import sys; from pathlib import Path; from mtlbench.tracking import Tracker; "
            "Tracker(sys.argv[1], False, Path('.'), 'e').experiment_id('s' + sys.argv[2])")
    procs = [subprocess.Popen([sys.executable, "-c", code, uri, str(i)], stderr=subprocess.PIPE, text=True) for i in range(3)]
    errors = [p.communicate()[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert {e.name for e in MlflowClient(uri).search_experiments()} >= {"s0", "s1", "s2"}


def test_two_workspaces_evaluating_one_study_at_once_leave_one_complete_record(tmp_path):
    """Without the store lock around the record, one process deleted the other's half-written runs
    and crashed ("must be in the 'active' state") in 3 of 4 tries here."""
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    code = ("import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from test_tracking import _outcome; "
            "from mtlbench.tracking import Tracker; "
            "Tracker(sys.argv[1], False, Path(sys.argv[2]), 'e').log_study('s', [_outcome(seeds=tuple(range(8)))], '')")
    procs = [subprocess.Popen([sys.executable, "-c", code, uri, str(tmp_path / f"workspace{i}")], stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    errors = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("s").experiment_id])
    assert sorted(r.data.tags.get("mtlbench.seed", "parent") for r in runs) == [str(s) for s in range(8)] + ["parent"]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_mlflow_run_launcher_is_tagged_not_hijacked(tracking_uri, tmp_path, monkeypatch):
    client = MlflowClient(tracking_uri)
    launcher_exp = client.create_experiment("launcher")
    launcher = client.create_run(launcher_exp).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", launcher)
    record = Tracker(tracking_uri, log_models=False, root=tmp_path, stage="e").log_study("study_l", [_outcome()], "")
    assert record["dedicated"]["parent"] != launcher
    experiment = client.get_experiment_by_name("study_l")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3 and all(r.data.tags["mtlbench.launcher_run_id"] == launcher for r in runs)
    assert client.get_run(launcher).data.metrics == {}  # nothing was written into the launcher's run
    link = client.get_run(launcher).data.tags["mtlbench.produced.study_l.dedicated"]  # but it links to its runs
    assert link == f"experiment {experiment.experiment_id}, parent run {record['dedicated']['parent']}"


@contextlib.contextmanager
def mlflow_server(tmp_path):
    """A real `mlflow server` on 127.0.0.1 over a fresh SQLite store; yields its URI."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{uri}/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("mlflow server did not start")
        yield uri
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_records_through_a_real_mlflow_server(tmp_path):
    """The same one-record-per-run behaviour against `mlflow server` over its REST API."""
    with mlflow_server(tmp_path) as uri:
        first = Tracker(uri, log_models=False, root=tmp_path, stage="e").log_study("study_s", [_outcome()], "r")
        again = Tracker(uri, log_models=False, root=tmp_path, stage="e").log_study("study_s", [_outcome()], "r")
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("study_s")
        runs = client.search_runs([experiment.experiment_id])
        assert again == first and len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
        assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
        assert client.search_registered_models() == []  # the record's lock is gone once it is written


def test_two_workspaces_through_one_mlflow_server_take_turns(tmp_path):
    """Two evaluates of one study through one server: the second waits for the first's lock, then
    reuses its complete record. Without the lock one crashed ("must be in the 'active' state")."""
    with mlflow_server(tmp_path) as uri:
        code = ("import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from test_tracking import _outcome; "
                "from mtlbench.tracking import Tracker; import json; "
                "print(json.dumps(Tracker(sys.argv[1], False, Path(sys.argv[2]), 'e')"
                ".log_study('s', [_outcome(seeds=tuple(range(6)))], '')))")
        procs = [subprocess.Popen([sys.executable, "-c", code, uri, str(tmp_path / f"workspace{i}")],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
        outputs = [p.communicate() for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
        records = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
        assert records[0] == records[1]  # the second reused the first's record
        assert any("is writing this record; waiting for it" in err for _, err in outputs)
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("s").experiment_id])
        assert sorted(r.data.tags.get("mtlbench.seed", "parent") for r in runs) == [str(s) for s in range(6)] + ["parent"]
        assert all(r.info.status == "FINISHED" for r in runs)
        assert client.search_registered_models() == []


def test_a_server_lock_left_by_a_killed_evaluate_is_broken(tmp_path, capsys):
    with mlflow_server(tmp_path) as uri:
        client = MlflowClient(uri)
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        client.create_registered_model(server_lock_name("study_k"), tags={
            "mtlbench.host": os.uname().nodename, "mtlbench.pid": dead.stdout.strip(), "mtlbench.since": str(time.time())})
        Tracker(uri, log_models=False, root=tmp_path, stage="e").log_study("study_k", [_outcome()], "r")
        assert "breaking the record's lock left by a stopped evaluate" in capsys.readouterr().err
        assert client.search_registered_models() == []


def test_runs_or_the_experiment_deleted_in_the_ui_are_logged_again(tracking_uri, tmp_path, capsys):
    Tracker(tracking_uri, log_models=False, root=tmp_path, stage="e").log_study("study_d", [_outcome()], "r")
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("study_d")
    for run in client.search_runs([experiment.experiment_id]):
        client.delete_run(run.info.run_id)
    Tracker(tracking_uri, log_models=False, root=tmp_path, stage="e").log_study("study_d", [_outcome()], "r")
    assert len(client.search_runs([experiment.experiment_id])) == 3  # a parent and two seeds, again
    client.delete_experiment(experiment.experiment_id)
    Tracker(tracking_uri, log_models=False, root=tmp_path, stage="e").log_study("study_d", [_outcome()], "r")
    assert client.get_experiment(experiment.experiment_id).lifecycle_stage == "deleted"  # what the user deleted stays so
    assert "was deleted; it stays deleted as 'study_d (deleted " in capsys.readouterr().err
    fresh = client.get_experiment_by_name("study_d")
    assert fresh.lifecycle_stage == "active" and fresh.experiment_id != experiment.experiment_id
    runs = client.search_runs([fresh.experiment_id])
    assert len(runs) == 3 and all(r.data.tags["mtlbench.complete"] == "true" for r in runs)


def test_one_seed_run_deleted_in_the_ui_is_logged_again_not_an_index_error(tracking_uri, tmp_path, capsys):
    first = Tracker(tracking_uri, log_models=False, root=tmp_path, stage="e").log_study("study_s", [_outcome()], "r")
    client = MlflowClient(tracking_uri)
    client.delete_run(first["dedicated"]["seeds"]["1"])
    again = Tracker(tracking_uri, log_models=False, root=tmp_path, stage="e").log_study("study_s", [_outcome()], "r")
    assert "1 of 2 seed runs of its record" in capsys.readouterr().err
    assert again["dedicated"]["seeds"]["0"] == first["dedicated"]["seeds"]["0"]  # the intact seed run is reused
    runs = client.search_runs([client.get_experiment_by_name("study_s").experiment_id])
    assert len(runs) == 3 and all(r.data.tags["mtlbench.complete"] == "true" for r in runs)
    assert {r.data.tags.get("mlflow.parentRunId") for r in runs if "mtlbench.seed" in r.data.tags} == {again["dedicated"]["parent"]}


def test_results_switched_back_and_forth_evaluate_every_time(tracking_uri, tmp_path):
    """Results A (seeds 0, 1), then B (seeds 0-2: seeds 0 and 1 unchanged, so their runs move under
    B's parent), then A again, as `dvc checkout` or `dvc exp apply` do: each gives a whole record."""
    client = MlflowClient(tracking_uri)
    log = lambda seeds: Tracker(tracking_uri, log_models=False, root=tmp_path, stage="e").log_study(  # noqa: E731
        "study_ab", [_outcome(seeds)], "r")
    a = log((0, 1))
    b = log((0, 1, 2))
    a_again = log((0, 1))
    assert set(a_again["dedicated"]["seeds"]) == {"0", "1"} and set(b["dedicated"]["seeds"]) == {"0", "1", "2"}
    experiment_id = client.get_experiment_by_name("study_ab").experiment_id

    def children(record):
        runs = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{record['dedicated']['parent']}'")
        return {r.data.tags["mtlbench.seed"] for r in runs}

    assert children(a_again) == {"0", "1"}
    b_again = log((0, 1, 2))  # and B once more
    assert children(b_again) == {"0", "1", "2"}
    assert a["dedicated"]["seeds"]["0"] == a_again["dedicated"]["seeds"]["0"]  # one run per seed record throughout


def test_a_param_the_settings_hold_is_logged_once_under_the_settings_name():
    from mtlbench.tracking import without_repeats

    own = {"study": "s", "lr": 0.001, "max_epochs": 30, "device": "cpu"}
    settings = {"protocol.lr": 0.001, "protocol.max_epochs": 30, "run.max_epochs": None}
    assert without_repeats(own, settings) == {"study": "s", "device": "cpu"}  # no run.device setting: kept


def test_the_parents_answer_is_one_short_named_chart_group():
    from mtlbench.tracking import _comparison_metrics

    entry = {"digits": {"paired": {"mean": -0.03, "ci95": [-0.16, 0.1], "p_holm": 0.7}},
             "delta_m": {"mean": -1.57, "ci95": [-8.2, 5.1]}, "delta_m_pct": -1.57}
    metrics = _comparison_metrics(entry)
    assert metrics == {"answer/digits_gain": -0.03, "answer/digits_gain_lo": -0.16, "answer/digits_gain_hi": 0.1,
                       "answer/digits_gain_p": 0.7, "answer/delta_m": -1.57, "answer/delta_m_lo": -8.2,
                       "answer/delta_m_hi": 5.1}
    assert max(len(k.split("/", 1)[1]) for k in metrics) <= 16  # short chart titles (seen cut: "digits/accu...")
    # with test items counted, the interval is that one, and the equivalence p is charted too
    entry["digits"]["paired"].update(crossed={"ci95": [-0.2, 0.14]}, p_tost_holm=0.3)
    metrics = _comparison_metrics(entry)
    assert (metrics["answer/digits_gain_lo"], metrics["answer/digits_gain_hi"]) == (-0.2, 0.14)
    assert metrics["answer/digits_gain_p_equiv"] == 0.3
    assert max(len(k.split("/", 1)[1]) for k in metrics) <= 19


def test_a_declared_runs_experiment_says_how_that_run_trained(tmp_path):
    """The MLflow experiment of a declared run describes the run (its protocol, rows, variants),
    not the catalogue study's defaults."""
    from mtlbench.config import parse_params
    from mtlbench.stages.evaluate import experiment_description
    from mtlbench.studies import STUDIES

    raw = {"run": {"studies": ["small"]}, "runs": {"small": {"study": "mnist_fashion_hps", "protocol": "modern",
                                                             "train_limit": 500, "variants": ["dedicated", "hps_sum"]}}}
    text = experiment_description(STUDIES["mnist_fashion_hps"], "small", parse_params(raw, {}, tmp_path).for_run("small"))
    assert "**small** (a run of **mnist_fashion_hps**" in text and "protocol `modern`" in text
    assert "500 training rows per task, drawn per seed; variants: dedicated (dedicated), hps_sum (hps)." in text


def test_the_run_affinity_is_logged_on_every_parent(tracking_uri, tmp_path):
    affinity = {"measured": True, "summary": {"cosine": 0.1, "lookahead": 2.0},
                "seeds": {"0": {"cosine": {"digits|fashion": 0.05}, "lookahead": {"digits->fashion": 1.0, "fashion->digits": 2.0}},
                          "1": {"cosine": {"digits|fashion": 0.15}, "lookahead": {"digits->fashion": 3.0, "fashion->digits": 2.0}}}}
    record = Tracker(tracking_uri, log_models=False, root=tmp_path, stage="e").log_study(
        "study_a", [_outcome()], "r", affinity=affinity)
    metrics = MlflowClient(tracking_uri).get_run(record["dedicated"]["parent"]).data.metrics
    assert metrics["affinity/cosine"] == 0.1 and metrics["affinity/lookahead"] == 2.0
    assert metrics["affinity/cosine_digits_fashion"] == pytest.approx(0.10)
    assert metrics["affinity/lookahead_digits_to_fashion"] == pytest.approx(2.0)
    unmeasured = Tracker(tracking_uri, log_models=False, root=tmp_path, stage="e").log_study(
        "study_b", [_outcome()], "r", affinity={"measured": False, "why": "one task"})
    assert not any(k.startswith("affinity/") for k in
                   MlflowClient(tracking_uri).get_run(unmeasured["dedicated"]["parent"]).data.metrics)
