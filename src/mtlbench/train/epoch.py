"""One epoch of training: a seeded order, index-sliced batches, one optimizer step per batch.

`EpochRunner` holds what lasts across the epochs of one fit. Eagerly (always on CPU) it runs the
step from Python. With CUDA graphs on, it captures the whole step once per batch size (gather the
rows by index, forward, loss, backward, clipping, Adam, running sums) and replays it with the
batch's indices copied into a static buffer: one copy and one graph launch per step instead of a
hundred kernel launches, which is what bounds small models on a large GPU.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from mtlbench.data.tasks import TensorSet
from mtlbench.models.layout import nhwc
from mtlbench.models.rsn2 import MultiMaskedConv2d
from mtlbench.train import augment
from mtlbench.train.accel import EAGER, Accel
from mtlbench.train.objectives import Objective, task_scores
from mtlbench.train.optim import StepSchedule
from mtlbench.train.protocols import Protocol
from mtlbench.train.methods import Method

WARMUP_STEPS = 3  # eager steps on a side stream before capture (allocator, cuBLAS handles, compile)


def as_tuple(outputs) -> tuple[torch.Tensor, ...]:
    return (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)


def keras_tensors(model: nn.Module) -> Iterator[tuple[nn.Parameter, int]]:
    """Every parameter with the number of Keras weight tensors it stands for along its first
    dimension: 1, or one per head for heads stored as one tensor (models/shared.HeadBank)."""
    for module in model.modules():
        slices = getattr(module, "keras_slices", 1)
        for param in module.parameters(recurse=False):
            yield param, slices


def clip_each_(model: nn.Module, max_norm: float) -> None:
    """Keras `clipnorm`: every gradient tensor on its own scaled to norm <= max_norm (PyTorch's
    clip_grad_norm_ clips the norm of all gradients together). No host sync: graph-capturable."""
    with torch.no_grad():
        for p, slices in keras_tensors(model):
            if p.grad is None:
                continue
            if slices == 1:
                p.grad.mul_(max_norm / p.grad.norm().clamp(min=max_norm))
            else:
                norms = p.grad.flatten(1).norm(dim=1).clamp(min=max_norm)
                p.grad.mul_((max_norm / norms).view(-1, *([1] * (p.grad.dim() - 1))))


class EpochRunner:
    """Trains `model` on `train` one epoch at a time with `optimizer` (see module doc)."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        train: TensorSet,
        protocol: Protocol,
        method: Method,
        accel: Accel = EAGER,
    ):
        """`method` turns the task losses into gradients (train/methods; fixed weights are
        `Weighted`); it must be on the data's device, bound to the model, its parameters in
        `optimizer`. A method that is not graph-safe runs eagerly even with CUDA graphs on. The
        protocol gives the batch size, gradient clipping, loss (objective), learning-rate
        schedule and augmentation."""
        self.model, self.optimizer, self.batch_size = model, optimizer, protocol.batch_size
        self.method, self.grad_clip, self.objective = method, protocol.grad_clip, Objective.of(protocol)
        self.schedule = StepSchedule(optimizer, protocol, -(-len(train) // protocol.batch_size))
        self.augmented = [protocol.augment and augment.augments(x) for x in train.inputs]
        self.accel = accel if method.graph_safe or not accel.graphs else replace(accel, graphs=False)
        if accel.channels_last:
            to_channels_last(model)
            train = TensorSet(tuple(nhwc(x) if x.dim() == 4 else x for x in train.inputs), train.targets)
        self.train = train
        self.forward = torch.compile(model) if accel.compile else model
        self.device = train.targets[0].device
        k = len(train.targets)
        self.sums = torch.zeros(3 * k + 1, device=self.device)  # total loss, task losses, correct counts, weights
        self.graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, list[torch.Tensor]]] = {}

    def epoch(
        self,
        shuffle: torch.Generator | Sequence[torch.Generator],
        after_step: Callable[[], None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """One pass in a fresh seeded order. One generator orders all streams alike; one generator per
        stream gives each its own order (the seeds of a multi-seed stack). Returns the epoch's mean
        total loss, task losses and task accuracies (one sync per epoch)."""
        self.model.train()
        n, k = len(self.train), len(self.train.targets)
        generators = [shuffle] if isinstance(shuffle, torch.Generator) else list(shuffle)
        # drawn on the CPU: the same order on every device
        orders = [torch.randperm(n, generator=g).to(self.device) for g in generators]
        self.sums.zero_()
        for start in range(0, n, self.batch_size):
            index = [order[start : start + self.batch_size] for order in orders]
            moves = self._draw_moves(generators, len(index[0]))
            self.schedule.before_step()
            if self.accel.graphs:
                self._replay(index, moves)
            else:
                self.optimizer.zero_grad(set_to_none=True)
                self._step(index, moves)
            if after_step is not None:
                after_step()
        sums = (self.sums / n).cpu()
        return {"loss": sums[0], "task_loss": sums[1 : k + 1], "task_acc": sums[k + 1 : 2 * k + 1],
                "task_weight": sums[2 * k + 1 :]}

    def _draw_moves(self, generators: list[torch.Generator], rows: int) -> list[torch.Tensor | None]:
        """Each input stream's augmentation for the next batch (None: not augmented), drawn from
        its stream's generator (one generator: from it, stream after stream)."""
        moves = []
        for s, (x, augmented) in enumerate(zip(self.train.inputs, self.augmented)):
            generator = generators[s] if len(generators) > 1 else generators[0]
            moves.append(augment.draw(generator, rows, x.shape[1]).to(self.device) if augmented else None)
        return moves

    def _step(self, index: list[torch.Tensor], moves: list[torch.Tensor | None]) -> None:
        """Forward, backward and update on the rows `index` (one index per stream, or one for
        all), each input stream augmented by its `moves` where it has them."""
        picks = index * len(self.train.targets) if len(index) == 1 else index
        inputs = [x[i] if m is None else augment.apply(x[i], m) for x, i, m in zip(self.train.inputs, picks, moves)]
        targets = [y[i] for y, i in zip(self.train.targets, picks)]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.accel.bf16, cache_enabled=False):
            outputs = as_tuple(self.forward(*inputs))
        losses, correct = task_scores(outputs, targets, self.objective)
        total, weights = self.method.backward(losses)
        if self.grad_clip is not None:
            clip_each_(self.model, self.grad_clip)
        self.optimizer.step()
        if self.method.wants_losses_after_step:
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.accel.bf16, cache_enabled=False):
                self.method.after_step(task_scores(as_tuple(self.forward(*inputs)), targets, self.objective)[0])
        with torch.no_grad():
            rows = len(targets[0])
            self.sums += torch.cat([total.view(1) * rows, losses.detach() * rows,
                                   correct.to(self.sums.dtype), weights.to(self.sums.dtype) * rows])

    def _replay(self, index: list[torch.Tensor], moves: list[torch.Tensor | None]) -> None:
        key = (len(index), len(index[0]))
        if key not in self.graphs:
            self.graphs[key] = self._capture(*key)
        graph, (index_buffers, move_buffers) = self.graphs[key]
        for buffer, rows in zip(index_buffers, index):
            buffer.copy_(rows)
        for buffer, drawn in zip(move_buffers, moves):
            if buffer is not None:
                buffer.copy_(drawn)
        graph.replay()

    def _capture(self, n_index: int, size: int) -> tuple[torch.cuda.CUDAGraph, tuple[list, list]]:
        """Warm up and capture the step for batches of `size` rows, leaving the training state as it
        was. The step reads its rows and augmentation from static buffers that each replay fills."""
        index_buffers = [torch.arange(size, device=self.device) for _ in range(n_index)]
        move_buffers = [torch.zeros(size, 3, dtype=torch.int64, device=self.device) if a else None
                        for a in self.augmented]
        graph = torch.cuda.CUDAGraph()
        state = [*self.model.parameters(), *self.model.buffers(), *self.method.parameters(), *self.method.buffers()]
        with _training_state_kept(state, self.optimizer, self.sums):
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(WARMUP_STEPS):
                    self.optimizer.zero_grad(set_to_none=True)
                    self._step(index_buffers, move_buffers)
            torch.cuda.current_stream().wait_stream(side)
            self.optimizer.zero_grad(set_to_none=True)  # the graph writes (not accumulates) its gradients
            with torch.cuda.graph(graph):
                self._step(index_buffers, move_buffers)
        return graph, (index_buffers, move_buffers)


