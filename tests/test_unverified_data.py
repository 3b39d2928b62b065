"""Data that are not the official files (data.verify: false) are said in every place a result is
read: run.json, the metric, the details, the report (first thing under the title)."""

import json

from mtlbench.config import parse_params
from mtlbench.evaluate.results import evaluate_study
from mtlbench.outputs import data_warnings, write_study_outputs
from mtlbench.studies import STUDIES
from mtlbench.train.runner import run_study


def test_unverified_files_are_flagged_from_training_to_the_report(idx_mirror, tmp_path):
    from mtlbench.data.prepared import prepare
    from mtlbench.data.sources import SOURCES

    mirror, sources = idx_mirror
    prepare(SOURCES["digits"], str(mirror), False, tmp_path / "raw", tmp_path / "prepared")  # official md5s: no match
    prepare(sources["fashion"], str(mirror), True, tmp_path / "raw", tmp_path / "prepared")  # matches its own md5s
    params = parse_params({"run": {"seeds": [0, 1], "device": "cpu", "train_limit": 60, "max_epochs": 1,
                                   "variants": ["dedicated"], "progress": False}}, {}, tmp_path)
    study = STUDIES["mnist_fashion_mlp"]
    run_study(study, params, tmp_path / "prepared", tmp_path / "results")
    run = json.loads((tmp_path / "results" / "dedicated" / "seed0" / "run.json").read_text())
    assert run["official_data"] == {"digits": False, "fashion": True}
    context = json.loads((tmp_path / "results" / "context.json").read_text())
    warnings = data_warnings(context)
    assert len(warnings) == 1 and warnings[0].startswith("digits: trained and tested on files that are not the official")
    report, details = write_study_outputs(study, evaluate_study(study, tmp_path / "results"), tmp_path, warnings)
    assert report.splitlines()[2].startswith("> **Warning**: digits:")
    assert details["warnings"] == warnings
    assert json.loads((tmp_path / "metrics" / "mnist_fashion_mlp.json").read_text())["official_data"] is False
