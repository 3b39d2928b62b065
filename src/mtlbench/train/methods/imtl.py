"""IMTL-G (Liu et al., ICLR 2021, "Towards impartial multi-task learning"), the gradient part."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import GradientMethod


class IMTL(GradientMethod):
    """Weights a (summing to 1) such that the update g = sum_k a_k g_k has the same projection on
    every task's unit gradient u_k: with D = [g_1 - g_k]_{k>1} and U = [u_1 - u_k]_{k>1},
    a_{2..K} = g_1 U^T (D U^T)^{-1} and a_1 = 1 - sum a_{2..K}. (The paper's loss-scale half,
    IMTL-L, is not included: it is uncertainty-like loss scaling, see `uncertainty`.)"""

    def combine(self, grads, losses):
        units = grads / grads.norm(dim=1, keepdim=True).clamp(min=1e-30)
        d, u = grads[:1] - grads[1:], units[:1] - units[1:]
        rest = torch.linalg.solve_ex((d @ u.T).T, (grads[0] @ u.T))[0]  # a D U^T = g_1 U^T
        weights = torch.cat([1 - rest.sum().view(1), rest])
        # identical or exactly parallel gradients make D U^T singular: every a summing to 1 is then
        # impartial, and the uniform one is the answer that treats the tasks alike
        uniform = torch.full_like(weights, 1.0 / len(weights))
        weights = torch.where(torch.isfinite(weights).all(), weights, uniform)
        return weights @ grads, weights
