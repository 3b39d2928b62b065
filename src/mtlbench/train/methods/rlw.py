"""Random Loss Weighting (Lin et al., TMLR 2022, "Reasonable effectiveness of random weighting:
a litmus test for multi-task learning")."""

from __future__ import annotations

import torch

from mtlbench.train.methods.loss_level import LossLevel


class RandomLossWeighting(LossLevel):
    """Each step draws w = softmax(z), z ~ N(0, I_K), and trains on sum_k w_k L_k. The draw comes
    from torch's generator on the losses' device (seeded by the fit, captured by CUDA graphs), so
    a run is reproducible. `total` (validation) is the mean loss, the draw's expectation."""

    paper = "Lin et al., TMLR 2022"
    reference = "LibMTL LibMTL/weighting/RLW.py (backward)"
    deviations = "validation's total is the mean loss (the draw's expectation)"

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.register_buffer("drawn", torch.full((n_tasks,), 1.0 / n_tasks))

    def draw(self, device: torch.device) -> None:
        self.drawn.copy_(torch.softmax(torch.randn(self.n_tasks, device=device), dim=0))

    def backward(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.draw(losses.device)
        (self.drawn * losses).sum().backward()
        return losses.detach().mean(), self.drawn.clone()  # recorded as validation computes it

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return losses.mean()

    def effective_weights(self, losses: torch.Tensor) -> torch.Tensor:
        return self.drawn.clone()
