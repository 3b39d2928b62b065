"""What a multitask method is: the object that turns a step's task losses into gradients.

The method owns the backward step (LibMTL's `backward(losses)`): it receives the [K] tensor of task
losses, writes `.grad` of every trained parameter, and returns the step's objective value and the
weight it gave each task. Loss-level methods (train/methods/loss_level.py) combine the losses into
one scalar and call `backward()` on it; gradient-level methods (`GradientMethod`) take each task's
gradient of the model's shared parameters and combine the gradients.

Rules that keep a method safe inside a captured CUDA-graph step (train/epoch.py): tensor operations
only (no `.item()`, no Python branch on a tensor's value, fixed iteration counts), randomness only
from torch's generators on the device, and every piece of state that changes during a step in a
registered buffer or parameter (the warm-up before capture puts buffers and parameters back).
A method whose operations cannot be captured sets `graph_safe = False` and runs eagerly.
`total(losses)` must not change any state: validation calls it without gradients.
"""

from __future__ import annotations

import torch
from torch import nn


class MethodError(ValueError):
    """A method cannot train the model it was given (said before training starts)."""


class Method(nn.Module):
    needs_shared = False  # needs the model's shared_parameters() (gradient-level methods)
    needs_representation = False  # needs one shared representation of every task's input (MGDA-UB)
    min_tasks = 1
    graph_safe = True
    wants_losses_after_step = False  # after_step() hears the batch's losses after the update (FAMO)
    # for the generated methods table (`methods_table`): the paper, the authors' code compared with
    # (repository, file, function) and every difference from it; a method of one's own may leave them
    paper = ""
    reference = ""
    deviations = ""

    def __init__(self, n_tasks: int):
        super().__init__()
        self.n_tasks = n_tasks

    def bind(self, model: nn.Module, trained: list[nn.Parameter]) -> None:
        """Called once before training: `trained` are the parameters the optimizer updates. Checks
        that the model offers what the method needs and splits shared from task-specific ones."""
        name = type(self).__name__
        if self.n_tasks < self.min_tasks:
            raise MethodError(f"method {name} needs at least {self.min_tasks} tasks, got {self.n_tasks}")
        if self.needs_shared and not hasattr(model, "shared_parameters"):
            raise MethodError(f"method {name} combines task gradients of shared parameters, and model "
                              f"{type(model).__name__} declares none (it needs a shared_parameters() method)")
        if self.needs_representation and not getattr(model, "shared_representation", False):
            raise MethodError(f"method {name} needs one shared representation of every task's input; model "
                              f"{type(model).__name__} gives each task its own input: use mgda instead")
        own = {id(p) for p in self.parameters()}
        self.trained = [p for p in trained if id(p) not in own]
        shared_ids = {id(p) for p in model.shared_parameters()} if hasattr(model, "shared_parameters") else set()
        self.shared = [p for p in self.trained if id(p) in shared_ids]
        self.specific = [p for p in self.trained if id(p) not in shared_ids]
        self.model = [model]  # a list: not registered as a submodule (its parameters are not the method's)
        if self.needs_shared:
            if not self.shared:
                raise MethodError(f"method {name}: model {type(model).__name__} has no trained shared parameters")
            self.on_bind(sum(p.numel() for p in self.shared))

    def on_bind(self, n_shared: int) -> None:
        """State sized by the shared parameters (registered here, before any step or capture)."""

    def backward(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the gradients of this step; return (objective value, [K] weights used), detached."""
        raise NotImplementedError

    def total(self, losses: torch.Tensor) -> torch.Tensor:
        """The objective's value at `losses` (validation, early stopping), changing no state."""
        return losses.sum()

    def end_epoch(self, epoch_losses: torch.Tensor) -> None:
        """The epoch's mean training loss per task (DWA uses it)."""

    def after_step(self, losses: torch.Tensor) -> None:
        """The step's batch losses after the update, when `wants_losses_after_step` (FAMO)."""


def flat(tensors: list[torch.Tensor | None], like: list[torch.Tensor]) -> torch.Tensor:
    """Gradients as one vector, zeros where a parameter got none."""
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(tensors, like)])


def finite(values: torch.Tensor) -> torch.Tensor:
    """`values` with NaN and +-inf replaced by 0."""
    return torch.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)


def assign(params: list[nn.Parameter], vector: torch.Tensor) -> None:
    """Set each parameter's .grad to its slice of `vector` (contiguous, the parameter's dtype)."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = vector[offset : offset + n].view_as(p).to(p.dtype).contiguous()
        offset += n


def span_weights(grads: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    """The weights a of the task gradients that best give the update (least squares, G^T a ~ d):
    exact for methods whose update is a weighted sum of the task gradients, the nearest such
    reading for the others (PCGrad, GradVac, GradDrop). A tiny ridge keeps it defined when two
    task gradients coincide."""
    gram = grads @ grads.T
    ridge = 1e-10 * gram.diagonal().sum() + 1e-30
    eye = torch.eye(len(gram), device=gram.device, dtype=gram.dtype)
    weights = torch.linalg.solve_ex(gram + ridge * eye, grads @ update)[0]
    # identical or parallel gradients: that ridge is below float32's resolution (1.2e-7 relative) and
    # the solve gives inf/NaN; there a ridge above it gives the near-minimum-norm weights (a solve,
    # not a pseudo-inverse: eigh/SVD cannot be captured in a CUDA graph)
    resolvable = torch.linalg.solve_ex(gram + (1e-5 * gram.diagonal().sum() + 1e-30) * eye, grads @ update)[0]
    return torch.where(torch.isfinite(weights).all(), weights, resolvable)


class GradientMethod(Method):
    """Methods that combine the task gradients of the shared parameters, G = [g_1 .. g_K] (one
    backward pass per task). Subclasses implement `combine(grads, losses) -> (update, weights)`.
    Task-specific parameters (the heads) get each task's own gradient scaled by
    `specific_weights(weights)`: all ones (their plain gradient, as in MGDA, PCGrad and LibMTL's
    default), or the method's weights where the method reweights losses (Nash-MTL, GradNorm)."""

    needs_shared = True
    min_tasks = 2
    weights_scale_specific = False

    def task_gradients(self, losses: torch.Tensor) -> tuple[torch.Tensor, list[list[torch.Tensor | None]]]:
        params = [*self.shared, *self.specific]
        shared_rows, specific = [], []
        for k in range(len(losses)):
            grads = torch.autograd.grad(losses[k], params, retain_graph=k < len(losses) - 1, allow_unused=True)
            shared_rows.append(flat(list(grads[: len(self.shared)]), self.shared))
            specific.append(list(grads[len(self.shared):]))
        return torch.stack(shared_rows).float(), specific

    def backward(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grads, specific = self.task_gradients(losses)
        update, weights = self.combine(grads, losses.detach())
        # a method's formula can divide by zero on degenerate gradients (all zero, exactly parallel);
        # no step may then write NaN into the weights: what is not finite contributes nothing (an
        # identity on finite values, so it changes no regular step's bits)
        update, weights = finite(update), finite(weights)
        assign(self.shared, update)
        scale = self.head_scales(losses.detach(), weights)
        for i, p in enumerate(self.specific):
            parts = [s[i] * c for s, c in zip(specific, scale) if s[i] is not None]
            p.grad = torch.stack(parts).sum(0) if parts else torch.zeros_like(p)
        return self.total(losses.detach()), weights.detach()

    def combine(self, grads: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def head_scales(self, losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """What each task's head gradient is multiplied by (see the class docstring)."""
        return weights if self.weights_scale_specific else torch.ones_like(weights)
