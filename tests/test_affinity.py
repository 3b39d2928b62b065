"""The affinity signals (mtlbench.affinity): measured without moving the trajectory, and able to
tell a related task from an unrelated one."""

from dataclasses import replace

import numpy as np
import torch

from mtlbench.affinity import AffinityRunner, seed_affinity
from mtlbench.config import parse_params
from mtlbench.data.tasks import TaskData, TensorSet
from mtlbench.models import build_shared
from mtlbench.studies import STUDIES, TASKS
from mtlbench.train.epoch import EpochRunner
from mtlbench.train.kinds.common import phase_train_set
from mtlbench.train.methods import Weighted
from mtlbench.train.optim import make_optimizer
from mtlbench.train.protocols import modern_protocol

ROWS = 192


def _tasks(second_labels: str, rows: int = ROWS) -> list[TaskData]:
    """digits and fashion images whose digit labels are a fixed function of the pixels; the fashion
    task's labels are the same function of its own images ("related") or drawn at random."""
    g = torch.Generator().manual_seed(0)
    projection = torch.randn(784, 10, generator=g)
    x1, x2 = torch.rand(rows, 1, 28, 28, generator=g), torch.rand(rows, 1, 28, 28, generator=g)
    label = lambda x: (x.flatten(1) @ projection).argmax(1)  # noqa: E731
    y2 = label(x2) if second_labels == "related" else torch.randint(0, 10, (rows,), generator=g)
    empty = TensorSet((x1[:4],), (label(x1[:4]),))
    return [TaskData(TASKS["digits"], TensorSet((x1,), (label(x1),)), empty),
            TaskData(TASKS["fashion"], TensorSet((x2,), (y2,)), empty)]


def _one_epoch(runner_class, **kwargs) -> dict[str, torch.Tensor]:
    tasks = _tasks("related")
    protocol = replace(modern_protocol("mlp"), max_epochs=1, batch_size=32)
    model = build_shared("mlp", (1, 28, 28), (10, 10), 3)
    torch.manual_seed(3)
    train, _ = phase_train_set(tasks, [1.0, 1.0]).split_validation(protocol.val_fraction)
    scheme = Weighted([1.0, 1.0])
    scheme.bind(model, list(model.parameters()))
    optimizer = make_optimizer(list(model.parameters()), protocol, torch.device("cpu"))
    runner = runner_class(model, optimizer, train, protocol, scheme, **kwargs)
    runner.epoch(torch.Generator().manual_seed(3))
    return {**model.state_dict(), **{f"moment{i}": s["exp_avg"] for i, s in enumerate(optimizer.state.values())}}


def test_measuring_leaves_the_trajectory_as_the_unit_trains_it():
    """Weights and Adam moments after an epoch measured at every step equal those of a plain epoch
    (dropout, the optimizer's state and the weights are all put back after each measurement)."""
    plain, measured = _one_epoch(EpochRunner), _one_epoch(AffinityRunner)
    assert plain.keys() == measured.keys()
    moved = [k for k in plain if not torch.equal(plain[k], measured[k])]
    assert moved == []


def test_a_related_task_shows_more_affinity_than_a_random_one(tmp_path):
    params = parse_params({"run": {"studies": ["mnist_fashion_hps"], "protocol": "modern", "device": "cpu"}}, {}, tmp_path)
    study = STUDIES["mnist_fashion_hps"]
    related, unrelated = (seed_affinity(study, _tasks(kind, 1200), 0, params) for kind in ("related", "random"))
    assert related["steps_measured"] == 50 and related["epochs"] == 10  # 1080 rows: 5 steps an epoch
    assert np.isfinite(list(related["lookahead"].values())).all()
    assert related["cosine"]["digits|fashion"] > unrelated["cosine"]["digits|fashion"]
    assert related["lookahead"]["digits->fashion"] > unrelated["lookahead"]["digits->fashion"]
