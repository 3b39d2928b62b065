"""Damaged training outputs stop evaluation with one line naming the file and the remedy (no
traceback, exit 2); a folder the train stage did not write is not taken for a seed."""

import subprocess
import sys

import pytest

from mtlbench.config import parse_params
from mtlbench.evaluate.results import ResultsError, evaluate_study
from mtlbench.models.store import ModelFileError, load_model
from mtlbench.studies import STUDIES
from mtlbench.train.runner import run_study

STUDY = STUDIES["mnist_fashion_mlp"]


@pytest.fixture
def results(prepared, tmp_path):
    params = parse_params({"run": {"seeds": [0, 1], "device": "cpu", "train_limit": 60, "max_epochs": 1,
                                   "variants": ["dedicated"], "progress": False}}, {}, tmp_path)
    run_study(STUDY, params, prepared, tmp_path / "results")
    return tmp_path / "results"


def drop_key(path, key):
    import json

    run = json.loads(path.read_text())
    del run[key]
    path.write_text(json.dumps(run))


def truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


@pytest.mark.parametrize("damage, message", [
    (lambda r: truncate(r / "dedicated" / "seed1" / "predictions.npz"), r"seed1/predictions.npz: unreadable"),
    (lambda r: truncate(r / "dedicated" / "seed0" / "run.json"), r"seed0/run.json: unreadable \(JSONDecodeError"),
    (lambda r: (r / "dedicated" / "seed1.bak").mkdir(), r"seed1.bak: not a seed folder of the train stage"),
    (lambda r: (r / "context.json").unlink(), r"no complete training results \(the train stage writes context.json last\)"),
    (lambda r: drop_key(r / "dedicated" / "seed0" / "run.json", "tasks"), r"seed0/run.json: unreadable \(KeyError: no key 'tasks'"),
    (lambda r: drop_key(r / "dedicated" / "seed1" / "run.json", "seed"), r"seed1/run.json: unreadable \(KeyError: no key 'seed'"),
])
def test_damaged_results_name_the_file_and_the_remedy(results, damage, message):
    damage(results)
    with pytest.raises(ResultsError, match=message) as err:
        evaluate_study(STUDY, results)
    assert "dvc" in str(err.value)


def test_a_truncated_model_file_is_named(results):
    model = results / "dedicated" / "seed0" / "model_digits.pt"
    truncate(model)
    with pytest.raises(ModelFileError, match=r"model_digits.pt: not a readable mtlbench model file"):
        load_model(model)


@pytest.mark.parametrize("content, said", [
    (lambda: __import__("torch").zeros(3), "not an mtlbench model file (no spec inside)"),
    (lambda: {"format": 99, "spec": {}}, "is a format-99 model file"),
    (lambda: {"format": __import__("mtlbench.models.store", fromlist=["FORMAT"]).FORMAT,
              "spec": {"kind": "dedicated", "architecture": "mlp", "in_shape": [1, 28, 28], "n_classes": 10},
              "state_dict": {"wrong": __import__("torch").zeros(1)}}, "whose contents do not fit its spec"),
])
def test_a_model_file_of_the_wrong_form_is_named(tmp_path, content, said):
    import torch

    path = tmp_path / "model_x.pt"
    torch.save(content(), path)
    with pytest.raises(ModelFileError, match=said.replace("(", r"\(").replace(")", r"\)")):
        load_model(path)


def test_a_stage_says_it_in_one_line_without_a_traceback(results):
    truncate(results / "dedicated" / "seed0" / "run.json")
    code = ("from pathlib import Path; from mtlbench.stages import run_stage; from mtlbench.studies import STUDIES; "
            "from mtlbench.evaluate.results import evaluate_study; "
            f"run_stage(lambda: evaluate_study(STUDIES['mnist_fashion_mlp'], Path({str(results)!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
