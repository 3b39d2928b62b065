"""Keeping NHWC (channels_last) networks NHWC from the first convolution to the first Dense layer.

Two details decide whether a layout conversion hides in every training step (cnn28 on the 2-core
CPU: ~7-15% of the step, measured by alternating 512-row steps):
- A tensor with one channel satisfies both layouts' contiguity checks, so `.contiguous(channels_last)`
  keeps its NCHW strides; the first convolution then picks an NCHW kernel and the second converts
  its input forward and its gradient backward. `nhwc` sets NHWC strides explicitly.
- Flattening NHWC activations in (c, h, w) order copies them forward and backward, and max-pooling's
  backward then converts the NCHW gradient back. `FlattenHWC` flattens in (h, w, c) order, Keras's
  order, which is a view of NHWC memory (and lays the Dense weight out as the Keras kernel).
"""

from __future__ import annotations

import torch
from torch import nn


def nhwc(t: torch.Tensor) -> torch.Tensor:
    """A 4-D tensor with channels_last strides, also when it has one channel (see module doc)."""
    _, c, h, w = t.shape
    if t.stride() == (c * h * w, 1, w * c, c):
        return t
    return torch.empty_like(t, memory_format=torch.channels_last).copy_(t)


class FlattenHWC(nn.Module):
    """[B, C, H, W] -> [B, H*W*C]: a view of NHWC activations, a copy of NCHW ones."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)

    def columns_from_chw(self, weight: torch.Tensor) -> torch.Tensor:
        """A Dense weight written for (c, h, w)-ordered features, reordered for this layer's
        (h, w, c) order: the same function of the image."""
        rows = weight.shape[0]
        return weight.reshape(rows, self.channels, -1).transpose(1, 2).reshape(rows, -1)


def with_chw_flatten(model: nn.Module) -> nn.Module:
    """`model` with nn.Flatten, PyTorch's (c, h, w) order, in place of each FlattenHWC: the network as
    a typical PyTorch user writes it (bench's plain loop). Weights are left as they are."""
    for name, module in list(model.named_modules()):
        if isinstance(module, FlattenHWC):
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent), attr, nn.Flatten())
    return model
