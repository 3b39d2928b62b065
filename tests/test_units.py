"""Training as resumable units: kept when their key matches, retrained when it changes, placed
atomically; and the same units on a real local Ray cluster, with identical numbers."""

import hashlib
from dataclasses import replace
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mtlbench.config import ParamsError, parse_params
from mtlbench.studies import STUDIES
from mtlbench.train.runner import run_study

STUDY = STUDIES["mnist_fashion_mlp"]



def params(tmp_path, **run):
    return parse_params({"run": {"seeds": [0], "device": "cpu", "train_limit": 60, "max_epochs": 1,
                                 "variants": ["dedicated"], "progress": False, **run}}, {}, tmp_path)


def files_of(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under `folder`: its content hash and modification time (ns)."""
    return {p.relative_to(folder).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def metrics_of(results: Path) -> dict:
    """What evaluate reads as numbers: predictions and the histories without timings."""
    out = {}
    for seed_dir in sorted(results.glob("*/seed*")):
        with np.load(seed_dir / "predictions.npz") as p:
            out[seed_dir.relative_to(results).as_posix()] = {k: p[k].tolist() for k in p.files}
        tasks = json.loads((seed_dir / "run.json").read_text())["tasks"]
        out[seed_dir.relative_to(results).as_posix() + ":history"] = {
            t: [{k: v for k, v in r.items() if k != "seconds"} for r in fit["history"]] for t, fit in tasks.items()}
    return out


def test_finished_units_are_kept_and_only_new_or_changed_ones_train(tmp_path, prepared, capsys):
    out = tmp_path / "results"
    run_study(STUDY, params(tmp_path), prepared, out)
    first = files_of(out / "dedicated" / "seed0")
    units = json.loads((out / "units.json").read_text())
    assert set(units) == {"dedicated/seed0"} and (out / "context.json").is_file()

    (out / ".units" / "unit-leftover").mkdir(parents=True)  # what a killed run leaves behind
    (out / ".units.json.k1ll3d.tmp").write_text("{")  # a kill inside fileio.atomic_path
    run_study(STUDY, params(tmp_path, progress=True), prepared, out)
    assert not list(out.glob(".*"))
    assert files_of(out / "dedicated" / "seed0") == first  # untouched: same bytes, same times
    assert "plan on cpu: 1 unit, 1 kept, 0 to train" in capsys.readouterr().err and not (out / ".units").exists()

    run_study(STUDY, params(tmp_path, seeds=[0, 1], progress=True), prepared, out)  # one more seed: one more unit
    assert files_of(out / "dedicated" / "seed0") == first
    err = capsys.readouterr().err
    assert "unit 2/2 trained: dedicated/seed1" in err and "ETA" in err
    assert set(json.loads((out / "units.json").read_text())) == {"dedicated/seed0", "dedicated/seed1"}

    run_study(STUDY, params(tmp_path, seeds=[1], max_epochs=2), prepared, out)  # a changed setting retrains
    assert not (out / "dedicated" / "seed0").exists()
    history = json.loads((out / "dedicated" / "seed1" / "run.json").read_text())["tasks"]["digits"]["history"]
    assert len(history) == 2


def test_resumed_and_uninterrupted_runs_give_identical_results(tmp_path, prepared):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run_study(STUDY, params(tmp_path, seeds=[0, 1, 2]), prepared, whole)
    run_study(STUDY, params(tmp_path, seeds=[0]), prepared, resumed)  # as if stopped after the first unit
    (resumed / "dedicated" / "seed0" / "run.json").touch()
    run_study(STUDY, params(tmp_path, seeds=[0, 1, 2]), prepared, resumed)
    assert metrics_of(resumed) == metrics_of(whole)


def test_a_unit_index_that_disagrees_with_the_folders_retrains(tmp_path, prepared, capsys):
    out = tmp_path / "results"
    run_study(STUDY, params(tmp_path), prepared, out)
    (out / "units.json").write_text("{not json")
    before = files_of(out / "dedicated" / "seed0")
    run_study(STUDY, params(tmp_path), prepared, out)
    assert "units.json: unreadable (JSONDecodeError); every unit of this study trains again" in capsys.readouterr().err
    after = files_of(out / "dedicated" / "seed0")
    assert after["predictions.npz"][0] == before["predictions.npz"][0]  # retrained, to the same numbers
    assert after["run.json"][1] != before["run.json"][1]
    # and to the same model files, byte for byte (no temporary file name or time inside them)
    assert {n: after[n][0] for n in after if n.endswith(".pt")} == {n: before[n][0] for n in before if n.endswith(".pt")}


def test_an_index_entry_of_the_wrong_form_retrains_that_unit_and_says_why(tmp_path, prepared, capsys):
    out = tmp_path / "results"
    run_study(STUDY, params(tmp_path), prepared, out)
    index = json.loads((out / "units.json").read_text())
    index["dedicated/seed0"]["files"] = ["predictions.npz"]  # a list where a mapping belongs
    (out / "units.json").write_text(json.dumps(index))
    run_study(STUDY, params(tmp_path, progress=True), prepared, out)
    assert "recorded as list, not a mapping of file to digest" in capsys.readouterr().err


def test_a_damaged_or_altered_unit_is_never_kept_and_is_named_when_it_retrains(tmp_path, prepared, capsys):
    out = tmp_path / "results"
    run_study(STUDY, params(tmp_path, seeds=[0, 1]), prepared, out)
    good = metrics_of(out)
    recorded = json.loads((out / "units.json").read_text())["dedicated/seed0"]["files"]
    assert set(recorded) == {"predictions.npz", "run.json", "model_digits.pt", "model_fashion.pt"}
    untouched = files_of(out / "dedicated" / "seed1")
    damaged = out / "dedicated" / "seed0" / "predictions.npz"
    damaged.write_bytes(damaged.read_bytes()[:100])  # truncated, as a full disk or a bad copy leaves it
    run_study(STUDY, params(tmp_path, seeds=[0, 1], progress=True), prepared, out)
    err = capsys.readouterr().err
    assert ("unit dedicated/seed0: predictions.npz has changed since it was written (content digest differs); "
            "retraining it") in err and "plan on cpu: 2 units, 1 kept, 1 to train" in err
    assert metrics_of(out) == good and files_of(out / "dedicated" / "seed1") == untouched
    (out / "dedicated" / "seed1" / "model_digits.pt").unlink()
    (out / "dedicated" / "seed0" / "notes.txt").write_text("mine")
    run_study(STUDY, params(tmp_path, seeds=[0, 1], progress=True), prepared, out)
    err = capsys.readouterr().err
    assert "unit dedicated/seed1: model_digits.pt is missing; retraining it" in err
    assert "unit dedicated/seed0: notes.txt was not written by training; retraining it" in err
    assert metrics_of(out) == good and not (out / "dedicated" / "seed0" / "notes.txt").exists()


def test_a_task_edit_retrains_exactly_the_units_of_that_task_and_a_protocol_edit_elsewhere_none(
        tmp_path, prepared, monkeypatch, capsys):
    """Units are keyed by their tasks' definitions and the resolved protocol, not by task names and
    the protocols' source: editing one task of tasks/fashion_groups.yaml retrains the units that train
    it; editing a modern-protocol constant retrains no faithful unit."""
    import shutil

    from mtlbench.train import protocols

    root = Path(__file__).resolve().parents[1]
    shutil.copytree(root / "tasks", tmp_path / "tasks")
    monkeypatch.chdir(tmp_path)
    study = STUDIES["fashion_groups"]
    out = tmp_path / "results"

    def run(tasks):
        run_study(study, params(tmp_path, variants=["dedicated", "hps_sum"], tasks=tasks, progress=True),
                  prepared, out)
        return capsys.readouterr().err

    run(["footwear", "upper_body"])
    first = {u: files_of(out / u / "seed0") for u in ("dedicated", "hps_sum")}
    task_file = tmp_path / "tasks" / "fashion_groups.yaml"
    task_file.write_text(task_file.read_text().replace("ones: [Pullover, Coat, Ankle boot]", "ones: [Pullover, Coat]"))
    assert "2 units, 2 kept, 0 to train" in run(["footwear", "upper_body"])  # warm changed: not their task
    monkeypatch.setattr(protocols, "MODERN", replace(protocols.MODERN, lr=0.5))
    assert "2 units, 2 kept, 0 to train" in run(["footwear", "upper_body"])  # a protocol they do not train under
    assert {u: files_of(out / u / "seed0") for u in first} == first
    task_file.write_text(task_file.read_text().replace("ones: [Sandal, Sneaker, Ankle boot]", "ones: [Sandal, Sneaker]"))
    err = run(["footwear", "upper_body"])  # footwear changed: both units train it
    assert "2 units, 0 kept, 2 to train" in err and "unit 2/2 trained" in err
    footwear = json.loads((out / "dedicated" / "seed0" / "run.json").read_text())
    assert footwear["variant"] == "dedicated"


def test_ray_executor_on_a_two_node_cluster_retries_a_failed_unit_and_matches_local(tmp_path, prepared, monkeypatch):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    local, remote = tmp_path / "local", tmp_path / "ray"
    run_study(STUDY, params(tmp_path, seeds=[0, 1]), prepared, local)
    fault = tmp_path / "fault-once"
    monkeypatch.setenv("MTLBENCH_FAULT_ONCE", str(fault))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    try:
        cluster.wait_for_nodes()
        run_study(STUDY, params(tmp_path, seeds=[0, 1], executor="ray", ray_address=cluster.address), prepared, remote)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert fault.read_text().startswith("dedicated/seed")  # one unit failed once and was retried
    assert metrics_of(remote) == metrics_of(local)
    assert set(json.loads((remote / "units.json").read_text())) == {"dedicated/seed0", "dedicated/seed1"}


def test_ray_faults_stop_before_training_with_what_to_do(tmp_path, prepared, monkeypatch):
    pytest.importorskip("ray")
    with pytest.raises(ParamsError, match="run.ray_address: could not connect to the Ray cluster at 127.0.0.1:1"):
        run_study(STUDY, params(tmp_path, executor="ray", ray_address="127.0.0.1:1"), prepared, tmp_path / "r")
    assert not (tmp_path / "r" / "dedicated").exists()
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ParamsError, match=r"run.executor: ray needs Ray installed: pip install 'ray\[default\]'"):
        run_study(STUDY, params(tmp_path, executor="ray"), prepared, tmp_path / "r")


def _unit_files(study: str, variant: str) -> set[str]:
    """The package files in the key of a unit of `variant` (the engine, its kind's and method's)."""
    from mtlbench.codebase import PACKAGE
    from mtlbench.train.kinds import KINDS
    from mtlbench.train.units import _files

    s = STUDIES[study]
    modules, _ = KINDS[s.variant_kind(variant)].code(s, variant)
    return {p.relative_to(PACKAGE).as_posix() for m in ("mtlbench.stages.train", *modules) for p in _files(m)}


def test_a_units_key_holds_its_own_kind_and_method_so_a_new_one_rekeys_nothing_else():
    """A new method is a new file under train/methods/ and a line in the registry; a new kind the
    same under train/kinds/. Neither file is in any other unit's key: adding one re-keys nothing."""
    plugins = lambda files: {f for f in files if f.startswith(("train/methods/", "train/kinds/"))}  # noqa: E731
    dedicated, rsn2 = _unit_files("mnist_fashion_hps", "dedicated"), _unit_files("mnist_fashion_hps", "rsn2")
    pcgrad, nash = _unit_files("mnist_fashion_hps", "hps_pcgrad"), _unit_files("mnist_fashion_hps", "hps_nash_mtl")
    for files in (dedicated, rsn2, pcgrad, nash):
        assert "train/methods/__init__.py" not in files and "train/kinds/__init__.py" not in files  # the registries
        assert {"train/loop.py", "train/epoch.py", "train/training.py", "models/shared.py"} <= files  # the engine
        assert "config.py" not in files and "stages/train.py" not in files  # plumbing: its values are in the settings
        assert "train/units.py" not in files  # bookkeeping: an edit must not make finished units stale
    assert plugins(dedicated) == {"train/kinds/dedicated.py", "train/kinds/base.py", "train/kinds/common.py"}
    assert not plugins(rsn2) & {"train/kinds/dedicated.py", "train/kinds/hps.py"} and "train/kinds/rsn2.py" in rsn2
    assert "train/methods/pcgrad.py" in pcgrad and "train/methods/pcgrad.py" not in nash
    assert {"train/methods/nash_mtl.py", "train/methods/base.py"} <= nash and not plugins(dedicated) & plugins(nash) - {
        "train/kinds/base.py", "train/kinds/common.py"}


def test_a_method_written_in_the_registry_is_keyed_by_its_source_and_what_it_calls():
    from mtlbench.train.kinds import KINDS
    from mtlbench.train.units import code_digest

    s = STUDIES["mnist_fashion_hps"]
    modules, texts = KINDS["hps"].code(s, "hps_sum")  # "sum": lambda n_tasks: Weighted([1.0] * n_tasks)
    assert "mtlbench.train.methods.loss_level" in modules and any("Weighted([1.0] * n_tasks)" in t for t in texts)
    mean = KINDS["hps"].code(s, "hps_mean")
    assert code_digest(modules, texts) != code_digest(*mean)  # one file, two methods: told apart by their source
