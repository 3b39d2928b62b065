"""End to end: the real `dvc repro` in a temporary git repository, on a tiny mirror in the
official IDX format, twice from scratch; identical metrics; a clean `dvc status`; real MLflow."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from dvcproject import make_project, repro_error
from dvcproject import sh as _sh
from mtlbench.formats import write_cifar10, write_idx_dataset
from mlflow.tracking import MlflowClient

from mtlbench.studies import STUDIES as CATALOGUE

STUDIES = ["mnist_fashion_mlp", "mnist_fashion_cnn", "cifar_mnist_fashion_cnn"]
pytestmark = pytest.mark.integration


def _details(repo, study: str) -> dict:
    """The full evaluation record (reports/studies/<run>.json) as {variant: summary, "comparisons": ...}."""
    doc = json.loads((repo / "reports" / "studies" / f"{study}.json").read_text())
    return {**doc["variants"], "comparisons": doc["comparisons"]}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    def set_params(params):
        params["run"].update(studies=STUDIES, seeds=[0, 1], train_limit=100, max_epochs=2)

    def write_mirror(mirror):
        write_idx_dataset(mirror / "mnist", n_train=150, n_test=60, seed=1)
        write_idx_dataset(mirror / "fashion-mnist", n_train=150, n_test=60, seed=2)
        write_cifar10(mirror / "cifar-10-python.tar.gz", per_batch=30, n_test=40, seed=3)

    return make_project(tmp_path_factory.mktemp("e2e"), set_params, write_mirror)


def _metrics(repo: Path) -> dict[str, bytes]:
    return {s: (repo / "metrics" / f"{s}.json").read_bytes() for s in STUDIES}


def test_repro_twice_from_scratch_gives_identical_metrics_and_clean_status(project):
    repo, env = project
    _sh(["dvc", "repro"], repo, env)
    first = _metrics(repo)
    for study in STUDIES:
        doc = _details(repo, study)
        tasks = CATALOGUE[study].tasks
        for variant in ("dedicated", "rsn2"):
            for task in tasks:
                acc = doc[variant][task]["accuracy"]
                assert acc["n"] == 2 and len(acc["values"]) == 2 and 0.0 <= acc["mean"] <= 1.0
                best = "best_val_loss" if variant == "dedicated" else "joint_best_val_loss"  # RSN2: one joint fit
                assert set(doc[variant][task]) >= {"macro_f1", "epochs", best, "params_total", "params_packed"}
        if study != "cifar_mnist_fashion_cnn":  # (there a second, 1-channel stem layer adds 320)
            # the packed RSN2 model holds no more parameters than one dedicated model
            assert doc["rsn2"]["digits"]["params_packed"]["max"] <= doc["dedicated"]["digits"]["params_total"]["min"]
        comparison = doc["comparisons"]["rsn2"]
        expected = doc["rsn2"]["fashion"]["accuracy"]["mean"] - doc["dedicated"]["fashion"]["accuracy"]["mean"]
        assert comparison["fashion"]["accuracy_diff"] == pytest.approx(expected)
        assert "delta_m_accuracy_pct" in comparison
        paired = comparison["fashion"]["paired"]
        assert paired["n"] == 2 and paired["metric"] == "accuracy" and paired["verdict"] in (
            "better", "worse", "equivalent", "undecided")
        assert paired["crossed"]["items"] > 0 and paired["crossed"]["se"] >= paired["crossed"]["se_seed"]  # items counted
        assert comparison["delta_m"]["mean"] == pytest.approx(comparison["delta_m_pct"])
        compact = json.loads(first[study])  # the DVC metric: narrow, everything in it numeric or null
        assert set(compact) == {"dedicated", "rsn2", "rsn2_vs_dedicated", "official_data"}
        assert compact["official_data"] is False  # the mirror's synthetic files are not the official ones
        assert compact["rsn2_vs_dedicated"]["fashion"]["gain"] == pytest.approx(paired["mean"])
        assert compact["dedicated"]["digits"]["accuracy"] == doc["dedicated"]["digits"]["accuracy"]["mean"]
        report = (repo / "reports" / f"{study}.md").read_text()
        runs = 2 * len(tasks) * 2  # variants x tasks x seeds
        assert report.count("macro avg") == runs and "## Seed statistics" in report and "delta-m" in report
        assert "## Verdict" in report and "wall time" not in report
        assert "  Ankle boot " in report  # classification reports name the classes
        pairs = json.loads(next((repo / "plots" / "confusion" / study).glob("dedicated__fashion__*.json")).read_text())
        assert {p["actual"] for p in pairs} <= set(CATALOGUE[study].specs()["fashion"].class_names)
        curves = {p.name for p in (repo / "plots" / "curves" / study).glob("*.csv")}
        means = {f"rsn2__mean_real__seed{k}.csv" for k in (0, 1)} if study != "cifar_mnist_fashion_cnn" else set()
        assert len(curves - means) == runs and means <= curves  # (phased RSN2 fits have no joint curve)
        assert len(list((repo / "plots" / "confusion" / study).glob("*.json"))) == runs // 2

    # `dvc plots show`: per task and validation metric one plot, dedicated and rsn2 overlaid
    shown = json.loads(_sh(["dvc", "plots", "show", "--json"], repo, env).stdout)["data"]
    overlays = {f"{Path(k).parent.parent.name}/{Path(k).name}": v for k, v in shown.items() if "/val_" in k}
    assert set(overlays) >= {f"{m}/{task}__rsn2.json" for task in ("digits", "fashion") for m in ("val_loss", "val_accuracy")}
    plot = overlays["val_accuracy/digits__rsn2.json"][0]["content"]
    lines = plot["data"]["values"]
    assert {row["field"] for row in lines} == {"dedicated", "multitask"} and not [k for k in shown if "/curves/" in k]
    assert all(isinstance(row["dvc_inferred_y_value"], float) for row in lines if "dvc_inferred_y_value" in row)
    titles = json.dumps(plot)
    assert '"title": "validation accuracy (fraction correct' in titles and '"title": "y"' not in titles

    summary = (repo / "reports" / "summary.md").read_text()
    assert "## The answer" in summary and "task comparisons" in summary
    page = (repo / "reports" / "summary.html").read_text()
    assert "data:image/png;base64," in page and "http" not in page.replace("http-equiv", "")
    assert {p.name for p in (repo / "reports" / "figures").iterdir()} >= {"delta_m_forest.png", f"{STUDIES[0]}_scores.png"}
    assert json.loads((repo / "reports" / "summary.json").read_text())["missing"] == [s for s in CATALOGUE if s not in STUDIES]
    reports = {p: p.read_bytes() for p in (repo / "reports").rglob("*") if p.is_file()}

    status = _sh(["dvc", "status"], repo, env).stdout
    assert "up to date" in status, status
    again = _sh(["dvc", "repro"], repo, env)
    assert "Running stage" not in again.stdout + again.stderr

    for folder in ("results", "metrics", "reports", "plots", "data/prepared"):
        shutil.rmtree(repo / folder)
    _sh(["dvc", "repro", "--force"], repo, env)  # --force: really retrain, not the run cache
    assert _metrics(repo) == first
    assert {p: p.read_bytes() for p in (repo / "reports").rglob("*") if p.is_file()} == reports  # git-tracked: byte-identical


def test_mlflow_holds_a_parent_per_variant_and_a_child_per_seed(project):
    repo, env = project
    if not (repo / "metrics" / f"{STUDIES[0]}.json").exists():
        _sh(["dvc", "repro"], repo, env)
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    for study in STUDIES:
        experiment = client.get_experiment_by_name(study)
        runs = client.search_runs([experiment.experiment_id])
        parents = [r for r in runs if r.data.tags.get("mtlbench.role") == "parent"]
        children = [r for r in runs if r.data.tags.get("mtlbench.role") == "seed"]
        assert {r.data.tags["mtlbench.variant"] for r in parents} == {"dedicated", "rsn2"}
        assert len(children) == 2 * len(parents)
        assert all(r.data.tags["dvc_stage"] == f"evaluate@{study}" for r in runs)
        assert all(len(r.data.tags["git_commit"]) == 40 for r in runs)
        assert {"digits/accuracy", "fashion/accuracy", "digits/val_loss"} <= set(children[0].data.metrics)
        assert all(r.data.tags["mtlbench.complete"] == "true" and r.info.status == "FINISHED" for r in runs)
        assert len({r.data.tags["mlflow.runName"] for r in runs}) == len(runs)  # named uniquely
        child = children[0]
        assert {"run.train_limit", "accel.channels_last", "run.stack_seeds", "protocol.max_epochs"} <= set(child.data.params)
        assert child.data.params["run.train_limit"] == "100" and child.data.params["protocol.max_epochs"] == "2"
        # one copy of each param: the protocol's fields once, under the settings' names
        assert not {"lr", "max_epochs", "batch_size", "protocol", "device"} & set(child.data.params)
        assert child.data.tags["mtlbench.data.digits"] != "unknown"
        for run in (child, parents[0]):  # the Datasets column of the runs table, on parents too
            assert {d.dataset.name for d in client.get_run(run.info.run_id).inputs.dataset_inputs} >= {"digits", "fashion"}
        curve = client.get_metric_history(child.info.run_id, "digits/val_loss")
        assert child.info.start_time <= curve[0].timestamp <= curve[-1].timestamp <= child.info.end_time


def test_evaluating_again_keeps_one_record_and_a_killed_evaluate_is_repaired(project):
    repo, env = project
    if not (repo / "metrics" / f"{STUDIES[0]}.json").exists():
        _sh(["dvc", "repro"], repo, env)
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(STUDIES[0])

    def records():
        return sorted((r.info.run_id, r.data.tags["mtlbench.complete"]) for r in client.search_runs([experiment.experiment_id]))

    artifacts = sum(p.stat().st_size for p in (repo / "mlartifacts").rglob("*") if p.is_file())
    before = records()
    _sh(["dvc", "repro", "--force", "--single-item", f"evaluate@{STUDIES[0]}"], repo, env)
    assert records() == before  # the same runs, reused
    assert sum(p.stat().st_size for p in (repo / "mlartifacts").rglob("*") if p.is_file()) == artifacts

    # a run left incomplete (what `kill -9` mid-logging leaves) and the record marker gone with it
    parent = json.loads((repo / "results" / "mlflow" / f"{STUDIES[0]}.json").read_text())["runs"]["rsn2"]["parent"]
    client.delete_tag(parent, "mtlbench.complete")
    (repo / "results" / "mlflow" / f"{STUDIES[0]}.json").unlink()
    assert f"evaluate@{STUDIES[0]}" in _sh(["dvc", "status"], repo, env).stdout
    _sh(["dvc", "repro"], repo, env)
    after = client.search_runs([experiment.experiment_id])
    assert len(after) == len(before) and parent not in {r.info.run_id for r in after}
    assert all(r.data.tags["mtlbench.complete"] == "true" for r in after)


def test_bad_inputs_stop_with_a_clear_message_and_keep_outputs(project):
    repo, env = project
    if not (repo / "metrics" / f"{STUDIES[0]}.json").exists():
        _sh(["dvc", "repro"], repo, env)
    before = _metrics(repo)
    prepared = sorted(p.name for p in (repo / "data" / "prepared").iterdir())
    params_path = repo / "params.yaml"
    original = params_path.read_text()
    try:
        params = yaml.safe_load(original)
        params["data"]["verify"] = True  # the synthetic mirror now fails its checksums
        params_path.write_text(yaml.safe_dump(params))
        assert "expected 6bbc9ace898e44ae57da46a324031adb" in repro_error(repo, env)
        assert sorted(p.name for p in (repo / "data" / "prepared").iterdir()) == prepared

        params["data"]["verify"], params["run"]["epochs"] = False, 3
        params_path.write_text(yaml.safe_dump(params))
        assert "run.epochs: unknown key; allowed keys: studies, seeds" in repro_error(repo, env)

        # a study name is data, never a shell command: dvc.yaml's commands do not hold it
        del params["run"]["epochs"]
        planted = repo.parent / "planted"
        params["run"]["studies"] = [f"mnist_fashion_mlp; touch {planted}"]
        params_path.write_text(yaml.safe_dump(params))
        assert "run.studies: 'mnist_fashion_mlp; touch" in repro_error(repo, env)
        stage = f"train@mnist_fashion_mlp; touch {planted}"
        forced = _sh(["dvc", "repro", "-s", stage], repo, env, check=False)
        # DVC stops first: the stage's param runs.<name> is not declared (and the stage would refuse the name)
        assert forced.returncode != 0 and "'runs.mnist_fashion_mlp; touch" in forced.stdout + forced.stderr
        assert not planted.exists()
    finally:
        params_path.write_text(original)
    assert _metrics(repo) == before


def test_temp_experiments_log_into_the_original_repository_store(project):
    """`dvc exp run --temp` works in a copy under .dvc/tmp/exps; its MLflow runs must still land in
    the repository's own mlflow.db, not in the discarded copy."""
    repo, env = project
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")

    def seed_runs() -> int:
        experiment = client.get_experiment_by_name(STUDIES[0])
        return 0 if experiment is None else len(client.search_runs([experiment.experiment_id]))

    before = seed_runs()
    _sh(["git", "add", "-A"], repo, env)
    _sh(["git", "commit", "-qm", "results"], repo, env)
    _sh(["dvc", "exp", "run", "--temp", "-S", f"run.studies=[{STUDIES[0]}]", "-S", "run.seeds=[5]"], repo, env)
    assert seed_runs() == before + 4  # two parents (dedicated, rsn2) and one seed-5 child each
    experiment = client.get_experiment_by_name(STUDIES[0])
    newest = client.search_runs([experiment.experiment_id], "tags.`mtlbench.seed` = '5'")
    assert len(newest) == 2 and all(r.info.artifact_uri.startswith((repo / "mlartifacts").as_uri()) for r in newest)
    (name,) = {r.data.tags["mtlbench.dvc_exp"] for r in newest}  # DVC's experiment name, in the run names too
    assert all(r.data.tags["mlflow.runName"].endswith(f"@ {name}") for r in newest)


