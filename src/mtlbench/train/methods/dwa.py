"""Dynamic Weight Average (Liu, Johns and Davison, CVPR 2019, "End-to-end multi-task learning
with attention")."""

from __future__ import annotations

import torch

from mtlbench.train.methods.loss_level import LossLevel


class DynamicWeightAverage(LossLevel):
    """w_k(t) = K softmax_k(r_k(t-1) / T), r_k(t-1) = L_k(t-1) / L_k(t-2), from the epochs' mean
    training losses; all weights 1 for the first two epochs. Weights sum to K."""

    paper = "Liu et al., CVPR 2019"
    reference = "LibMTL LibMTL/weighting/DWA.py (backward, T = 2)"
    deviations = "none (tests/test_method_references.py)"

    def __init__(self, n_tasks: int, temperature: float = 2.0):
        super().__init__(n_tasks)
        self.temperature = temperature
        self.register_buffer("weights", torch.ones(n_tasks))
        self.history: list[torch.Tensor] = []  # changes at epoch ends only, never inside a step

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
