"""DB-MTL (Lin et al., 2023, "Dual-balancing for multi-task learning")."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import GradientMethod, span_weights


class DBMTL(GradientMethod):
    """Loss scales balanced by the logarithm: task k contributes the gradient of log L_k, which is
    g_k / L_k. Gradient magnitudes balanced after an EMA of those gradients (h starts at 0) whose
    rate decays with the step t, as the authors' code does: h_k <- g_k / L_k + b_t (h_k - g_k / L_k),
    b_t = beta / t^sigma; then each h_k is scaled to the largest norm:
    update = sum_k (max_j |h_j| / |h_k|) h_k. (A constant b = 0.9, sigma = 0, lags the update
    behind the weights under Adam: on mnist_fashion_hps it stalled at chance-like accuracy.)"""

    def __init__(self, n_tasks: int, beta: float = 0.9, sigma: float = 0.5):
        super().__init__(n_tasks)
        self.beta, self.sigma = beta, sigma
        self.register_buffer("step", torch.zeros(()))

    def on_bind(self, n_shared: int) -> None:
        self.register_buffer("history", torch.zeros(self.n_tasks, n_shared, device=self.shared[0].device))

    def combine(self, grads, losses):
        log_grads = grads / (losses.view(-1, 1).to(grads.dtype) + 1e-8)
        self.step += 1
        rate = self.beta / self.step**self.sigma
        self.history.copy_(log_grads + rate * (self.history - log_grads))
        norms = self.history.norm(dim=1)
        update = (norms.max() / (norms + 1e-8)) @ self.history
        return update, span_weights(grads, update)
