"""Nash-MTL (Navon et al., ICML 2022, "Multi-task learning as a bargaining game")."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import GradientMethod

NEWTON_STEPS = 20


class NashMTL(GradientMethod):
    """The Nash bargaining solution: weights a > 0 with (G G^T) a = 1 / a, so every task's share
    a_k g_k . g is 1; the update is sum_k a_k g_k. Solved by a fixed number of damped Newton steps
    on F(a) = M a - 1/a (the authors solve a sequence of convex problems with cvxpy, which cannot
    run inside a CUDA graph). Losses are reweighted too, so the heads get a_k times their gradient."""

    weights_scale_specific = True

    def __init__(self, n_tasks: int, steps: int = NEWTON_STEPS):
        super().__init__(n_tasks)
        self.steps = steps

    def solve(self, gram: torch.Tensor) -> torch.Tensor:
        scale = gram.diagonal().mean().clamp(min=1e-30)
        m = gram / scale  # solve for a unit-scale M, then a = a' / sqrt(scale)
        a = 1.0 / m.diagonal().clamp(min=1e-12).sqrt()  # exact when the gradients are orthogonal
        for _ in range(self.steps):
            residual = m @ a - 1.0 / a
            jacobian = m + torch.diag(1.0 / a**2)
            step = torch.linalg.solve_ex(jacobian, residual)[0]
            a = torch.maximum(a - step, a * 0.1)  # stay positive
        return a / scale.sqrt()

    def combine(self, grads, losses):
        weights = self.solve(grads @ grads.T)
        return weights @ grads, weights
