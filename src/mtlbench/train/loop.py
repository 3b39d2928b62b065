"""The training loop: device-resident tensors, seeded shuffling, Keras-style early stopping.

One loop serves dedicated and multitask models. A model takes one input per task and returns one
output per task (a dedicated model: one of each); each task's loss is its cross-entropy (or MSE for a
reconstruction, train/objectives.py), turned into gradients by the multitask method (train/methods).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from mtlbench.data.tasks import TensorSet
from mtlbench.train.accel import EAGER, Accel
from mtlbench.train.early_stopping import EarlyStopping
from mtlbench.train.epoch import EpochRunner, as_tuple
from mtlbench.train.objectives import LOGITS, Objective, is_classification, task_scores
from mtlbench.train.optim import make_optimizer
from mtlbench.train.protocols import Protocol
from mtlbench.train.methods import Method, Weighted

EVAL_BATCH = 2048


@dataclass
class FitResult:
    history: list[dict[str, float]]
    epochs_trained: int
    best_epoch: int | None
    best_val_loss: float
    wall_time_s: float
    stopped_early: bool
    extra: dict = field(default_factory=dict)
    # Unix times (s) of the fit's start and of each epoch's end: MLflow replays the curves at the
    # times they were trained, not at the time they were logged. Kept apart from `history`, which
    # identical reruns reproduce exactly.
    started_at: float = 0.0
    epoch_ended_at: list[float] = field(default_factory=list)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def predict_logits(model: nn.Module, inputs: Sequence[torch.Tensor], batch_size: int = EVAL_BATCH) -> tuple[torch.Tensor, ...]:
    """Logits per task for every row, computed in eval mode in large batches."""
    model.eval()
    chunks: list[tuple[torch.Tensor, ...]] = []
    with torch.inference_mode():
        for start in range(0, len(inputs[0]), batch_size):
            chunks.append(as_tuple(model(*(x[start : start + batch_size] for x in inputs))))
    return tuple(torch.cat(parts) for parts in zip(*chunks))


def evaluate_losses(model: nn.Module, data: TensorSet, method: Method,
                    objective: Objective = LOGITS) -> dict[str, torch.Tensor]:
    """Mean loss (as training computes it: `objective`) and accuracy per task (0 for
    reconstruction), and the total loss as the method values it (tensors, not yet synced; the
    method's state is not touched)."""
    outputs = predict_logits(model, data.inputs)
    losses, correct = task_scores(outputs, data.targets, objective)
    with torch.no_grad():
        total = method.total(losses)
    return {"loss": total, "task_loss": losses, "task_acc": correct / len(data)}


def epoch_record(epoch: int, names: Sequence[str], train: dict, val: dict, seconds: float,
                 classification: Sequence[bool] | None = None) -> dict[str, float]:
    """Keras-style history keys; accuracies only for the tasks `classification` marks (default all)."""
    record = {"epoch": epoch, "loss": float(train["loss"]), "val_loss": float(val["loss"]), "seconds": seconds}
    for i, name in enumerate(names):
        record[f"{name}_loss"] = float(train["task_loss"][i])
        record[f"val_{name}_loss"] = float(val["task_loss"][i])
        if classification is None or classification[i]:
            record[f"{name}_accuracy"] = float(train["task_acc"][i])
            record[f"val_{name}_accuracy"] = float(val["task_acc"][i])
    return record


def fit(
    model: nn.Module,
    data: TensorSet,
    protocol: Protocol,
    seed: int,
    task_names: Sequence[str],
    loss_weights: Sequence[float] | None = None,
    label: str = "",
    progress: bool = False,
    accel: Accel = EAGER,
    method: Method | None = None,
) -> FitResult:
    """Train `model` in place on `data` (validation split held out by the protocol). The task losses
    become gradients by `method` (the weights its steps used are then recorded per epoch) or else
    by the fixed `loss_weights` (default all 1). Dropout draws from PyTorch's global generator, which is
    seeded here with `seed` (nothing else uses it)."""
    torch.manual_seed(seed)
    train, val = data.split_validation(protocol.val_fraction)
    device = train.targets[0].device
    scheme = method if method is not None else Weighted(loss_weights or [1.0] * len(data.targets))
    scheme.to(device)
    scheme.bind(model, list(model.parameters()))
    trained = [*model.parameters(), *scheme.parameters()]  # a method's own parameters (uncertainty) train too
    optimizer = make_optimizer(trained, protocol, device, accel)
    runner = EpochRunner(model, optimizer, train, protocol, scheme, accel)
    shuffle = torch.Generator().manual_seed(seed)
    classification = [is_classification(y) for y in data.targets]
    stopper = EarlyStopping(protocol.patience, protocol.min_delta)
    best_state, history, ended_at = None, [], []
    started, started_at = time.perf_counter(), time.time()

    for epoch in range(1, protocol.max_epochs + 1):
        t0 = time.perf_counter()
        train_metrics = runner.epoch(shuffle)
        val_metrics = evaluate_losses(model, val, scheme, runner.objective)
        record = epoch_record(epoch, task_names, train_metrics, val_metrics, time.perf_counter() - t0, classification)
        if method is not None:  # the mean weight this epoch's steps used, then the method's update
            for name, w in zip(task_names, train_metrics["task_weight"].tolist()):
                record[f"{name}_weight"] = w
            method.end_epoch(train_metrics["task_loss"].to(device))
        history.append(record)
        ended_at.append(time.time())
        if stopper.update(epoch, record["val_loss"]) and protocol.restore_best:
            best_state = _snapshot(model)
        if progress:
            print_progress(label, record, protocol.max_epochs, started)
        if stopper.should_stop:
            break

    if protocol.restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(
        history=history,
        epochs_trained=len(history),
        best_epoch=stopper.best_epoch,
        best_val_loss=stopper.best,
        wall_time_s=time.perf_counter() - started,
        stopped_early=stopper.should_stop,
        started_at=started_at,
        epoch_ended_at=ended_at,
    )


def print_progress(label: str, record: dict[str, float], max_epochs: int, started: float) -> None:
    """One line per epoch; the ETA assumes every remaining epoch runs (early stopping may end sooner).
    With many tasks only the first five validation accuracies are shown."""
    accs = [f"{k}={v:.4f}" for k, v in record.items() if k.startswith("val_") and k.endswith("accuracy")]
    shown = " ".join(accs[:5]) + (f" (+{len(accs) - 5} tasks)" if len(accs) > 5 else "")
    elapsed = time.perf_counter() - started
    eta = (max_epochs - record["epoch"]) * elapsed / record["epoch"]
    print(
        f"[{label}] epoch {record['epoch']}/{max_epochs} loss={record['loss']:.4f} "
        f"val_loss={record['val_loss']:.4f} {shown} ({record['seconds']:.1f}s, {elapsed:.0f}s total, "
        f"ETA <= {eta:.0f}s)",
        file=sys.stderr,
        flush=True,
    )
