"""How a multitask model's task losses combine into one training loss (SPEC.md section 5).

One interface for every scheme: a module called with the task losses (a [K] tensor) that returns
the total, reports the effective weight of each task (d total / d loss_k at the current losses),
and hears the epoch's mean task losses at each epoch's end. Weights live in device buffers or
parameters and change in place, so a captured CUDA graph sees them change.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class LossCombination(nn.Module):
    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def effective_weights(self, losses: torch.Tensor) -> torch.Tensor:
        """d total / d loss_k at `losses` (a [K] tensor)."""
        raise NotImplementedError

    def end_epoch(self, epoch_losses: torch.Tensor) -> None:
        """The epoch's mean training loss per task (only DWA uses it)."""


class Weighted(LossCombination):
    """Fixed weights: total = sum_k w_k L_k. `sum` is all ones, `mean` all 1/K."""

    def __init__(self, weights: Sequence[float]):
        super().__init__()
        self.register_buffer("weights", torch.tensor([float(w) for w in weights]))

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return (self.weights * losses).sum()

    def effective_weights(self, losses: torch.Tensor) -> torch.Tensor:
        return self.weights.clone()


class GeometricMean(LossCombination):
    """total = (prod_k L_k)^(1/K), computed as exp(mean(log L_k)); d total / d L_k = total / (K L_k),
    so a task whose loss is small gets a large weight (it balances tasks of different scales)."""

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.exp(torch.log(losses).mean())

    def effective_weights(self, losses: torch.Tensor) -> torch.Tensor:
        return self.forward(losses) / (len(losses) * losses)


class Uncertainty(LossCombination):
    """Kendall et al. 2018 as SPEC.md writes it: total = sum_k L_k / (2 s_k^2) + log s_k with s_k
    learned. Parameterised by log_var_k = log s_k^2 (stable, unconstrained; starts at 0, s_k = 1):
    total = sum_k 0.5 exp(-log_var_k) L_k + 0.5 log_var_k. Its parameters train with the model's."""

    def __init__(self, n_tasks: int):
        super().__init__()
        self.log_var = nn.Parameter(torch.zeros(n_tasks))

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return (0.5 * torch.exp(-self.log_var) * losses + 0.5 * self.log_var).sum()

    def effective_weights(self, losses: torch.Tensor) -> torch.Tensor:
        return (0.5 * torch.exp(-self.log_var)).detach().clone()


class DynamicWeightAverage(LossCombination):
    """Liu et al. 2019: w_k(t) = K softmax_k(r_k(t-1) / T), r_k(t-1) = L_k(t-1) / L_k(t-2), from the
    epochs' mean training losses; all weights 1 for the first two epochs. Weights sum to K."""

    def __init__(self, n_tasks: int, temperature: float = 2.0):
        super().__init__()
        self.temperature = temperature
        self.register_buffer("weights", torch.ones(n_tasks))
        self.history: list[torch.Tensor] = []

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return (self.weights * losses).sum()

    def effective_weights(self, losses: torch.Tensor) -> torch.Tensor:
        return self.weights.clone()

    def end_epoch(self, epoch_losses: torch.Tensor) -> None:
        self.history.append(epoch_losses.detach().to(self.weights.device, torch.float32))
        if len(self.history) >= 2:
            ratio = self.history[-1] / self.history[-2]
            with torch.no_grad():
                self.weights.copy_(len(ratio) * torch.softmax(ratio / self.temperature, dim=0))


SCHEMES = ("sum", "mean", "fixed", "geometric", "uncertainty", "dwa")


def make_combination(scheme: str, n_tasks: int, fixed: Sequence[float] | None = None) -> LossCombination:
    if scheme == "sum":
        return Weighted([1.0] * n_tasks)
    if scheme == "mean":
        return Weighted([1.0 / n_tasks] * n_tasks)
    if scheme == "fixed":
        if fixed is None or len(fixed) != n_tasks:
            raise ValueError(f"fixed weighting needs {n_tasks} weights, got {fixed!r}")
        return Weighted(fixed)
    if scheme == "geometric":
        return GeometricMean()
    if scheme == "uncertainty":
        return Uncertainty(n_tasks)
    if scheme == "dwa":
        return DynamicWeightAverage(n_tasks)
    raise ValueError(f"loss combination {scheme!r}; allowed: {', '.join(SCHEMES)}")
