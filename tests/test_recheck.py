"""mtlbench.recheck: one seed of a part retrained under the current code is compared number for
number with the part, and only an exact match is recorded (what lets mtlbench.pool pool parts of
different code). A real study_run (real `dvc repro`) on tiny synthetic MNIST/Fashion files makes
the part; its train_code is then set to another code's, as a part committed before a code change."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from mtlbench.check import ROOT
from mtlbench.pool import pool
from mtlbench.recheck import count_numbers, differences, seed_results
from mtlbench.runtime import cpu_model
from mtlbench.train.units import code_digest

TINY = ["--set", "data.verify=false", "--set", "run.train_limit=60", "--set", "run.max_epochs=2",
        "--set", "run.seeds=[0, 1]", "--set", "mlflow.log_models=false", "--set", "run.device=cpu"]
OLD_CODE = "0" * 64


def _run(mirror, module, *args, threads=1):
    env = {**os.environ, "MTLBENCH_DATA_MIRROR": str(mirror), "OMP_NUM_THREADS": str(threads)}
    return subprocess.run([sys.executable, "-m", f"mtlbench.{module}", *map(str, args)], env=env,
                          capture_output=True, text=True)


@pytest.fixture
def old_part(idx_mirror, tmp_path):
    """A tiny mnist_fashion_mlp study run of seeds 0 and 1, recorded as trained by OLD_CODE."""
    mirror, _ = idx_mirror
    part = tmp_path / "part"
    made = _run(mirror, "study_run", "--study", "mnist_fashion_mlp", *TINY, "--out", part)
    assert made.returncode == 0, made.stderr[-3000:]
    run = json.loads((part / "run.json").read_text())
    (part / "run.json").write_text(json.dumps({**run, "train_code": OLD_CODE}))
    return mirror, part


def test_a_seed_that_comes_out_identical_is_recorded_and_lets_the_parts_pool(old_part, tmp_path):
    mirror, part = old_part
    assert json.loads((part / "context.json").read_text())["threads"] == 1  # the train stage records it
    # seed 1 alone, as if seeds were independent; from a shell with 2 threads: the part's 1 is used
    checked = _run(mirror, "recheck", part, "--seed", 1, threads=2)
    assert checked.returncode == 0, checked.stderr[-3000:]
    [record] = json.loads((part / "code_checks.json").read_text())
    assert record["threads"] == 1
    # 2 variants x 2 tasks x 2 epochs x 4 curve values, and each variant's final metrics per task
    curves = 2 * 2 * 2 * 4
    assert record["from"] == OLD_CODE and record["to"] == code_digest() and record["seed"] == 1
    assert record["cpu"] == cpu_model() and record["numbers"] > curves
    assert "numbers identical" in checked.stderr

    # a part of the current code pools with the old one now (its seeds made distinct by hand)
    new = tmp_path / "new"
    made = _run(mirror, "study_run", "--study", "mnist_fashion_mlp", *TINY, "--set", "run.seeds=[2]", "--out", new)
    assert made.returncode == 0, made.stderr[-3000:]
    run = pool([part, new], tmp_path / "pooled", "test")
    assert run["seeds"] == [0, 1, 2] and run["code_checks"] == [record]


def test_a_seed_that_comes_out_differently_is_said_and_not_recorded(old_part):
    mirror, part = old_part
    details = json.loads((part / "details.json").read_text())
    task = next(iter(details["variants"]["rsn2"]))
    accuracy = details["variants"]["rsn2"][task]["accuracy"]["values"]
    accuracy[0] += 0.001  # seed 0: what an older code that trained differently would have written
    (part / "details.json").write_text(json.dumps(details))
    checked = _run(mirror, "recheck", part)
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert f"rsn2/{task}/accuracy: {accuracy[0]} -> {accuracy[0] - 0.001}" in checked.stderr.replace("\n  ", "\n")
    assert "(1 of its" in checked.stderr and not (part / "code_checks.json").exists()


@pytest.mark.parametrize("fault, said", [
    ("cpu", "trained on 'Some Other CPU'"),
    ("threads", "context.json: no \"threads\""),
])
def test_a_part_that_cannot_be_retrained_alike_here_is_refused_before_training(tmp_path, fault, said):
    part = tmp_path / "part"
    shutil.copytree(ROOT / "bench" / "parts" / "fashion_groups_modern_cpu_seeds0-5", part)  # a committed part
    run = json.loads((part / "run.json").read_text())
    cpu = cpu_model() if fault == "threads" else "Some Other CPU"  # this machine's, whichever kind it is
    (part / "run.json").write_text(json.dumps({**run, "train_code": OLD_CODE, "cpu": cpu}))
    if fault == "threads":
        context = json.loads((part / "context.json").read_text())
        (part / "context.json").write_text(json.dumps({k: v for k, v in context.items() if k != "threads"}))
    checks = part / "code_checks.json"
    records = checks.read_text() if checks.exists() else None  # a committed part's own recheck records
    checked = _run(tmp_path, "recheck", part)
    assert checked.returncode == 2 and "Traceback" not in checked.stderr
    assert said in checked.stderr and (checks.read_text() if checks.exists() else None) == records


def test_one_seeds_results_and_what_differs_on_a_hand_made_document():
    details = {"variants": {"dedicated": {"digits": {"accuracy": {"values": [0.9, 0.8]}}}},
               "curves": {"dedicated": {"digits": {"0": [{"epoch": 1, "val_loss": 0.5, "train_loss": 0.6}],
                                                   "1": [{"epoch": 1, "val_loss": 0.4, "train_loss": 0.7}]}}}}
    one = seed_results(details, 1)
    assert one == {"dedicated/digits/accuracy": 0.8,
                   "dedicated/digits/curve": [{"epoch": 1, "val_loss": 0.4, "train_loss": 0.7}]}
    assert count_numbers(one) == 3  # the accuracy, and the curve's two values (its epoch number is not a result)
    assert differences(one, one) == []
    assert differences(one, {**one, "dedicated/digits/accuracy": 0.81}) == ["dedicated/digits/accuracy: 0.8 -> 0.81"]
    two_epochs = [{"epoch": 1, "val_loss": 0.4}, {"epoch": 2, "val_loss": 0.3, "train_loss": 0.5}]
    moved = [two_epochs[0], {**two_epochs[1], "train_loss": 0.51}]
    assert differences({"c": two_epochs}, {"c": moved}) == ["c: from epoch 2, train_loss 0.5 -> 0.51"]
    assert differences({"c": two_epochs}, {"c": two_epochs[:1]}) == ["c: 2 epochs -> 1"]