def to_channels_last(model: nn.Module) -> None:
    """NHWC conv weights, in place (the optimizer keeps its parameter objects). The 5-D weights of
    multitask convs stay as they are: on CUDA their activations become NHWC through the input, on
    CPU each task's slice is convolved in NHWC, as its dedicated layer would be."""
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 4:
                param.data = nhwc(param.data)
    for module in model.modules():
        if isinstance(module, MultiMaskedConv2d):
            module.memory_format = torch.channels_last


@contextmanager
def _training_state_kept(tensors: list[torch.Tensor], optimizer: torch.optim.Optimizer, sums: torch.Tensor) -> Iterator[None]:
    """Undo the warm-up steps: parameters and buffers (BatchNorm statistics), optimizer state and
    running sums are put back in place (same storage, which the graph has recorded); optimizer
    state that did not exist yet is zeroed, which is Adam's fresh state (step 0, zero moments)."""
    saved_tensors = [t.detach().clone() for t in tensors]
    state = {id(t): t.clone() for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)}
    saved_sums = sums.clone()
    yield
    torch.cuda.synchronize()
    with torch.no_grad():
        for t, saved in zip(tensors, saved_tensors):
            t.copy_(saved)
        for s in optimizer.state.values():
            for t in s.values():
                if torch.is_tensor(t):
                    t.copy_(state[id(t)]) if id(t) in state else t.zero_()
        sums.copy_(saved_sums)
