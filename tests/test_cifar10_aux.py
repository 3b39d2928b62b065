"""cifar10_aux: its tasks (labels derived from CIFAR-10 by the real loading code on an archive in
the official format), the cifar_small model, reconstruction losses and metrics, training with a
reconstruction head, and the comparison's signs for a lower-is-better metric."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from mtlbench.formats import write_cifar10

from mtlbench.config import parse_params
from mtlbench.data.prepared import prepare
from mtlbench.data.sources import SOURCES
from mtlbench.data.tasks import TensorSet, load_tasks
from mtlbench.data.taskspec import random_labels
from mtlbench.evaluate import (
    SeedOutcome, TaskOutcome, VariantOutcome, compare_to_dedicated, reconstruction_metrics, summarize, variant_table,
)
from mtlbench.models import build_dedicated, build_shared
from mtlbench.models.cifar_small import IMAGE_HEAD
from mtlbench.studies import CIFAR10_NAMES, STUDIES
from mtlbench.train.loop import fit, predict_logits
from mtlbench.train.objectives import correct_count, per_image_mse, task_loss, task_scores
from mtlbench.train.protocols import hs_protocol
from mtlbench.train.kinds.common import kept_test_outputs
from mtlbench.train.runner import variant_plan

STUDY = STUDIES["cifar10_aux"]


@pytest.fixture(scope="module")
def cifar10_tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("c10")
    write_cifar10(root / "mirror" / "cifar-10-python.tar.gz", per_batch=40, n_test=50, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # synthetic files do not match the official checksums
        prepare(SOURCES["cifar10"], str(root / "mirror"), False, root / "raw", root / "prepared")
    specs = STUDY.specs()
    loaded = load_tasks([specs[t] for t in STUDY.tasks], root / "prepared", root / "tasks", None, torch.device("cpu"))
    return {t.spec.name: t for t in loaded}


def test_study_has_a_dedicated_model_and_one_hps_variant_per_scheme():
    assert STUDY.variants == ("dedicated", "hps_fixed", "hps_sum", "hps_mean", "hps_geometric", "hps_uncertainty", "hps_dwa")
    assert STUDY.datasets == ("cifar10",)
    assert STUDY.variant("hps_fixed").method_options == {"weights": (0.5, 0.1, 1.0, 0.1)}
    assert all(STUDY.tasks_of(v) == STUDY.tasks for v in STUDY.variants)
    params = parse_params({"run": {"studies": ["cifar10_aux"], "tasks": ["cifar10", "reconstruction"]}}, {}, Path("."))
    assert dict(variant_plan(STUDY, params))["hps_fixed"] == ("cifar10", "reconstruction")


def test_task_labels_come_from_the_cifar10_labels(cifar10_tasks):
    ten, animal, recon, rand = (cifar10_tasks[t] for t in STUDY.tasks)
    y = ten.train.targets[0].numpy()
    animals = {CIFAR10_NAMES.index(n) for n in ("bird", "cat", "deer", "dog", "frog", "horse")}
    assert np.array_equal(animal.train.targets[0].numpy(), np.isin(y, list(animals)).astype(np.int64))
    assert np.array_equal(animal.test.targets[0].numpy(), np.isin(ten.test.targets[0].numpy(), list(animals)))
    # reconstruction: the target is the input tensor itself, not a copy
    assert recon.train.targets[0] is recon.train.inputs[0] and recon.train.inputs[0] is ten.train.inputs[0]
    assert recon.train.targets[0].dtype == torch.float32 and float(recon.train.targets[0].max()) <= 1.0
    # random labels: binary, drawn from the catalogue's seed, different in train and test
    r = rand.train.targets[0].numpy()
    assert set(np.unique(r)) == {0, 1} and len(r) == 200
    assert np.array_equal(r, random_labels(rand.spec.random_seed, 200, "train")) and rand.spec.is_random
    assert not np.array_equal(r[:50], rand.test.targets[0].numpy())
    assert not np.array_equal(r, animal.train.targets[0].numpy())


def test_cifar_small_heads_and_decoder_shapes():
    model = build_shared("cifar_small", (3, 32, 32), (10, 2, IMAGE_HEAD, 2), seed=0)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        outputs = model(x)
    assert [tuple(o.shape) for o in outputs] == [(4, 10), (4, 2), (4, 3, 32, 32), (4, 2)]
    assert 0 <= float(outputs[2].min()) and float(outputs[2].max()) <= 1  # sigmoid
    batchnorms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [m.num_features for m in batchnorms] == [8, 16, 32] and batchnorms[0].momentum == 0.01
    single = build_dedicated("cifar_small", (3, 32, 32), IMAGE_HEAD, seed=0)
    with torch.no_grad():
        assert tuple(single(x)[0].shape) == (4, 3, 32, 32)
    # one shared encoder: the HPS model is smaller than four dedicated ones
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    dedicated = sum(n(build_dedicated("cifar_small", (3, 32, 32), k, 0)) for k in (10, 2, IMAGE_HEAD, 2))
    encoder = n(model.encoder)
    assert n(model) == dedicated - 3 * encoder
    with pytest.raises(ValueError, match="32x32"):
        build_dedicated("cifar_small", (3, 28, 28), IMAGE_HEAD, seed=0)


def test_reconstruction_loss_and_metrics_by_hand():
    target = torch.zeros(2, 3, 2, 2)
    output = torch.zeros(2, 3, 2, 2)
    output[0] += 0.1  # image 0: MSE 0.01 -> 20 dB
    output[1, 0, 0, 0] = float(np.sqrt(0.012))  # image 1: MSE 0.012 / 12 = 0.001 -> 30 dB
    assert float(task_loss(output, target)) == pytest.approx((0.01 + 0.001) / 2)
    assert per_image_mse(output, target).tolist() == pytest.approx([0.01, 0.001])
    assert reconstruction_metrics(np.array([0.01, 0.001])) == pytest.approx({"mse": 0.0055, "psnr": 25.0})
    assert int(correct_count(output, target)) == 0
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    assert int(correct_count(logits, labels)) == 1


def test_hps_with_a_reconstruction_head_trains_deterministically(cifar10_tasks):
    tasks = [cifar10_tasks[t] for t in STUDY.tasks]
    x = tasks[0].train.inputs[0]
    data = TensorSet((x,), tuple(t.train.targets[0] for t in tasks))
    protocol = hs_protocol(epochs=3, early_stopping=False)

    def run():
        model = build_shared("cifar_small", (3, 32, 32), tuple(t.spec.n_classes for t in tasks), seed=1)
        result = fit(model, data, protocol, 1, STUDY.tasks, loss_weights=(0.5, 0.1, 1.0, 0.1))
        return model, result

    (model, first), (_, second) = run(), run()
    assert first.history == [{**r, "seconds": a["seconds"]} for r, a in zip(second.history, first.history)]
    assert "reconstruction_accuracy" not in first.history[0] and "val_cifar10_accuracy" in first.history[0]
    recon = [r["reconstruction_loss"] for r in first.history]
    assert recon[-1] < recon[0]  # the decoder learns (the images are noise plus a bright block)
    predictions = kept_test_outputs(tasks[2], predict_logits(model, tasks[2].test.inputs)[2])
    assert predictions["reconstruction_mse"].shape == (50,) and predictions["reconstruction_sample_pred"].dtype == np.uint8
    assert predictions["reconstruction_sample_true"].shape == (16, 3, 32, 32)


def _outcome(variant: str, values: dict[str, dict[str, list[float]]]) -> VariantOutcome:
    """A variant's outcome from {task: {metric: per-seed values}} (enough for the comparison);
    tasks named rand* have random labels."""
    seeds = []
    for i in range(2):
        tasks = [TaskOutcome(task, {m: v[i] for m, v in metrics.items()}, [], np.eye(2, dtype=int) if "accuracy" in metrics else None, [],
                             is_random=task.startswith("rand"))
                 for task, metrics in values.items()]
        seeds.append(SeedOutcome(i, tasks))
    per_seed = {task: {s.seed: t.metrics for s in seeds for t in s.tasks if t.task == task} for task in values}
    kind = STUDY.variant_kind(variant)  # what its kind writes in run.json: one fit for all tasks, or one each
    return VariantOutcome(variant, {}, seeds, summarize({variant: per_seed})[variant], kind, joint=kind != "dedicated")


def test_delta_m_counts_a_falling_mse_as_a_gain_and_leaves_random_tasks_out():
    dedicated = _outcome("dedicated", {"c": {"accuracy": [0.8, 0.8], "macro_f1": [0.7, 0.7]},
                                       "r": {"mse": [0.02, 0.02], "psnr": [17.0, 17.0]},
                                       "rand": {"accuracy": [0.5, 0.5], "macro_f1": [0.5, 0.5]}})
    hps = _outcome("hps_sum", {"c": {"accuracy": [0.72, 0.72], "macro_f1": [0.7, 0.7]},
                               "r": {"mse": [0.01, 0.01], "psnr": [20.0, 20.0]},
                               "rand": {"accuracy": [0.4, 0.4], "macro_f1": [0.4, 0.4]}})
    entry = compare_to_dedicated([dedicated, hps])["hps_sum"]
    assert entry["rand"]["accuracy_diff"] == pytest.approx(-0.1)  # reported, but not in delta-m:
    assert entry["c"]["accuracy_diff"] == pytest.approx(-0.08) and entry["r"]["mse_diff"] == pytest.approx(-0.01)
    assert entry["delta_m_accuracy_pct"] == pytest.approx(-10.0)
    assert entry["delta_m_mse_pct"] == pytest.approx(50.0)  # MSE halved: +50%
    assert entry["delta_m_pct"] == pytest.approx((-10.0 + 50.0) / 2)
    assert entry["r"]["mse_paired_diff"]["mean"] == pytest.approx(-0.01)
    table = variant_table([dedicated, hps], ["c", "r"])
    assert "| r (mse) | 0.0200 +- 0.0000 | 0.0100 +- 0.0000 |" in table


def test_batched_task_losses_equal_the_per_task_losses():
    g = torch.Generator().manual_seed(0)
    outputs = [torch.randn(7, 2, generator=g) for _ in range(5)]
    targets = [torch.randint(0, 2, (7,), generator=g) for _ in range(5)]
    losses, correct = task_scores(outputs, targets)
    torch.testing.assert_close(losses, torch.stack([task_loss(o, y) for o, y in zip(outputs, targets)]))
    assert correct.tolist() == [int(correct_count(o, y)) for o, y in zip(outputs, targets)]
    image = torch.rand(7, 3, 4, 4)  # tasks of different kinds take the per-task path
    mixed, _ = task_scores([outputs[0], image * 0.5], [targets[0], image])
    torch.testing.assert_close(mixed, torch.stack([task_loss(outputs[0], targets[0]), task_loss(image * 0.5, image)]))
