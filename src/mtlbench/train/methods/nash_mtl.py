"""Nash-MTL (Navon et al., ICML 2022, "Multi-task learning as a bargaining game")."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import GradientMethod

NEWTON_STEPS = 20
ZERO_GRADIENT = 1e-12  # a task's squared gradient norm below this share of the Frobenius norm of G G^T


class NashMTL(GradientMethod):
    """The Nash bargaining solution: weights a > 0 with G G^T a = 1 / a on the raw Gram matrix, so
    every task's share a_k g_k . g is equal; the update is sum_k a_k g_k, and the shared parameters'
    gradient is clipped to norm `max_norm` (the authors' 1.0; 0 turns the clip off). The authors
    divide G G^T by its Frobenius norm F and multiply F back into their constraint
    (-log(a_i F) - log((G G^T a)_i / F) <= 0), so the normalisation only conditions their solver;
    here the normalised equation M b = 1 / b is solved by damped Newton steps and a = b / sqrt(F)
    (the authors run up to 20 convex-concave rounds with cvxpy, which cannot run inside a CUDA
    graph; where those converge the two agree). A task whose shared gradient is zero has no
    bargaining share: it keeps the weight 1, the authors' initial alpha (their solver, infeasible
    then, keeps its last weights for every task). Losses are reweighted too, so the heads get a_k
    times their gradient, unclipped, as in the authors' backward."""

    weights_scale_specific = True
    paper = "Navon et al., ICML 2022"
    reference = "AvivNavon/nash-mtl methods/weight_methods.py lines 99-270; LibMTL LibMTL/weighting/Nash_MTL.py (backward)"
    deviations = ("the authors' raw equation G G^T a = 1/a (their Frobenius normalisation only conditions their "
                  "solver); solved by Newton steps instead of cvxpy rounds warm-started from the last "
                  "step's weights; a zero-gradient task gets weight 1 where the authors keep the last feasible "
                  "weights of every task")

    def __init__(self, n_tasks: int, max_norm: float = 1.0, steps: int = NEWTON_STEPS):
        super().__init__(n_tasks)
        self.max_norm, self.steps = max_norm, steps

    def solve(self, gram: torch.Tensor) -> torch.Tensor:
        frobenius = torch.linalg.matrix_norm(gram.double()).clamp(min=1e-300)
        m = gram.double() / frobenius
        active = m.diagonal() > ZERO_GRADIENT
        # zero-gradient tasks decouple: their rows and columns become the identity's (b_k = 1)
        keep = active.view(-1, 1) & active.view(1, -1)
        eye = torch.eye(len(m), dtype=m.dtype, device=m.device)
        m = torch.where(keep, m, eye)
        b = 1.0 / m.diagonal().sqrt()  # exact when the gradients are orthogonal
        for _ in range(self.steps):
            residual = m @ b - 1.0 / b
            jacobian = m + torch.diag(1.0 / b**2)
            step = torch.linalg.solve_ex(jacobian, residual)[0]
            b = torch.maximum(b - step, b * 0.1)  # stay positive
        # back to the raw equation G G^T a = 1 / a; a zero-gradient task keeps 1
        a = torch.where(active, b / frobenius.sqrt(), torch.ones_like(b))
        return a.to(gram.dtype)

    def combine(self, grads, losses):
        weights = self.solve(grads @ grads.T)
        update = weights @ grads
        if self.max_norm > 0:  # torch.nn.utils.clip_grad_norm_'s rule, as the authors call it
            update = update * (self.max_norm / (update.norm() + 1e-6)).clamp(max=1.0)
        return update, weights
