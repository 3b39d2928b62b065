"""Conflict-Averse Gradient descent (Liu et al., NeurIPS 2021, "Conflict-averse gradient descent
for multi-task learning")."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import GradientMethod

SOLVER_STEPS = 100


class CAGrad(GradientMethod):
    """g0 = mean task gradient. The weights w on the simplex minimise g_w . g0 + sqrt(phi) |g_w|
    (g_w = sum w_k g_k, phi = c^2 |g0|^2), found by a fixed number of exponentiated-gradient steps
    on the K x K Gram matrix (the authors use scipy's SLSQP, which cannot run inside a CUDA graph);
    the update is (g0 + sqrt(phi) g_w / |g_w|) / (1 + c^2) (the authors' rescale=1)."""

    def __init__(self, n_tasks: int, c: float = 0.4, steps: int = SOLVER_STEPS, lr: float = 1.0):
        super().__init__(n_tasks)
        self.c, self.steps, self.lr = c, steps, lr

    def solve(self, gram: torch.Tensor) -> torch.Tensor:
        k = len(gram)
        g0_gram = gram.mean(1)  # G g0
        sqrt_phi = self.c * gram.mean().clamp(min=0).sqrt()  # c |g0|
        scale = gram.diagonal().mean().clamp(min=1e-30)  # a step size that does not depend on the gradients' scale
        w = torch.full((k,), 1.0 / k, device=gram.device, dtype=gram.dtype)
        for _ in range(self.steps):
            norm = (w @ gram @ w).clamp(min=1e-30).sqrt()
            grad = g0_gram + sqrt_phi * (gram @ w) / norm  # d/dw of g_w.g0 + sqrt(phi) |g_w|
            w = w * torch.exp(-self.lr * grad / scale)
            w = w / w.sum()
        return w

    def combine(self, grads, losses):
        gram = grads @ grads.T
        w = self.solve(gram)
        k = len(grads)
        g_w_norm = (w @ gram @ w).clamp(min=1e-30).sqrt()
        sqrt_phi = self.c * gram.mean().clamp(min=0).sqrt()
        weights = (1.0 / k + sqrt_phi * w / g_w_norm) / (1 + self.c**2)
        return weights @ grads, weights
