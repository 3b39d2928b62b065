"""The training loop: device-resident tensors, seeded shuffling, Keras-style early stopping.

One loop (`train_members`) serves dedicated and multitask models, one at a time (`fit`) or several
seeds stacked in one grouped network (`multiseed.fit_seeds`). A model takes one input per task and
returns one output per task (a dedicated model: one of each); each task's loss is its cross-entropy
(or MSE for a reconstruction, train/objectives.py), turned into gradients by the multitask method
(train/methods).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

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


@dataclass
class Member:
    """What the loop trains and stops: the whole model (`fit`), or one seed's slice of a seed stack
    (`multiseed.fit_seeds`). Each member has its own early stopping, best weights and history; a
    member that has stopped is frozen (a stack puts its slice back after every step)."""

    label: str
    names: tuple[str, ...]
    pick: Callable[[dict], dict]  # its part of an epoch's train or validation metrics
    get_state: Callable[[], object]
    put_state: Callable[[object], None]
    classification: Sequence[bool] | None = None  # which of its tasks report accuracy (None: all)
    stopper: EarlyStopping | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    ended_at: list[float] = field(default_factory=list)
    best: object = None
    frozen: object = None

    def result(self, wall: float, started_at: float, extra: dict | None = None) -> FitResult:
        return FitResult(history=self.history, epochs_trained=len(self.history), best_epoch=self.stopper.best_epoch,
                         best_val_loss=self.stopper.best, wall_time_s=wall, stopped_early=self.stopper.should_stop,
                         extra=extra or {}, started_at=started_at, epoch_ended_at=self.ended_at)


def train_members(model: nn.Module, runner: EpochRunner, val: TensorSet, scheme: Method, members: list[Member],
                  shuffle: torch.Generator | Sequence[torch.Generator], protocol: Protocol, progress: bool = False,
                  method: Method | None = None) -> float:
    """The one training loop (nanoGPT's, in Keras' terms): epochs of `runner`, validation, each
    member's record, early stopping and best weights; the best weights restored at the end. With a
    `method`, each epoch's record holds the mean weight its steps gave each task, and the method
    hears the epoch's losses. Returns the wall time in seconds."""
    started = time.perf_counter()
    for member in members:
        member.stopper = EarlyStopping(protocol.patience, protocol.min_delta)
    for epoch in range(1, protocol.max_epochs + 1):
        t0 = time.perf_counter()
        stopped = [m for m in members if m.frozen is not None]
        after_step = (lambda: [m.put_state(m.frozen) for m in stopped]) if stopped else None
        train_metrics = runner.epoch(shuffle, after_step=after_step)
        val_metrics = evaluate_losses(model, val, scheme, runner.objective)
        seconds = time.perf_counter() - t0
        for member in (m for m in members if m.frozen is None):
            record = epoch_record(epoch, member.names, member.pick(train_metrics), member.pick(val_metrics), seconds,
                                  member.classification)
            if method is not None:  # the mean weight this epoch's steps used
                for name, w in zip(member.names, train_metrics["task_weight"].tolist()):
                    record[f"{name}_weight"] = w
            member.history.append(record)
            member.ended_at.append(time.time())
            if member.stopper.update(epoch, record["val_loss"]) and protocol.restore_best:
                member.best = member.get_state()
            if progress:
                print_progress(member.label, record, protocol.max_epochs, started)
            if member.stopper.should_stop:
                member.frozen = member.get_state()
        if method is not None:  # the method's update from the epoch's losses (DWA)
            method.end_epoch(train_metrics["task_loss"].to(runner.device))
        if all(m.frozen is not None for m in members):
            break
    wall = time.perf_counter() - started
    for member in members:
        if protocol.restore_best and member.best is not None:
            member.put_state(member.best)
    return wall


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
    whole = Member(label, tuple(task_names), pick=lambda metrics: metrics, get_state=lambda: _snapshot(model),
                   put_state=model.load_state_dict, classification=[is_classification(y) for y in data.targets])
    started_at = time.time()
    wall = train_members(model, runner, val, scheme, [whole], torch.Generator().manual_seed(seed), protocol,
                         progress, method)
    return whole.result(wall, started_at)


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
