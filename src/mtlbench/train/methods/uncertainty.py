"""Uncertainty weighting (Kendall, Gal and Cipolla, CVPR 2018, "Multi-task learning using
uncertainty to weigh losses")."""

from __future__ import annotations

import torch
from torch import nn

from mtlbench.train.methods.loss_level import LossLevel


class Uncertainty(LossLevel):
    """As SPEC.md writes it: total = sum_k L_k / (2 s_k^2) + log s_k with s_k learned.
    Parameterised by log_var_k = log s_k^2 (stable, unconstrained; starts at 0, s_k = 1):
    total = sum_k 0.5 exp(-log_var_k) L_k + 0.5 log_var_k. Its parameters train with the model's.
    The paper gives no start; `log_var_init` = 0 is s_k = 1 (weight 0.5); LibMTL starts at -0.5
    (weight 0.824): `log_var_init=-0.5` gives its start."""

    paper = "Kendall et al., CVPR 2018"
    reference = "Kendall et al. 2018, eq. 7; LibMTL LibMTL/weighting/UW.py (init_param, backward)"
    deviations = "starts at log s^2 = 0 (weight 0.5) where LibMTL starts at -0.5 (weight 0.824); option log_var_init"

    def __init__(self, n_tasks: int, log_var_init: float = 0.0):
        super().__init__(n_tasks)
        self.log_var = nn.Parameter(torch.full((n_tasks,), float(log_var_init)))

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return (0.5 * torch.exp(-self.log_var) * losses + 0.5 * self.log_var).sum()

    def effective_weights(self, losses: torch.Tensor) -> torch.Tensor:
        return (0.5 * torch.exp(-self.log_var)).detach().clone()
