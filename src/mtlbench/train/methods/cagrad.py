"""Conflict-Averse Gradient descent (Liu et al., NeurIPS 2021, "Conflict-averse gradient descent
for multi-task learning")."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import GradientMethod
from mtlbench.train.methods.simplex import cagrad_weights


class CAGrad(GradientMethod):
    """g0 = mean task gradient. The weights w on the simplex minimise g_w . g0 + sqrt(phi) |g_w|
    (g_w = sum w_k g_k, phi = c^2 |g0|^2), solved to convergence on the K x K Gram matrix
    (train/methods/simplex.py: closed form for two tasks, interior-point Newton beyond; the authors
    use scipy's SLSQP, which cannot run inside a CUDA graph); the update is
    (g0 + sqrt(phi) g_w / |g_w|) / (1 + c^2) (the authors' rescale=1)."""

    paper = "Liu et al., NeurIPS 2021"
    reference = "LibMTL LibMTL/weighting/CAGrad.py (backward, rescale=1)"
    deviations = ("inner problem (LibMTL's objective and constants, its 1e-8 under the square root on the raw scale) "
                  "solved in closed form (K = 2) or by interior-point Newton (K >= 3) instead of scipy's SLSQP, to the "
                  "exact optimum; the update's lambda = c |g0| / |g_w| without LibMTL's three 1e-8 terms (1e-6 relative "
                  "at gradient norm 1e-2) and 0 where g_w = 0; c = 0.4 where LibMTL's default calpha is 0.5")

    def __init__(self, n_tasks: int, c: float = 0.4):
        super().__init__(n_tasks)
        self.c = c

    def combine(self, grads, losses):
        gram = grads @ grads.T
        w = cagrad_weights(gram, self.c).to(grads.dtype)
        k = len(grads)
        g_w_norm = (w @ gram @ w).clamp(min=0).sqrt()
        sqrt_phi = self.c * gram.mean().clamp(min=0).sqrt()
        # g_w = 0 (the weights sit on zero gradients): its direction is undefined and the authors'
        # lambda = c |g0| / (|g_w| + 1e-8) multiplies a zero vector; it adds nothing here either,
        # and no weight of order 1e8 is reported for it
        scale = gram.diagonal().mean().clamp(min=0).sqrt()
        lam = torch.where(g_w_norm > 1e-6 * scale, sqrt_phi / g_w_norm.clamp(min=1e-30), torch.zeros_like(g_w_norm))
        weights = (1.0 / k + lam * w) / (1 + self.c**2)
        return weights @ grads, weights
