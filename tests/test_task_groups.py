"""Task-spec files in the class-group form: binary or k-way tasks cut from any dataset's classes."""

import json

import numpy as np
import pytest

from mtlbench.config import parse_params
from mtlbench.data.taskspec import TaskSpecError, load_task_file
from mtlbench.studies import STUDIES, FASHION_NAMES


def write(tmp_path, text: str):
    path = tmp_path / "groups.yaml"
    path.write_text(text)
    return path


def test_groups_and_ones_become_class_maps(tmp_path):
    path = write(tmp_path, "dataset: digits\ntasks:\n"
                           "  parity: {groups: [['0', '2', '4', '6', '8'], ['1', '3', '5', '7', '9']], class_names: [even, odd]}\n"
                           "  small: {ones: ['0', '1', '2']}\n"
                           "  thirds: {groups: [['0', '1', '2'], ['3', '4', '5'], ['6', '7', '8', '9']]}\n")
    tasks = load_task_file(path).tasks
    assert tasks["parity"].class_map == (0, 1, 0, 1, 0, 1, 0, 1, 0, 1) and tasks["parity"].class_names == ("even", "odd")
    assert tasks["small"].class_map == (1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
    assert tasks["thirds"].class_map == (0, 0, 0, 1, 1, 1, 2, 2, 2, 2) and len(tasks["thirds"].class_names) == 3


@pytest.mark.parametrize("body, message", [
    ("dataset: cifar1000\ntasks: {a: {ones: [x]}}", "dataset: 'cifar1000' is not known; allowed values: digits, fashion, cifar10"),
    ("dataset: digits\ntasks: {a: {ones: ['11']}}", "task a: unknown class '11'; known: 0, 1, 2"),
    ("dataset: digits\ntasks: {a: {groups: [['0', '1'], ['1', '2', '3', '4', '5', '6', '7', '8', '9']]}}",
     "task a: lists class '1' twice: the groups must partition"),
    ("dataset: digits\ntasks: {a: {groups: [['0'], ['1']]}}", "task a: leaves out class '2'"),
    ("dataset: digits\ntasks: {a: {ones: ['0'], colour: red}}", "task a: unknown key 'colour'"),
    ("dataset: digits\ntasks: {a: {groups: [['0', '1', '2', '3', '4'], ['5', '6', '7', '8', '9']], class_names: [x]}}",
     "class_names must be 2 strings"),
    ("dataset: digits\ntasks: {a: {groups: [['0', '1', '2', '3', '4'], ['5', '6', '7', '8', '9']], class_names: [x, x]}}",
     "task a: class_names lists 'x' twice; give each class its own name"),
    ("dataset: digits\ntasks: {a: {ones: ['0'], class_names: [same, same]}}", "task a: class_names lists 'same' twice"),
])
def test_bad_group_files_name_the_task_and_the_fault(tmp_path, body, message):
    with pytest.raises(TaskSpecError, match=message.replace("(", r"\(")) as err:
        load_task_file(write(tmp_path, body))
    assert str(err.value).startswith(str(tmp_path / "groups.yaml"))


def test_fashion_groups_study_trains_on_the_mapped_labels(idx_mirror, tmp_path):
    from mtlbench.data.prepared import prepare
    from mtlbench.train.runner import run_study

    study = STUDIES["fashion_groups"]
    assert study.datasets == ("fashion",) and not study.needs_prepared_labels
    mirror, sources = idx_mirror
    prepare(sources["fashion"], str(mirror), True, tmp_path / "raw", tmp_path / "prepared")
    params = parse_params({"run": {"seeds": [0], "device": "cpu", "train_limit": 90, "max_epochs": 1,
                                   "progress": False, "variants": ["dedicated", "hps_pcgrad"]}}, {}, tmp_path)
    run_study(study, params, tmp_path / "prepared", tmp_path / "results")
    with np.load(tmp_path / "prepared" / "fashion.npz") as data:
        fashion_test = data["y_test"]
    footwear = {FASHION_NAMES.index(c) for c in ("Sandal", "Sneaker", "Ankle boot")}
    for variant in ("dedicated", "hps_pcgrad"):
        with np.load(tmp_path / "results" / variant / "seed0" / "predictions.npz") as p:
            assert p["footwear_true"].tolist() == [int(y in footwear) for y in fashion_test.tolist()]
        run = json.loads((tmp_path / "results" / variant / "seed0" / "run.json").read_text())
        assert set(run["tasks"]) == {"footwear", "upper_body", "warm"}


def test_a_k_way_task_beside_binary_ones_stops_check_params_for_the_variant_that_cannot_hold_it(tmp_path):
    """An HPS head bank holds one head size: a 3-way task beside two binary ones is refused before any
    data loads, naming study, variant and the tasks' sizes; the kinds that can hold it pass."""
    import shutil

    from mtlbench.config import ParamsError
    from mtlbench.train.runner import check_builds

    study = STUDIES["fashion_groups"]
    shutil.copytree("tasks", tmp_path / "tasks")
    path = tmp_path / "tasks" / "fashion_groups.yaml"
    path.write_text(path.read_text().replace(
        "    ones: [Pullover, Coat, Ankle boot]\n    class_names: [other, warm]",
        "    groups: [[Pullover, Coat], [Ankle boot], [T-shirt/top, Trouser, Dress, Shirt, Sandal, Sneaker, Bag]]"))
    plan = [(v, study.tasks_of(v)) for v in study.variants]
    edited = study.specs(tmp_path)
    check_builds(study, [p for p in plan if p[0] in ("dedicated", "rsn2")], edited)
    with pytest.raises(ParamsError, match=r"study fashion_groups, variant hps_sum \(hps, tasks footwear 2-way, "
                                          r"upper_body 2-way, warm 3-way\): its network cannot be built: mlp heads "
                                          r"must all have one size"):
        check_builds(study, plan, edited)
    check_builds(study, plan, study.specs())  # the committed file builds every variant


def test_a_task_added_to_the_file_but_not_to_the_study_is_refused_not_ignored(tmp_path):
    import shutil

    from mtlbench.data.taskspec import TaskSpecError

    study = STUDIES["fashion_groups"]
    shutil.copytree("tasks", tmp_path / "tasks")
    path = tmp_path / "tasks" / "fashion_groups.yaml"
    path.write_text(path.read_text() + "  bags:\n    ones: [Bag]\n    class_names: [other, bag]\n")
    with pytest.raises(TaskSpecError, match="task bags is defined but study fashion_groups does not train it; add it "
                                            r"to the study's tasks \(src/mtlbench/studies.py\) or remove it"):
        study.specs(tmp_path)
