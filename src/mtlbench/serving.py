"""Trained models as MLflow serves them: one 2-D float32 input, one 2-D output.

A pyfunc model receives one array. `FlatIO` gives every mtlbench model that interface: the input row
is every task's image flattened and laid side by side (a dedicated or HPS model: one image; RSN2:
one per task, in the study's task order), pixels in [0, 1] as training saw them; the output row is
every task's output side by side (in the same order): logits, or a reconstruction's pixels flattened."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


class FlatIO(nn.Module):
    """`model` behind the one-array interface. An RSN2 network is kept in its packed form (models/
    packing.py: one dense tensor per layer plus each weight's owning task, half the unpacked size)
    and unpacked on first use, so MLflow stores each model's weights once and small."""

    def __init__(self, model: nn.Module | None, in_shapes: Sequence[Sequence[int]], packed: dict | None = None):
        super().__init__()
        self.packed = packed
        self._model = None if packed is not None else model.eval()
        self.in_shapes = [tuple(int(d) for d in shape) for shape in in_shapes]
        self.sizes = [math.prod(shape) for shape in self.in_shapes]

    @property
    def model(self) -> nn.Module:
        if self._model is None:
            from mtlbench.models.packing import unpack

            self._model = unpack(self.packed)
        return self._model

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.packed is not None:  # the packed weights are what is saved; the unpacked copy is a cache
            state["_modules"] = {k: v for k, v in self._modules.items() if k != "_model"}
            state["_model"] = None
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x.float(), self.sizes, dim=1)
        inputs = [part.reshape(len(x), *shape) for part, shape in zip(parts, self.in_shapes)]
        outputs = self.model(*inputs)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        # a head's output flattened per row: logits as they are, a reconstruction (cifar10_aux's decoder,
        # one image a row) as its pixels, so every head fits the one 2-D output
        return torch.cat([output.reshape(len(x), -1) for output in outputs], dim=1)


def input_shapes(model: nn.Module, saved_spec: dict | None) -> list[tuple[int, ...]]:
    """A model's input shapes: RSN2 knows its own; others from the spec saved beside the weights."""
    if hasattr(model, "in_shapes"):
        return [tuple(s) for s in model.in_shapes]
    return [tuple(saved_spec["in_shape"])]


def example_input(shapes: Sequence[Sequence[int]], rows: int = 2) -> torch.Tensor:
    """A deterministic input in the model's pixel range [0, 1] (a gradient over the pixels)."""
    width = sum(math.prod(s) for s in shapes)
    return torch.linspace(0.0, 1.0, rows * width).reshape(rows, width)
