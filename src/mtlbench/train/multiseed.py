"""Several seeds of one dedicated model trained together, each exactly as it would train alone.

The seeds become the slices of one grouped network (the RSN2 layers with every position kept):
dense layers run as one batched matmul, conv layers as one grouped convolution, one optimizer step
updates all seeds. Each seed keeps its own initialisation, its own shuffling generator, its own
early stopping and its own restored best weights; a seed that has stopped is frozen (its slices
are put back after every step) while the others go on. Slices never interact: the loss is the sum
of the seeds' losses, so each slice's gradient is its own seed's gradient, and Adam is elementwise.
On CPU this reproduces single-seed training bit for bit (tests/test_multiseed.py). The stack is an
RSN2Net with every position kept on purpose: its grouped layers are exactly the batched matmul and
grouped convolution a stack needs, and a class of its own would repeat them.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Sequence

import torch
from torch import nn

from mtlbench.data.tasks import TensorSet
from mtlbench.models.dedicated import build_dedicated
from mtlbench.models.rsn2 import RSN2Net
from mtlbench.train.accel import EAGER, Accel
from mtlbench.train.epoch import EpochRunner, to_channels_last
from mtlbench.train.optim import make_optimizer
from mtlbench.train.loop import FitResult, Member, train_members
from mtlbench.train.protocols import Protocol
from mtlbench.train.methods import Weighted


def seed_stack(architecture: str, in_shape: tuple[int, int, int], n_classes: int, seeds: Sequence[int]) -> RSN2Net:
    """A grouped network whose slice i is exactly build_dedicated(..., seeds[i])."""
    stack = RSN2Net(architecture, (tuple(in_shape),) * len(seeds), (n_classes,) * len(seeds))
    for i, seed in enumerate(seeds):
        copy_slice(build_dedicated(architecture, in_shape, n_classes, seed), stack, i, into_stack=True)
    return stack


def copy_slice(dedicated: nn.Module, stack: RSN2Net, index: int, into_stack: bool) -> nn.Module:
    """Copy the weights of a dedicated model into slice `index` of the stack, or back out of it."""
    layers = [m for m in dedicated if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        for (grouped, i), layer in zip(stack.slices(index), layers):
            for name in ("weight", "bias"):
                target, source = getattr(grouped, name)[i], getattr(layer, name)
                (target if into_stack else source).copy_(source if into_stack else target)
    return dedicated


def seed_models(stack: RSN2Net, architecture: str, in_shape: tuple[int, int, int], n_classes: int,
                accel: Accel = EAGER) -> list[nn.Module]:
    """Every seed's trained dedicated model out of the stack, laid out as training that seed alone
    would have left it (NHWC under accel.channels_last), so that evaluation runs the same kernels."""
    device = next(stack.parameters()).device
    models = [copy_slice(build_dedicated(architecture, in_shape, n_classes, 0).to(device), stack, i, into_stack=False)
              for i in range(stack.n_tasks)]
    if accel.channels_last:
        for model in models:
            to_channels_last(model)
    return models


def _slice_state(stack: RSN2Net, index: int) -> list[torch.Tensor]:
    return [p[i].detach().clone() for layer, i in stack.slices(index) for p in (layer.weight, layer.bias)]


def _put_slice_state(stack: RSN2Net, index: int, state: list[torch.Tensor]) -> None:
    params = [(p, i) for layer, i in stack.slices(index) for p in (layer.weight, layer.bias)]
    with torch.no_grad():
        for (param, i), saved in zip(params, state):
            param[i].copy_(saved)


def fit_seeds(
    stack: RSN2Net,
    data: TensorSet,
    protocol: Protocol,
    seeds: Sequence[int],
    task_name: str,
    label: str = "",
    progress: bool = False,
    accel: Accel = EAGER,
) -> list[FitResult]:
    """`fit` for every seed at once on one task's `data` (loop.train_members, one member per seed's
    slice); one FitResult per seed."""
    k = len(seeds)
    train, val = data.split_validation(protocol.val_fraction)
    stacked = lambda part: TensorSet(part.inputs * k, part.targets * k)  # noqa: E731  (every seed sees all rows)
    train, val = stacked(train), stacked(val)
    optimizer = make_optimizer(stack.parameters(), protocol, train.targets[0].device, accel, copies=k)
    ones = Weighted([1.0] * k).to(train.targets[0].device)  # each slice's gradient is its own seed's
    runner = EpochRunner(stack, optimizer, train, protocol, ones, accel)
    members = [Member(f"{label} seed={seed}", (task_name,), pick=_own(i), get_state=partial(_slice_state, stack, i),
                      put_state=partial(_put_slice_state, stack, i)) for i, seed in enumerate(seeds)]
    started_at = time.time()
    wall = train_members(stack, runner, val, ones, members, [torch.Generator().manual_seed(s) for s in seeds],
                         protocol, progress)
    return [m.result(wall, started_at, {"trained_with_seeds": list(seeds)}) for m in members]


def _own(i: int):
    """Seed i's part of a stack's epoch metrics (its slice's loss is its own loss)."""
    return lambda m: {"loss": m["task_loss"][i], "task_loss": m["task_loss"][i : i + 1], "task_acc": m["task_acc"][i : i + 1]}
