"""PCGrad (Yu et al., NeurIPS 2020, "Gradient surgery for multi-task learning")."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import GradientMethod, span_weights


class PCGrad(GradientMethod):
    """Each task's gradient g_i, against the other tasks' original gradients g_j in a random order,
    loses its component along g_j where they conflict (g_i . g_j < 0):
    g_i <- g_i - (g_i . g_j / |g_j|^2) g_j; the update is the sum of the projected gradients. The
    order comes from torch's device generator (for two tasks it does not matter)."""

    paper = "Yu et al., NeurIPS 2020"
    reference = "LibMTL LibMTL/weighting/PCGrad.py (backward)"
    deviations = "none (tests/test_method_references.py; the random order comes from torch's generator)"

    def combine(self, grads, losses):
        k = len(grads)
        projected = grads.clone()
        order = torch.argsort(torch.rand(k, k, device=grads.device), dim=1)  # row i: task i's order
        squared = (grads * grads).sum(1).clamp(min=1e-30)
        for i in range(k):
            for r in range(k):
                j = order[i, r]
                g_j = grads[j]
                dot = projected[i] @ g_j
                coef = torch.where((dot < 0) & (j != i), dot / squared[j], torch.zeros_like(dot))
                projected[i] = projected[i] - coef * g_j
        update = projected.sum(0)
        return update, span_weights(grads, update)
