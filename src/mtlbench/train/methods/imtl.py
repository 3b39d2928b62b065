"""IMTL-G (Liu et al., ICLR 2021, "Towards impartial multi-task learning"), the gradient part."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import GradientMethod

ZERO_GRADIENT = 1e-12  # a gradient norm below this share of the largest counts as zero


class IMTL(GradientMethod):
    """Weights a (summing to 1) such that the update g = sum_k a_k g_k has the same projection on
    every task's unit gradient u_k: g . (u_r - u_k) = 0 for every k != r, sum_k a_k = 1. The
    reference task r is the one with the largest gradient (the authors take the first: the same
    equations whenever no gradient is zero). A task whose gradient is zero has no direction to be
    impartial to: it gets weight 0 and the others share the update, where the authors' formula
    divides by zero (or, with the zero task as reference, gives a zero update). (The paper's
    loss-scale half, IMTL-L, is not included: it is uncertainty-like loss scaling, see `uncertainty`.)"""

    paper = "Liu et al., ICLR 2021"
    reference = "LibMTL LibMTL/weighting/IMTL.py (backward: alpha = g_1 U^T (D U^T)^-1)"
    deviations = ("IMTL-L (the learned loss scale) left out; zero-gradient tasks get weight 0; identical or parallel "
                  "gradients get uniform weights where the authors' inverse is singular")

    def combine(self, grads, losses):
        k = len(grads)
        norms = grads.norm(dim=1)
        alive = norms > ZERO_GRADIENT * norms.max()
        units = grads / norms.clamp(min=1e-30).view(-1, 1)
        ref = torch.argmax(norms)
        rows = (units[ref].view(1, -1) - units) @ grads.T  # row k: g_j . (u_r - u_k) for every j
        eye = torch.eye(k, device=grads.device, dtype=grads.dtype)
        is_ref = torch.arange(k, device=grads.device) == ref
        system = torch.where(alive.view(-1, 1), rows, eye)  # a dead task's row: a_k = 0
        system = torch.where(is_ref.view(-1, 1), torch.ones_like(rows), system)  # the reference's row: sum a = 1
        rhs = is_ref.to(grads.dtype)
        weights = torch.linalg.solve_ex(system, rhs)[0]
        # identical or exactly parallel gradients make the system singular: every a summing to 1 is
        # then impartial, and the uniform one is the answer that treats the tasks alike
        uniform = alive.to(grads.dtype) / alive.sum().clamp(min=1)
        ok = torch.isfinite(weights).all() & (weights.abs().max() < 1e6)
        weights = torch.where(ok, weights, uniform)
        return weights @ grads, weights
