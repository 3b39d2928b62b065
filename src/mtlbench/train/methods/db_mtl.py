"""DB-MTL (Lin et al., 2023, "Dual-balancing for multi-task learning")."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import GradientMethod, MethodError, span_weights

HEADS = ("log", "loss")


class DBMTL(GradientMethod):
    """Loss scales balanced by the logarithm: task k contributes the gradient of log L_k, which is
    g_k / L_k. Gradient magnitudes balanced after an EMA of those gradients (h starts at 0) whose
    rate decays with the step t, as the authors' code does: h_k <- g_k / L_k + b_t (h_k - g_k / L_k),
    b_t = beta / t^sigma; then each h_k is scaled to the largest norm:
    update = sum_k (max_j |h_j| / |h_k|) h_k. The heads get the gradient of log L_k (`heads="log"`,
    the authors' code, where the backward pass of log L_k reaches them) or of L_k (`heads="loss"`).
    sigma defaults to 0.5: LibMTL's default 0 (a constant b = 0.9) lags the update behind the
    weights under Adam, and on mnist_fashion_hps it stalled at chance-like accuracy."""

    paper = "Lin et al. 2023"
    reference = "LibMTL LibMTL/weighting/DB_MTL.py (backward)"
    deviations = "sigma = 0.5 where LibMTL's default DB_beta_sigma is 0 (see the class docstring)"

    def __init__(self, n_tasks: int, beta: float = 0.9, sigma: float = 0.5, heads: str = "log"):
        super().__init__(n_tasks)
        if heads not in HEADS:
            raise MethodError(f"method db_mtl: heads {heads!r}; allowed: {', '.join(HEADS)}")
        self.beta, self.sigma, self.heads = beta, sigma, heads
        self.register_buffer("step", torch.zeros(()))

    def on_bind(self, n_shared: int) -> None:
        self.register_buffer("history", torch.zeros(self.n_tasks, n_shared, device=self.shared[0].device))

    def combine(self, grads, losses):
        inverse = 1.0 / (losses.to(grads.dtype) + 1e-8)  # d log L / d L, the authors' 1e-8
        log_grads = grads * inverse.view(-1, 1)
        self.step += 1
        rate = self.beta / self.step**self.sigma
        self.history.copy_(log_grads + rate * (self.history - log_grads))
        norms = self.history.norm(dim=1)
        update = (norms.max() / (norms + 1e-8)) @ self.history
        return update, span_weights(grads, update)

    def head_scales(self, losses, weights):
        return 1.0 / (losses + 1e-8) if self.heads == "log" else torch.ones_like(weights)
