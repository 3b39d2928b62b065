"""RSN2 ("multiple subnetworks", the MANN method): several tasks packed into one network's parameters.

Every layer holds one weight slice per task and a fixed boolean mask per slice. Masks are disjoint
across tasks, so the trained layer packs into ONE dense tensor (the size of the dedicated layer)
plus a per-position task id. Each task has its own input stream through the shared layer objects.

Activations travel stacked by task: dense layers see [T, B, features], conv layers [B, T*C, H, W],
so per-channel ops (ReLU, pooling) need no reshaping. On accelerators a layer runs all tasks as one
batched matmul or one grouped convolution (groups=T). On CPU, where batching buys nothing on a few
cores, each slice runs the very kernel a dedicated layer runs: batched and small-shaped GEMMs round
differently in the last bit (measured: the 10x1000 output layer's weight gradient), and per-slice
calls make stacked seeds reproduce single-seed training bit for bit. Masked positions are multiplied out in the forward pass, so
they get exactly zero gradient and, kept at zero, stay zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mtlbench.models.dedicated import build_dedicated
from mtlbench.models.layout import FlattenHWC, nhwc


class MaskedLayer(nn.Module):
    """Common part: per-task weight and bias slices with boolean masks of the same shapes."""

    def __init__(self, n_tasks: int, weight_shape: tuple[int, ...], out_features: int):
        super().__init__()
        self.n_tasks = n_tasks
        self.weight = nn.Parameter(torch.zeros(n_tasks, *weight_shape))
        self.bias = nn.Parameter(torch.zeros(n_tasks, out_features))
        self.register_buffer("weight_mask", torch.ones(n_tasks, *weight_shape, dtype=torch.bool))
        self.register_buffer("bias_mask", torch.ones(n_tasks, out_features, dtype=torch.bool))
        self.masking = False  # all-ones masks until set_masks (a seed stack never masks)
        self.register_load_state_dict_post_hook(lambda layer, _: layer._follow_masks())

    def _follow_masks(self) -> None:
        self.masking = not (bool(self.weight_mask.all()) and bool(self.bias_mask.all()))

    def masked(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.masking:  # multiplying by ones is exact; skipping it saves two passes over the weights
            return self.weight, self.bias
        return self.weight * self.weight_mask, self.bias * self.bias_mask

    def set_masks(self, weight_mask: torch.Tensor, bias_mask: torch.Tensor) -> None:
        """Fix the masks and zero every masked position (they stay zero: they get no gradient)."""
        self.weight_mask.copy_(weight_mask)
        self.bias_mask.copy_(bias_mask)
        self.masking = True
        with torch.no_grad():
            self.weight.mul_(self.weight_mask)
            self.bias.mul_(self.bias_mask)


class MultiMaskedLinear(MaskedLayer):
    def __init__(self, n_tasks: int, in_features: int, out_features: int):
        super().__init__(n_tasks, (out_features, in_features), out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, in] -> [T, B, out]
        weight, bias = self.masked()
        if x.device.type == "cpu":  # per slice: the very kernels a dedicated layer runs (see module doc)
            return torch.stack([F.linear(x[t], weight[t], bias[t]) for t in range(self.n_tasks)])
        # computed as (W x^T)^T: the weight gradient then comes out in the weight's own layout, where
        # x W^T would leave it transposed and cost a copy per layer (measured on an H100)
        return torch.baddbmm(bias.unsqueeze(2), weight, x.transpose(1, 2)).transpose(1, 2)


class MultiMaskedConv2d(MaskedLayer):
    def __init__(self, n_tasks: int, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(n_tasks, (out_channels, in_channels, kernel_size, kernel_size), out_channels)
        self.memory_format = torch.contiguous_format  # of each slice's convolution on CPU (accel.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T*in, H, W] -> [B, T*out, H, W]
        weight, bias = self.masked()
        if x.device.type == "cpu":
            return torch.cat([F.conv2d(self._as_dedicated(part), self._as_dedicated(weight[t]), bias[t], padding="same")
                              for t, part in enumerate(x.chunk(self.n_tasks, dim=1))], dim=1)
        return F.conv2d(x, weight.flatten(0, 1), bias.flatten(), padding="same", groups=self.n_tasks)

    def _as_dedicated(self, t: torch.Tensor) -> torch.Tensor:
        """A task's input or weight slice laid out as its dedicated layer's, so that oneDNN runs
        the same kernel: NHWC under channels_last (explicitly, also for one channel, as
        train/epoch.to_channels_last lays out a dedicated layer's weight)."""
        return nhwc(t) if self.memory_format == torch.channels_last else t.contiguous()


class TaskFlatten(nn.Module):
    """[B, T*C, H, W] -> [T, B, H*W*C]: each task's channels in the order of a dedicated model's FlattenHWC."""

    def __init__(self, n_tasks: int):
        super().__init__()
        self.n_tasks = n_tasks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return x.reshape(b, self.n_tasks, -1, h, w).permute(1, 0, 3, 4, 2).reshape(self.n_tasks, b, -1)


def _dedicated_to_multitask(layers: list[nn.Module], n_tasks: int, conv_input: bool) -> list[nn.Module]:
    """The same layers with each Linear/Conv2d swapped for its multitask, masked version."""
    swapped: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            swapped.append(MultiMaskedConv2d(n_tasks, layer.in_channels, layer.out_channels, layer.kernel_size[0]))
        elif isinstance(layer, nn.Linear):
            swapped.append(MultiMaskedLinear(n_tasks, layer.in_features, layer.out_features))
        elif isinstance(layer, FlattenHWC):
            swapped.append(TaskFlatten(n_tasks))
        elif isinstance(layer, nn.Flatten):  # of the input: RSN2Net.forward flattens each stream
            if conv_input:
                raise ValueError("an RSN2 conv network must flatten with FlattenHWC (models/layout.py)")
            swapped.append(nn.Identity())
        else:
            swapped.append(layer)
    return swapped


class RSN2Net(nn.Module):
    """One network, one stream per task. forward(x_1, ..., x_T) -> (logits_1, ..., logits_T).

    Tasks may differ in input channels (cifar_mnist_fashion_cnn: a 3-channel cifar10 stream beside
    1-channel digits and fashion streams): the first conv layer is then one masked layer per
    channel count ("stem"), shared by the tasks with that count; every later layer is shared by all.
    """

    def __init__(self, architecture: str, in_shapes: tuple[tuple[int, int, int], ...], n_classes: tuple[int, ...]):
        super().__init__()
        if len(in_shapes) != len(n_classes):
            raise ValueError(f"{len(in_shapes)} input shapes for {len(n_classes)} tasks")
        self.architecture, self.n_classes = architecture, tuple(n_classes)
        self.in_shapes = tuple(tuple(shape) for shape in in_shapes)
        self.n_tasks = len(n_classes)
        template = list(build_dedicated(architecture, self.in_shapes[0], max(n_classes), seed=0))
        self.conv_input = isinstance(template[0], nn.Conv2d)
        if len({shape[1:] for shape in self.in_shapes}) != 1 or (not self.conv_input and len(set(self.in_shapes)) != 1):
            raise ValueError(f"tasks of an RSN2 {architecture} need equal input sizes, got {self.in_shapes}")
        channels = [shape[0] for shape in self.in_shapes]
        self.stem_groups = [[t for t, c in enumerate(channels) if c == ch] for ch in dict.fromkeys(channels)]
        first = template[0]
        if self.conv_input:
            self.stem = nn.ModuleList(
                MultiMaskedConv2d(len(group), channels[group[0]], first.out_channels, first.kernel_size[0])
                for group in self.stem_groups
            )
            rest = template[1:]
        else:
            self.stem = nn.ModuleList()
            rest = template
        self.body = nn.Sequential(*_dedicated_to_multitask(rest, self.n_tasks, self.conv_input))

    def masked_layers(self) -> list[MaskedLayer]:
        return [*self.stem, *(m for m in self.body if isinstance(m, MaskedLayer))]

    def slices(self, task: int) -> list[tuple[MaskedLayer, int]]:
        """(layer, slice index) holding `task`'s weights, in the order of the dedicated model's layers."""
        group = next(g for g in self.stem_groups if task in g)
        stem = [(self.stem[self.stem_groups.index(group)], group.index(task))] if self.conv_input else []
        return stem + [(m, task) for m in self.body if isinstance(m, MaskedLayer)]

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.conv_input:
            per_task: list[torch.Tensor] = [None] * self.n_tasks  # type: ignore[list-item]
            for group, layer in zip(self.stem_groups, self.stem):
                out = layer(torch.cat([xs[t] for t in group], dim=1))
                for i, chunk in enumerate(out.chunk(len(group), dim=1)):
                    per_task[group[i]] = chunk
            h = torch.cat(per_task, dim=1)  # [B, T*C, H, W]
        else:
            h = torch.stack([x.flatten(1) for x in xs])  # [T, B, features]
        out = self.body(h)
        return tuple(out[t, :, : self.n_classes[t]] for t in range(self.n_tasks))


INIT_MODES = ("matched", "original")


def init_rsn2(model: RSN2Net, seed: int, mode: str = "matched") -> RSN2Net:
    """`matched` (default): task t's slices start exactly as the dedicated model built with `seed`
    (Glorot-uniform kernels, zero biases), so multitask and dedicated runs differ in the method only.
    `original`: the original MANN layers' initialiser, Keras `random_normal` (std 0.05) kernels and
    zero biases, drawn independently for every slice (how the reference results were produced)."""
    if mode not in INIT_MODES:
        raise ValueError(f"RSN2 init {mode!r}; allowed: {', '.join(INIT_MODES)}")
    generator = torch.Generator().manual_seed(seed)
    for t in range(model.n_tasks):
        dedicated = build_dedicated(model.architecture, model.in_shapes[t], max(model.n_classes), seed)
        sources = [m for m in dedicated if isinstance(m, (nn.Linear, nn.Conv2d))]
        with torch.no_grad():
            for (layer, index), source in zip(model.slices(t), sources):
                if mode == "matched":
                    layer.weight[index].copy_(source.weight)
                else:
                    layer.weight[index].normal_(0.0, 0.05, generator=generator)
                layer.bias[index].zero_()
    return model


def rescale_kept_(model: RSN2Net, keep_fraction: float) -> RSN2Net:
    """Multiply the kept weights by 1/sqrt(keep_fraction), after masking and before training.

    A layer that keeps a fraction q of its inputs sums q times as many terms, so its output variance
    at initialisation drops by q (0.1 at p=90: a signal shrinking ~3x per layer through six layers).
    Rescaling restores the dedicated layer's variance, the correction dropout applies at training
    time; measured on mnist_fashion_mlp it speeds early training markedly (see README).
    """
    with torch.no_grad():
        for layer in model.masked_layers():
            layer.weight.mul_(keep_fraction ** -0.5)
    return model
