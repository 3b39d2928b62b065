"""CIFAR-100 binary tasks: the task-spec file, its validation, the label matrix, the HPS model and
the hs protocol's pieces, on small synthetic data."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from synthetic import two_task_images

from mtlbench.config import ParamsError, parse_params
from mtlbench.data.taskspec import TaskSpecError, fine_partition, label_matrix, load_task_file
from mtlbench.data.tasks import TensorSet
from mtlbench.models import build_dedicated, build_shared
from mtlbench.studies import STUDIES
from mtlbench.train.epoch import clip_each_
from mtlbench.train.loop import fit, predict_logits
from mtlbench.train.protocols import hs_protocol
from mtlbench.train.runner import variant_plan

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "tasks" / "cifar100_binary.yaml"
FINE_TO_COARSE = np.arange(100) // 5  # a nesting like CIFAR-100's (the real one is not contiguous)


def test_repository_task_file_defines_every_task_the_study_uses():
    spec = load_task_file(SPEC)
    study = STUDIES["cifar100_binary"]
    assert set(study.tasks) <= set(spec.tasks) and len(study.tasks) == 140
    t1, t2 = spec.tasks["T1"], spec.tasks["T2"]
    assert t1.class_names == ("living", "non-living") and len(t1.ones) == 7
    assert t2.class_names == ("small", "big") and len(t2.ones) == 10
    assert spec.superclasses[spec.tasks["T1"].ones[0]] == "food_containers"
    seeds = [t.seed for t in spec.tasks.values() if t.seed is not None]
    assert len(seeds) == len(set(seeds)), "every seeded task has its own seed"


def test_class_tasks_are_partitions_and_random_tasks_are_seeded():
    spec = load_task_file(SPEC)
    tasks = [spec.tasks[name] for name in ("T1", "T2", "T3", "T4", "R1")]
    rng = np.random.default_rng(0)
    fine = rng.integers(0, 100, 2000)
    train = label_matrix(tasks, fine, FINE_TO_COARSE, "train")
    test = label_matrix(tasks, fine, FINE_TO_COARSE, "test")
    assert train.shape == (2000, 5) and train.dtype == np.uint8
    # superclass task: label 1 exactly for images of the listed superclasses
    assert np.array_equal(train[:, 0], np.isin(FINE_TO_COARSE[fine], spec.tasks["T1"].ones))
    for name in ("T3", "T4"):
        partition = fine_partition(spec.tasks[name], FINE_TO_COARSE)
        assert partition.sum() == 50  # an equal split of the fine classes
        assert np.array_equal(partition, fine_partition(spec.tasks[name], FINE_TO_COARSE))
    assert not np.array_equal(fine_partition(spec.tasks["T3"], FINE_TO_COARSE), fine_partition(spec.tasks["T4"], FINE_TO_COARSE))
    # class tasks give an image the same label in train and test; random tasks do not depend on the image
    assert np.array_equal(train[:, :4], test[:, :4])
    assert not np.array_equal(train[:, 4], test[:, 4]) and 0.4 < train[:, 4].mean() < 0.6
    assert np.array_equal(train, label_matrix(tasks, fine, FINE_TO_COARSE, "train"))


def _broken(tmp_path, edit) -> Path:
    raw = yaml.safe_load(SPEC.read_text())
    edit(raw)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("edit, pattern", [
    (lambda r: r["tasks"]["T2"]["ones"].append("dragons"), r"task T2: unknown superclass 'dragons'"),
    (lambda r: r["tasks"]["T1"]["ones"].append("vehicles_1"), r"task T1: lists a superclass twice"),
    (lambda r: r["tasks"]["T1"].update(ones=list(r["superclasses"])), r"task T1: puts every superclass on side 1"),
    (lambda r: r["tasks"]["T7"].update(kind="stripes"), r"task T7: kind 'stripes' is not allowed; allowed values"),
    (lambda r: r["tasks"]["T7"].pop("seed"), r"task T7: a equal_split task needs a non-negative integer `seed`"),
    (lambda r: r["tasks"]["R3"].update(ones=["fish"]), r"task R3: unknown key 'ones' for kind random"),
    (lambda r: r["superclasses"].pop(), r"superclasses: expected the 20 distinct"),
    (lambda r: r["superclasses"].insert(0, r["superclasses"].pop(1)),
     r"superclasses: not CIFAR-100's label order: position 0 is 'aquatic_mammals', the file has 'fish'"),
    (lambda r: r["tasks"].update(T91={"kind": "equal_split", "seed": 1003}), r"task T91: defines the same task as T3"),
    (lambda r: r["tasks"].update(T92={"kind": "superclass", "ones": [s for s in r["superclasses"] if s not in r["tasks"]["T1"]["ones"]]}),
     r"task T92: defines the same task as T1 \(the same partition\)"),
])
def test_a_bad_task_spec_names_the_task_and_the_fault(tmp_path, edit, pattern):
    with pytest.raises(TaskSpecError, match=pattern):
        load_task_file(_broken(tmp_path, edit))


def test_a_task_defined_twice_is_an_error_not_the_last_one_winning(tmp_path):
    text = SPEC.read_text().replace("  T4: {kind: equal_split, seed: 1004}", "  T3: {kind: equal_split, seed: 1004}")
    (tmp_path / "spec.yaml").write_text(text)
    with pytest.raises(TaskSpecError, match=r"spec.yaml: not valid YAML: .*duplicate key 'T3' \(first on line"):
        load_task_file(tmp_path / "spec.yaml")


def test_a_task_the_study_uses_must_be_defined(tmp_path):
    (tmp_path / "tasks").mkdir()
    _broken(tmp_path, lambda r: r["tasks"].pop("R50")).rename(tmp_path / "tasks" / "cifar100_binary.yaml")
    with pytest.raises(TaskSpecError, match="task R50 is used by study cifar100_binary but not defined"):
        STUDIES["cifar100_binary"].specs(tmp_path)


def _params(**run):
    return parse_params({"run": {"studies": ["cifar100_binary"], "device": "cpu", **run}}, {}, Path("."))


def test_variants_and_task_subsets_come_from_params():
    study = STUDIES["cifar100_binary"]
    plan = dict(variant_plan(study, _params()))
    assert plan["dedicated"] == ("T1", "T2", "T3", "T4", "T5") and plan["hps3"] == ("T1", "T2", "T3")
    assert plan["mix20_10_mean"] == tuple(f"T{i}" for i in range(1, 21)) + tuple(f"R{i}" for i in range(1, 11))
    assert len(plan) == 1 + 3 + 14 and study.variant("mix50_50_sum").method == "sum"
    subset = dict(variant_plan(study, _params(variants=["dedicated", "hps10"], tasks=["T2", "T7"])))
    assert subset == {"dedicated": ("T2",), "hps10": ("T2", "T7")}
    with pytest.raises(ParamsError, match="run.tasks: expected .* unknown task 'T91'"):
        _params(tasks=["T91"])
    with pytest.raises(ParamsError, match="the rsn2 variant of mnist_fashion_mlp trains digits, fashion together"):
        variant_plan(STUDIES["mnist_fashion_mlp"], parse_params({"run": {"tasks": ["digits"]}}, {}, Path(".")))


def test_shared_network_has_one_head_per_task_over_one_trunk():
    model = build_shared("cifar_shared", (3, 32, 32), (2, 2, 2), seed=0)
    outputs = model(torch.rand(4, 3, 32, 32))
    assert len(outputs) == 3 and all(o.shape == (4, 2) for o in outputs)
    dedicated = build_dedicated("cifar_shared", (3, 32, 32), 2, seed=0)
    trunk = sum(p.numel() for p in model.trunk.parameters())
    assert sum(p.numel() for p in model.parameters()) == trunk + 3 * (128 * 2 + 2)
    assert sum(p.numel() for p in dedicated.parameters()) == trunk + 128 * 2 + 2
    # the same seed initialises the trunk the same way with one head or three
    assert all(torch.equal(a, b) for a, b in zip(model.trunk.parameters(), dedicated.trunk.parameters()))


def test_keras_clipnorm_scales_each_gradient_tensor_on_its_own():
    model = torch.nn.Module()
    model.big, model.small = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    model.big.grad, model.small.grad = torch.tensor([3.0, 4.0, 0.0]), torch.tensor([0.3, 0.4])
    clip_each_(model, 1.0)
    assert torch.allclose(model.big.grad, torch.tensor([0.6, 0.8, 0.0]))
    assert torch.equal(model.small.grad, torch.tensor([0.3, 0.4]))  # already within the norm: untouched


def test_head_bank_is_k_dense_heads_initialised_and_clipped_one_by_one():
    """One [K, n, width] weight behaves as the original's K Dense layers: the same Glorot draws in
    head order, the same logits, and Keras clipnorm per head, not over the bank."""
    bank = build_shared("cifar_shared", (3, 16, 16), (2, 2, 2), seed=3)
    generator = torch.Generator().manual_seed(3)
    heads = torch.nn.ModuleList(torch.nn.Linear(128, 2) for _ in range(3))
    for layer in [*(m for m in bank.trunk if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))), *heads]:
        torch.nn.init.xavier_uniform_(layer.weight, generator=generator)  # the original's layers, in order
        torch.nn.init.zeros_(layer.bias)
    assert all(torch.equal(bank.heads.weight[k], heads[k].weight) for k in range(3))
    features = torch.rand(5, 128)
    for out, head in zip(bank.heads(features), heads):
        torch.testing.assert_close(out, head(features))
    grad = torch.zeros(3, 2, 128)
    grad[0, 0, :2] = torch.tensor([3.0, 4.0])  # head 0: norm 5 -> clipped to 1
    grad[1, 1, 0] = 0.5  # head 1: within the norm -> untouched
    bank.heads.weight.grad = grad.clone()
    clip_each_(bank.heads, 1.0)
    assert torch.allclose(bank.heads.weight.grad[0, 0, :2], torch.tensor([0.6, 0.8]))
    assert bank.heads.weight.grad[1, 1, 0] == 0.5


def test_hps_fit_learns_two_tasks_deterministically_with_dropout():
    data = two_task_images(240, 16)
    (x,), (y1, _) = data.inputs, data.targets
    protocol = replace(hs_protocol(epochs=6, early_stopping=False), batch_size=32)
    runs = []
    for _ in range(2):
        model = build_shared("cifar_shared", (3, 16, 16), (2, 2), seed=1)
        result = fit(model, data, protocol, seed=1, task_names=("a", "b"), loss_weights=[0.5, 0.5])
        runs.append(([{k: v for k, v in r.items() if k != "seconds"} for r in result.history], model))
    assert runs[0][0] == runs[1][0], "same seed, same history (dropout included)"
    history = runs[0][0]
    assert history[-1]["loss"] < history[0]["loss"] and len(history) == 6
    assert history[-1]["loss"] == pytest.approx(0.5 * (history[-1]["a_loss"] + history[-1]["b_loss"]), rel=1e-5)
    logits = predict_logits(runs[0][1], (x,))
    assert len(logits) == 2 and float((logits[0].argmax(1) == y1).float().mean()) > 0.7
