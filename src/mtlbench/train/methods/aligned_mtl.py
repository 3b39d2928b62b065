"""Aligned-MTL (Senushkin et al., CVPR 2023, "Independent component alignment for multi-task
learning")."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import GradientMethod


class AlignedMTL(GradientMethod):
    """The task gradients G are made orthogonal and of equal norm, the smallest singular value's:
    with G G^T = V L V^T, B = sqrt(l_min) V L^{-1/2} V^T and the update is the sum of the rows of
    B G, i.e. weights a = B^T 1. Directions with eigenvalue below a relative tolerance are left out
    (rank-deficient G). eigh is not graph-capturable on CUDA (it checks convergence on the host), so
    this method runs eagerly."""

    paper = "Senushkin et al., CVPR 2023"
    reference = "LibMTL LibMTL/weighting/Aligned_MTL.py (backward)"
    deviations = "none (tests/test_method_references.py)"

    graph_safe = False

    def combine(self, grads, losses):
        gram = grads @ grads.T
        values, vectors = torch.linalg.eigh(gram.double())
        tol = values.max() * len(gram) * torch.finfo(torch.float32).eps
        kept = values > tol
        inv_sqrt = torch.where(kept, values.clamp(min=1e-300).rsqrt(), torch.zeros_like(values))
        smallest = torch.where(kept, values, torch.full_like(values, float("inf"))).min().sqrt()
        b = smallest * vectors @ torch.diag(inv_sqrt) @ vectors.T
        weights = b.sum(0).to(grads.dtype)
        return weights @ grads, weights
