"""Geometric mean of the task losses (Chennupati et al. 2019, "MultiNet++"; SPEC.md section 5)."""

from __future__ import annotations

import torch

from mtlbench.train.methods.loss_level import LossLevel


class GeometricMean(LossLevel):
    """total = (prod_k L_k)^(1/K), computed as exp(mean(log L_k)); d total / d L_k = total / (K L_k),
    so a task whose loss is small gets a large weight (it balances tasks of different scales)."""

    paper = "Chennupati et al. 2019"
    reference = "LibMTL LibMTL/weighting/GLS.py (backward)"
    deviations = "none (tests/test_method_references.py)"

    def __init__(self, n_tasks: int = 0):
        super().__init__(n_tasks)

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.exp(torch.log(losses).mean())

    def effective_weights(self, losses: torch.Tensor) -> torch.Tensor:
        return self.forward(losses) / (len(losses) * losses)
