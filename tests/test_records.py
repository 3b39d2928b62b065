"""make records: the committed evaluations' MLflow runs checked against a real (SQLite) store; a record
whose runs were deleted in the UI, or whose store is gone, is removed so that DVC reruns its evaluate."""

import json

from mlflow import MlflowClient

from mtlbench.records import invalidate_lost_records, main


def _logged(tmp_path, uri: str, name: str) -> dict:
    """A record as evaluate writes it (results/mlflow/<run>.json), of runs really logged to `uri`."""
    client = MlflowClient(uri)
    experiment = client.create_experiment(name)
    run = lambda: client.create_run(experiment).info.run_id  # noqa: E731
    record = {"experiment": name, "runs": {"dedicated": {"parent": run(), "seeds": {"0": run(), "1": run()}},
                                           "hps_sum": {"parent": run(), "seeds": {"0": run(), "1": run()}}}}
    path = tmp_path / "results" / "mlflow" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return record


def test_a_record_with_a_run_deleted_in_the_ui_is_invalidated_and_said(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    kept, hit = _logged(tmp_path, uri, "a"), _logged(tmp_path, uri, "b")
    assert invalidate_lost_records(tmp_path, uri) == []
    MlflowClient(uri).delete_run(hit["runs"]["hps_sum"]["seeds"]["1"])  # what the UI's delete does
    assert invalidate_lost_records(tmp_path, uri, remove=False) == ["b"]
    assert (tmp_path / "results" / "mlflow" / "b.json").is_file()  # --check only says
    assert invalidate_lost_records(tmp_path, uri) == ["b"]
    assert "b: 1 of its 6 MLflow runs are not in" in capsys.readouterr().err
    assert not (tmp_path / "results" / "mlflow" / "b.json").exists()
    assert (tmp_path / "results" / "mlflow" / "a.json").is_file() and kept["experiment"] == "a"


def test_a_removed_store_loses_every_record(tmp_path, capsys, monkeypatch):
    _logged(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}", "a")
    (tmp_path / "params.yaml").write_text("mlflow:\n  tracking_uri: sqlite:///" + str(tmp_path / "fresh.db") + "\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["--check"]) == 0 and "a: 6 of its 6 MLflow runs are not in" in capsys.readouterr().err
    assert main(["--bogus"]) == 2
