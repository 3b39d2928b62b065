"""DB-MTL (Lin et al., 2023, "Dual-balancing for multi-task learning")."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import GradientMethod, span_weights


class DBMTL(GradientMethod):
    """Loss scales balanced by the logarithm: task k contributes the gradient of log L_k, which is
    g_k / L_k. Gradient magnitudes balanced after an EMA of those gradients (h starts at 0):
    h_k <- g_k / L_k + beta (h_k - g_k / L_k), then each h_k is scaled to the largest norm:
    update = sum_k (max_j |h_j| / |h_k|) h_k."""

    def __init__(self, n_tasks: int, beta: float = 0.9):
        super().__init__(n_tasks)
        self.beta = beta

    def on_bind(self, n_shared: int) -> None:
        self.register_buffer("history", torch.zeros(self.n_tasks, n_shared, device=self.shared[0].device))

    def combine(self, grads, losses):
        log_grads = grads / (losses.view(-1, 1).to(grads.dtype) + 1e-8)
        self.history.copy_(log_grads + self.beta * (self.history - log_grads))
        norms = self.history.norm(dim=1)
        update = (norms.max() / (norms + 1e-8)) @ self.history
        return update, span_weights(grads, update)
