"""Loss-level methods: the task losses combine into one scalar whose backward() is the step
(SPEC.md section 5). `effective_weights` is d total / d loss_k at the step's losses, which is what
the step weighted each task by. Weights live in device buffers or parameters and change in place,
so a captured CUDA graph sees them change. `Weighted` (fixed weights: sum, mean, fixed) lives here."""

from __future__ import annotations

from typing import Sequence

import torch

from mtlbench.train.methods.base import Method


class LossLevel(Method):
    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        """The combined loss (differentiable)."""
        raise NotImplementedError

    def effective_weights(self, losses: torch.Tensor) -> torch.Tensor:
        """d total / d loss_k at `losses` (a [K] tensor)."""
        raise NotImplementedError

    def backward(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.effective_weights(losses.detach()).detach()
        total = self(losses)
        total.backward()
        return total.detach(), weights

    def total(self, losses: torch.Tensor) -> torch.Tensor:
        return self(losses)


class Weighted(LossLevel):
    """Fixed weights: total = sum_k w_k L_k. `sum` is all ones, `mean` all 1/K."""

    paper = "SPEC.md section 5"
    reference = "LibMTL LibMTL/weighting/EW.py (equal weighting)"
    deviations = "none"

    def __init__(self, weights: Sequence[float]):
        super().__init__(len(weights))
        self.register_buffer("weights", torch.tensor([float(w) for w in weights]))

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return (self.weights * losses).sum()

    def effective_weights(self, losses: torch.Tensor) -> torch.Tensor:
        return self.weights.clone()


def fixed(n_tasks: int, weights: Sequence[float] | None = None) -> Weighted:
    if weights is None or len(weights) != n_tasks:
        raise ValueError(f"fixed weighting needs {n_tasks} weights, got {weights!r}")
    return Weighted(weights)
