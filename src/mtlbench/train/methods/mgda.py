"""MGDA (Sener and Koltun, NeurIPS 2018, "Multi-task learning as multi-objective optimization"):
the update is the min-norm point of the convex hull of the task gradients, a common descent
direction. `MGDA` uses the gradients of the shared parameters; `MGDAUB` the paper's upper bound,
the gradients of the shared representation (one backward pass to the representation per task
instead of through the trunk), then one backward pass of the weighted loss."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import GradientMethod, Method

FRANK_WOLFE_STEPS = 250  # LibMTL's MinNormSolver.MAX_ITER


def min_norm_weights(gram: torch.Tensor, steps: int = FRANK_WOLFE_STEPS) -> torch.Tensor:
    """argmin over the simplex of a^T M a (M = G G^T), by Frank-Wolfe with exact line search
    (Sener and Koltun's Algorithm 2) and a fixed number of steps, all tensor operations. For two
    tasks the first step is the closed form a_1 = clamp((g2 - g1).g2 / |g1 - g2|^2, 0, 1)."""
    k = len(gram)
    a = torch.full((k,), 1.0 / k, device=gram.device, dtype=gram.dtype)
    eye = torch.eye(k, device=gram.device, dtype=gram.dtype)
    for _ in range(steps):
        e = eye[torch.argmin(gram @ a)]  # the vertex of steepest descent
        # min over g in [0, 1] of |(1 - g) v + g u|^2 with v = G^T a, u = G^T e
        vv, uu, uv = a @ gram @ a, e @ gram @ e, a @ gram @ e
        denom = vv + uu - 2 * uv
        gamma = torch.where(denom > 0, ((vv - uv) / denom.clamp(min=1e-30)).clamp(0, 1), torch.zeros_like(denom))
        a = (1 - gamma) * a + gamma * e
    return a


class MGDA(GradientMethod):
    def combine(self, grads, losses):
        weights = min_norm_weights(grads @ grads.T)
        return weights @ grads, weights


class MGDAUB(Method):
    """MGDA-UB: weights from the gradients of the shared representation z (the model stores it as
    `representation` in forward), then backward of sum_k a_k L_k through the whole model."""

    needs_representation = True
    min_tasks = 2

    def bind(self, model, trained):
        super().bind(model, trained)
        model.keep_representation = True

    def backward(self, losses):
        z = self.model[0].__dict__.pop("representation")
        rows = [torch.autograd.grad(losses[k], z, retain_graph=True)[0].reshape(-1) for k in range(len(losses))]
        grads = torch.stack(rows).float()
        weights = min_norm_weights(grads @ grads.T).detach()
        (weights * losses).sum().backward()
        return losses.detach().sum(), weights
