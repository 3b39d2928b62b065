"""End to end: the whole cifar10_aux study (dedicated cifar_small per task and one HPS variant per
loss scheme, 2 seeds, 3 epochs) through the real `dvc repro` on a small CIFAR-10 archive in the
official format; metrics, report, weight plots and MLflow hold what SPEC.md asks of every run."""

import csv
import json

import numpy as np
import pytest
from dvcproject import make_project, sh
from mtlbench.formats import write_cifar10
from mlflow.tracking import MlflowClient

from mtlbench.studies import STUDIES

STUDY = STUDIES["cifar10_aux"]
EPOCHS = 3
pytestmark = pytest.mark.integration


def _details(repo, study: str) -> dict:
    """The full evaluation record (reports/studies/<run>.json) as {variant: summary, "comparisons": ...}."""
    doc = json.loads((repo / "reports" / "studies" / f"{study}.json").read_text())
    return {**doc["variants"], "comparisons": doc["comparisons"]}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    def set_params(params):
        params["run"].update(studies=[STUDY.name], seeds=[0, 1])
        params["hs"]["epochs"] = EPOCHS
        params["mlflow"]["log_models"] = False

    repo, env = make_project(tmp_path_factory.mktemp("c10aux"), set_params,
                             lambda mirror: write_cifar10(mirror / "cifar-10-python.tar.gz", per_batch=30, n_test=40, seed=5))
    sh(["dvc", "repro"], repo, env)
    return repo, env


def _weights(repo, variant: str, task: str) -> list[float]:
    path = repo / "plots" / "curves" / STUDY.name / f"{variant}__{task}__seed0.csv"
    with path.open() as handle:
        return [float(row["weight"]) for row in csv.DictReader(handle)]


def test_metrics_hold_classification_and_reconstruction_statistics(project):
    repo, _ = project
    doc = _details(repo, STUDY.name)
    assert set(doc) == {*STUDY.variants, "comparisons"}
    for variant in STUDY.variants:
        assert set(doc[variant]) == set(STUDY.tasks), variant
        recon = doc[variant]["reconstruction"]
        assert {"mse", "psnr"} <= set(recon) and "accuracy" not in recon
        assert recon["mse"]["n"] == 2 and 0 < recon["mse"]["mean"] < 1
        values = np.array(recon["psnr"]["values"])
        assert recon["psnr"]["sd"] == pytest.approx(values.std(ddof=1))
        for task in ("cifar10", "animal", "random"):
            assert 0 <= doc[variant][task]["accuracy"]["mean"] <= 1 and "mse" not in doc[variant][task]
    for variant in STUDY.variants[1:]:
        entry = doc["comparisons"][variant]
        assert {"cifar10", "animal", "reconstruction", "random", "delta_m_pct", "delta_m_mse_pct"} <= set(entry)
        assert entry["reconstruction"]["mse_diff"] == pytest.approx(
            doc[variant]["reconstruction"]["mse"]["mean"] - doc["dedicated"]["reconstruction"]["mse"]["mean"])


def test_effective_weights_per_epoch_follow_each_scheme(project):
    repo, _ = project
    assert [_weights(repo, "hps_fixed", t)[0] for t in STUDY.tasks] == pytest.approx([0.5, 0.1, 1.0, 0.1])
    assert _weights(repo, "hps_mean", "animal") == [0.25] * EPOCHS
    dwa = [_weights(repo, "hps_dwa", t) for t in STUDY.tasks]
    assert all(w[:2] == [1.0, 1.0] for w in dwa)  # DWA: ones for the first two epochs...
    assert sum(w[2] for w in dwa) == pytest.approx(len(STUDY.tasks)) and len({w[2] for w in dwa}) > 1  # ...then sum K
    assert all(w != [0.5] * EPOCHS for w in (_weights(repo, "hps_uncertainty", t) for t in STUDY.tasks))
    dedicated = (repo / "plots" / "curves" / STUDY.name / "dedicated__cifar10__seed0.csv").read_text()
    assert "weight" not in dedicated.splitlines()[0]


def test_report_and_plots(project):
    repo, _ = project
    report = (repo / "reports" / f"{STUDY.name}.md").read_text()
    assert "| reconstruction (mse) | " in report and "| task | dedicated | hps_fixed |" in report
    assert "MSE " in report and " dB" in report and "| delta-m mse |" in report
    confusion = {p.name for p in (repo / "plots" / "confusion" / STUDY.name).iterdir()}
    assert "hps_sum__cifar10__seed0.json" in confusion and not any("reconstruction" in n for n in confusion)
    curve = (repo / "plots" / "curves" / STUDY.name / "hps_dwa__reconstruction__seed1.csv").read_text().splitlines()
    assert curve[0] == "epoch,train_loss,val_loss,weight" and len(curve) == EPOCHS + 1  # (DWA: a weight per epoch)


def test_mlflow_holds_reconstruction_images_and_weights(project):
    repo, _ = project
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(STUDY.name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    children = [r for r in runs if r.data.tags["mtlbench.role"] == "seed"]
    assert len(children) == 2 * len(STUDY.variants)
    child = next(c for c in children if c.data.tags["mtlbench.variant"] == "hps_uncertainty")
    assert {"reconstruction/mse", "reconstruction/psnr", "cifar10/accuracy", "random/macro_f1"} <= set(child.data.metrics)
    history = client.get_metric_history(child.info.run_id, "reconstruction/weight")
    assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
    artifacts = {a.path for a in client.list_artifacts(child.info.run_id, "reconstruction")}
    assert "reconstruction/reconstructions.png" in artifacts
    reports = json.loads((repo / "mlartifacts").joinpath(*_artifact_parts(child, "classification_reports.json")).read_text())
    assert set(reports) == {"cifar10", "animal", "random"}


def _artifact_parts(run, name: str) -> list[str]:
    """Where a run's artifact lies under the store's mlartifacts folder."""
    uri = run.info.artifact_uri
    tail = uri.split("mlartifacts/", 1)[1]
    return [*tail.split("/"), name]
