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


class SharedNet(nn.Module):
    """forward(x) -> (logits of task 1, ..., logits of task T), every task reading the same image.
    The heads have one size (the study's tasks are binary), so they form one HeadBank."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: tuple[int, ...]):
        super().__init__()
        if len(set(n_classes)) != 1:
            raise ValueError(f"cifar_shared heads must all have one size, got {n_classes}")
        self.trunk, width = cifar_shared_trunk(in_shape)
        self.heads = HeadBank(width, len(n_classes), n_classes[0])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.heads(self.trunk(x))
