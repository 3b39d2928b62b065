"""Gradient Vaccine (Wang et al., ICLR 2021, "Gradient vaccine: investigating and improving
multi-task optimization in massively multilingual models"), on the whole shared gradient."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import GradientMethod, span_weights


class GradVac(GradientMethod):
    """Each pair of tasks keeps a target cosine similarity phi_ij (an EMA with rate `beta` of the
    similarities seen, starting at 0). Where g_i's similarity phi to g_j is below target, g_i gains
    a multiple of g_j that lifts the similarity to the target:
    g_i += g_j |g_i| (t sqrt(1 - phi^2) - phi sqrt(1 - t^2)) / (|g_j| sqrt(1 - t^2)).
    With all targets 0 this is PCGrad's projection. The update is the sum of the altered g_i."""

    paper = "Wang et al., ICLR 2021"
    reference = "LibMTL LibMTL/weighting/GradVac.py (backward, GradVac_group_type 0: whole model)"
    deviations = "none (tests/test_method_references.py, over several steps)"

    def __init__(self, n_tasks: int, beta: float = 0.5):
        super().__init__(n_tasks)
        self.beta = beta
        self.register_buffer("target", torch.zeros(n_tasks, n_tasks))

    def combine(self, grads, losses):
        k = len(grads)
        altered = grads.clone()
        norms = grads.norm(dim=1).clamp(min=1e-30)
        order = torch.argsort(torch.rand(k, k, device=grads.device), dim=1)
        for i in range(k):
            for r in range(k):
                j = order[i, r]
                g_i, g_j = altered[i], grads[j]
                phi = (g_i @ g_j) / (g_i.norm().clamp(min=1e-30) * norms[j])
                t = self.target[i, j]
                lift = g_i.norm() * (t * (1 - phi**2).clamp(min=0).sqrt() - phi * (1 - t**2).clamp(min=0).sqrt())
                lift = lift / (norms[j] * (1 - t**2).clamp(min=1e-30).sqrt())
                below = (phi < t) & (j != i)
                altered[i] = g_i + torch.where(below, lift, torch.zeros_like(lift)) * g_j
                ema = (1 - self.beta) * t + self.beta * phi
                self.target[i, j] = torch.where(j != i, ema, t)
        update = altered.sum(0)
        return update, span_weights(grads, update)
