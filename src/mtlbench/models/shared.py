"""Hard parameter sharing: one trunk for every task, one output head per task (SPEC.md section 3).

`cifar_shared` reads SPEC's "3 conv layers + 2 dense layers shared, one output head per task,
dropout 0.2" as: Conv(32) -> MaxPool(2) -> Conv(64) -> MaxPool(2) -> Conv(128) -> MaxPool(2)
(3x3, same padding, ReLU) -> Flatten -> Dropout(0.2) -> Dense(256, ReLU) -> Dropout(0.2) ->
Dense(128, ReLU), then per task Dense(n_classes). A dedicated model is the same network with one
head, so dedicated and multitask runs differ in the sharing only.
"""

from __future__ import annotations

import torch
from torch import nn

DROPOUT = 0.2


def cifar_shared_trunk(in_shape: tuple[int, int, int]) -> tuple[nn.Sequential, int]:
    c, h, w = in_shape
    layers: list[nn.Module] = []
    for out in (32, 64, 128):
        layers += [nn.Conv2d(c, out, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2)]
        c, h, w = out, h // 2, w // 2
    layers += [nn.Flatten(), nn.Dropout(DROPOUT), nn.Linear(c * h * w, 256), nn.ReLU(),
               nn.Dropout(DROPOUT), nn.Linear(256, 128), nn.ReLU()]
    return nn.Sequential(*layers), 128


class SharedNet(nn.Module):
    """forward(x) -> (logits of task 1, ..., logits of task T), every task reading the same image."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: tuple[int, ...]):
        super().__init__()
        self.trunk, width = cifar_shared_trunk(in_shape)
        self.heads = nn.ModuleList(nn.Linear(width, n) for n in n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.trunk(x)
        return tuple(head(features) for head in self.heads)