def test_a_declared_run_is_its_own_stages_metrics_and_mlflow_experiment(project):
    """A run is data: declared in params.yaml (here added for one experiment with DVC's `+key=`
    override), it becomes train@<run> / evaluate@<run>, trains its study under its own seeds and
    size over the run section, and lands under its own name in the metrics and in MLflow."""
    repo, env = project
    _sh(["git", "add", "-A"], repo, env)
    _sh(["git", "commit", "-qm", "results", "--allow-empty"], repo, env)
    declared = "+runs.mlp_small={study: mnist_fashion_mlp, seeds: [4], train_limit: 60}"
    _sh(["dvc", "exp", "run", "--temp", "-n", "small", "-S", declared, "-S", "run.studies=[mlp_small]"], repo, env)
    shown = json.loads(_sh(["dvc", "exp", "show", "--json"], repo, env).stdout)
    experiment = next(e for row in shown for e in row.get("experiments") or [] if e.get("name") == "small")
    data = experiment["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["runs"]["mlp_small"]["train_limit"] == 60
    metrics = data["metrics"]["metrics/mlp_small.json"]["data"]
    assert 0.0 <= metrics["dedicated"]["digits"]["accuracy"] <= 1.0 and "rsn2_vs_dedicated" in metrics
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mlp_small").experiment_id])
    seeds = {r.data.tags.get("mtlbench.seed") for r in runs if r.data.tags.get("mtlbench.role") != "parent"}
    assert seeds == {"4"} and len([r for r in runs if r.data.tags.get("mtlbench.role") == "parent"]) == 2
    assert {r.data.params["run.train_limit"] for r in runs} == {"60"}
