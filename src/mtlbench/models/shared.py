"""Hard parameter sharing: one trunk for every task, one output head per task (SPEC.md section 3).

`cifar_shared` reads SPEC's "3 conv layers + 2 dense layers shared, one output head per task,
dropout 0.2" as: Conv(32) -> MaxPool(2) -> Conv(64) -> MaxPool(2) -> Conv(128) -> MaxPool(2)
(3x3, same padding, ReLU) -> Flatten -> Dropout(0.2) -> Dense(256, ReLU) -> Dropout(0.2) ->
Dense(128, ReLU), then per task Dense(n_classes) (all heads in one HeadBank). A dedicated model is the same network with one
head, so dedicated and multitask runs differ in the sharing only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mtlbench.models.layout import FlattenHWC

DROPOUT = 0.2


def cifar_shared_trunk(in_shape: tuple[int, int, int]) -> tuple[nn.Sequential, int]:
    c, h, w = in_shape
    layers: list[nn.Module] = []
    for out in (32, 64, 128):
        layers += [nn.Conv2d(c, out, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2)]
        c, h, w = out, h // 2, w // 2
    layers += [FlattenHWC(c), nn.Dropout(DROPOUT), nn.Linear(c * h * w, 256), nn.ReLU(),
               nn.Dropout(DROPOUT), nn.Linear(256, 128), nn.ReLU()]
    return nn.Sequential(*layers), 128


class HeadBank(nn.Module):
    """K task heads Dense(width -> n_classes) held as one [K, n_classes, width] weight: one matmul
    for every head instead of K (a hundred binary heads then cost what one does). The original has
    K separate Dense layers; initialisation and gradient clipping treat each slice as one of them
    (`keras_slices`: the Keras tensors each parameter holds along its first dimension)."""

    def __init__(self, width: int, n_tasks: int, n_classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_tasks, n_classes, width))
        self.bias = nn.Parameter(torch.zeros(n_tasks, n_classes))
        self.keras_slices = n_tasks

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = F.linear(features, self.weight.flatten(0, 1), self.bias.flatten())
        return logits.view(len(features), *self.bias.shape).unbind(1)

    def each(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Head k on its own task's rows: `features` is [K, rows, width] (multi-input sharing)."""
        return torch.baddbmm(self.bias.unsqueeze(1), features, self.weight.transpose(1, 2)).unbind(0)


class SharedNet(nn.Module):
    """forward(x) -> (logits of task 1, ..., logits of task T), every task reading the same image.
    The heads have one size (the study's tasks are binary), so they form one HeadBank."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: tuple[int, ...]):
        super().__init__()
        if len(set(n_classes)) != 1:
            raise ValueError(f"cifar_shared heads must all have one size, got {n_classes}")
        self.trunk, width = cifar_shared_trunk(in_shape)
        self.heads = HeadBank(width, len(n_classes), n_classes[0])

    shared_representation = True  # every task reads one representation of one image (MGDA-UB)
    keep_representation = False

    def shared_parameters(self):
        return self.trunk.parameters()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.trunk(x)
        if self.keep_representation and self.training:  # set by MGDA-UB, which differentiates the losses by it
            self.representation = features
        return self.heads(features)


def mlp_hidden(in_shape: tuple[int, int, int]) -> tuple[list[nn.Module], int]:
    """The mlp's layers before its head: Flatten -> 6 x Dense(1000, ReLU); and their width. The
    dedicated mlp adds one Dense head, the multi-input HPS network one head per task."""
    c, h, w = in_shape
    layers: list[nn.Module] = [nn.Flatten()]
    width = c * h * w
    for _ in range(6):
        layers += [nn.Linear(width, 1000), nn.ReLU()]
        width = 1000
    return layers, width


class MultiInputMLP(nn.Module):
    """Hard sharing across tasks with their own inputs (LibMTL's `multi_input`): forward(x_1, ..,
    x_K) -> (logits of task 1 on x_1, ..). The trunk is the mlp's six Dense(1000, ReLU) layers, run
    once over every task's rows together; each task has its own Dense(n_classes) head (one
    HeadBank). Every task's batch has the same number of rows (the tasks' rows are paired, as in
    the RSN2 network). A dedicated mlp is this network with one task."""

    shared_representation = False  # each task has its own input, hence its own representation

    def __init__(self, in_shape: tuple[int, int, int], n_classes: tuple[int, ...]):
        super().__init__()
        if len(set(n_classes)) != 1:
            raise ValueError(f"mlp heads must all have one size, got {n_classes}")
        layers, width = mlp_hidden(in_shape)
        self.trunk = nn.Sequential(*layers)
        self.heads = HeadBank(width, len(n_classes), n_classes[0])
        self.in_shapes = (tuple(in_shape),) * len(n_classes)  # one input per task (serving.FlatIO)

    def shared_parameters(self):
        return self.trunk.parameters()

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.trunk(torch.cat(inputs))
        return self.heads.each(features.view(len(inputs), len(inputs[0]), -1))
