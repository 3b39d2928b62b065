"""Dedicated single-task networks of SPEC.md section 3, initialised as Keras initialises them.

Keras starts Dense and Conv2D kernels with Glorot-uniform and biases at zero; PyTorch's defaults
differ (Kaiming-uniform with a=sqrt(5), uniform biases). Matching Keras keeps the reference
numbers comparable. Initialisation draws from an explicit generator, never the global RNG, and
happens on the CPU so the same seed gives the same weights on every device.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from mtlbench.models.cifar_small import CifarSmall
from mtlbench.models.layout import FlattenHWC
from mtlbench.models.shared import HeadBank, MultiInputMLP, SharedNet, mlp_hidden


def keras_init_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Glorot-uniform kernels and zero biases for every Linear and (transposed) convolution, in
    module order. BatchNorm keeps PyTorch's start, which is Keras' (scale 1, shift 0). The Dense
    layer after a FlattenHWC is drawn for (c, h, w)-ordered features, as before that layer
    existed, then reordered: a seed starts from the same function in either flattening order."""
    flatten = None
    for layer in module.modules():
        if isinstance(layer, FlattenHWC):
            flatten = layer
        elif isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight, generator=generator)
            if isinstance(layer, nn.Linear) and flatten is not None:
                with torch.no_grad():
                    layer.weight.copy_(flatten.columns_from_chw(layer.weight))
                flatten = None
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, HeadBank):  # each head as its own Dense layer, in head order
            for kernel in layer.weight.data:
                nn.init.xavier_uniform_(kernel, generator=generator)
            nn.init.zeros_(layer.bias)
    return module


def mlp(in_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """784 -> 6 x Dense(1000, relu) -> Dense(n_classes)."""
    layers, width = mlp_hidden(in_shape)
    return nn.Sequential(*layers, nn.Linear(width, n_classes))


def cnn28(in_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """Conv(32)x2 -> MaxPool(2, stride 1) -> Conv(64)x2 -> MaxPool(2, stride 1) -> Dense(256)x2 -> head."""
    c, h, w = in_shape
    flat = 64 * (h - 2) * (w - 2)  # two stride-1 2x2 pools with 'valid' padding each trim one row/col
    return nn.Sequential(
        nn.Conv2d(c, 32, 3, padding="same"), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding="same"), nn.ReLU(),
        nn.MaxPool2d(2, stride=1),
        nn.Conv2d(32, 64, 3, padding="same"), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding="same"), nn.ReLU(),
        nn.MaxPool2d(2, stride=1),
        FlattenHWC(64),
        nn.Linear(flat, 256), nn.ReLU(),
        nn.Linear(256, 256), nn.ReLU(),
        nn.Linear(256, n_classes),
    )


ARCHITECTURES: dict[str, Callable[[tuple[int, int, int], int], nn.Module]] = {
    "mlp": mlp,
    "cnn28": cnn28,
    "cifar_shared": lambda in_shape, n_classes: SharedNet(in_shape, (n_classes,)),  # one head
    "cifar_small": lambda in_shape, n_classes: CifarSmall(in_shape, (n_classes,)),  # n_classes 0: reconstruction
}

# Hard-parameter-sharing networks: (in_shape, one head size per task) -> model.
SHARED: dict[str, Callable[[tuple[int, int, int], tuple[int, ...]], nn.Module]] = {
    "cifar_shared": SharedNet,
    "cifar_small": CifarSmall,
    "mlp": MultiInputMLP,  # each task with its own images
}


def build_dedicated(arch: str, in_shape: tuple[int, int, int], n_classes: int, seed: int) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    model = ARCHITECTURES[arch](in_shape, n_classes)
    return keras_init_(model, torch.Generator().manual_seed(seed))


def build_shared(arch: str, in_shape: tuple[int, int, int], n_classes: tuple[int, ...], seed: int) -> nn.Module:
    """A hard-parameter-sharing network, one head per task, initialised as Keras would."""
    if arch not in SHARED:
        raise ValueError(f"no hard-parameter-sharing form of architecture {arch!r}; known: {', '.join(SHARED)}")
    return keras_init_(SHARED[arch](in_shape, tuple(n_classes)), torch.Generator().manual_seed(seed))


def count_parameters(model: nn.Module) -> dict[str, int]:
    params = list(model.parameters())
    return {
        "params_total": sum(p.numel() for p in params),
        "params_nonzero": sum(int(torch.count_nonzero(p)) for p in params),
    }
