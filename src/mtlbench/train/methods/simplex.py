"""Weights on the probability simplex for the methods that solve a small convex problem per step
(MGDA's min-norm point, CAGrad's conflict-averse weights), solved to convergence with tensor
operations only, so that a captured CUDA-graph step can hold them.

K = 2 has closed forms. K >= 3 is solved by a log-barrier interior-point Newton method: minimise
f(w) - mu * sum_k log w_k subject to sum_k w = 1 for a falling mu, a fixed number of Newton steps
per mu, each step's length the best of a fixed ladder (a line search without a Python branch).
The problem is K x K (the Gram matrix of the task gradients), solved in float64: even 100 tasks cost
about a hundred small linear solves. The final barrier weight leaves a duality gap below
K * MU_FINAL of the unit-scale problem. That gap has to be small beside the optimum itself, not
only beside 1: with gradient norms 1e-2 to 1e2 the min-norm point's squared norm is about 1e-8 of
the mean squared norm, so 14 rounds (MU_FINAL 8e-10) left MGDA's update 10-70% from the exact
point; 30 rounds (MU_FINAL 5e-21) reach it. tests/test_method_references.py measures both
solvers against an exact conic solver (cvxpy with Clarabel) at such scales.
"""

from __future__ import annotations

from typing import Callable

import torch

MU_START, MU_FACTOR, MU_ROUNDS, NEWTON_PER_ROUND = 1.0, 0.2, 30, 3
MU_FINAL = MU_START * MU_FACTOR ** (MU_ROUNDS - 1)  # 5.4e-21 on the unit-scale problem
STEP_LADDER = (1.0, 0.5, 0.25, 0.1, 0.03, 0.01)

# f(w) -> (value, gradient, Hessian) of the smooth part, for one w or a batch [S, K] (value only)
Objective = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def unit_scale(gram: torch.Tensor) -> torch.Tensor:
    """The Gram matrix in float64 divided by its mean diagonal (the solvers' answers do not depend
    on the gradients' scale; a zero matrix stays zero)."""
    gram = gram.double()
    return gram / gram.diagonal().mean().clamp(min=1e-300)


def barrier_newton(objective: Objective, value: Callable[[torch.Tensor], torch.Tensor], k: int,
                   like: torch.Tensor) -> torch.Tensor:
    """argmin of a convex `objective` over the simplex of dimension k (see the module docstring)."""
    w = torch.full((k,), 1.0 / k, dtype=torch.float64, device=like.device)
    ones = torch.ones(k, 1, dtype=torch.float64, device=like.device)
    kkt_corner = torch.zeros(1, 1, dtype=torch.float64, device=like.device)
    ladder = torch.tensor(STEP_LADDER, dtype=torch.float64, device=like.device)
    for round_ in range(MU_ROUNDS):
        mu = MU_START * MU_FACTOR**round_
        for _ in range(NEWTON_PER_ROUND):
            _, grad, hess = objective(w)
            grad = grad - mu / w
            hess = hess + torch.diag(mu / w**2)
            kkt = torch.cat([torch.cat([hess, ones], 1), torch.cat([ones.T, kkt_corner], 1)], 0)
            rhs = torch.cat([-grad, torch.zeros(1, dtype=torch.float64, device=like.device)])
            step = torch.linalg.solve_ex(kkt, rhs)[0][:k]
            step = torch.nan_to_num(step, nan=0.0, posinf=0.0, neginf=0.0)
            # the longest step that keeps every weight positive (99% of the way to the boundary)
            to_boundary = torch.where(step < 0, -w / step.clamp(max=-1e-300), torch.full_like(w, 2.0)).min()
            longest = (0.99 * to_boundary).clamp(max=1.0)
            candidates = w + (ladder * longest).view(-1, 1) * step  # [S, K], all positive
            barrier = value(candidates) - mu * torch.log(candidates).sum(1)
            current = value(w.view(1, -1))[0] - mu * torch.log(w).sum()
            best = torch.argmin(barrier)
            w = torch.where(barrier[best] < current, candidates[best], w)
    return w


def min_norm_weights(gram: torch.Tensor) -> torch.Tensor:
    """MGDA: argmin over the simplex of w^T M w (M = G G^T, the min-norm point of the hull)."""
    m = unit_scale(gram)
    if len(m) == 1:
        return torch.ones(1, dtype=gram.dtype, device=gram.device)
    if len(m) == 2:
        # the segment's nearest point to the origin: a_1 = (g2 - g1).g2 / |g1 - g2|^2, clamped
        denom = m[0, 0] + m[1, 1] - 2 * m[0, 1]
        a1 = torch.where(denom > 1e-12, ((m[1, 1] - m[0, 1]) / denom.clamp(min=1e-12)).clamp(0, 1),
                         torch.full_like(denom, 0.5))
        return torch.stack([a1, 1 - a1]).to(gram.dtype)

    def objective(w):
        mw = m @ w
        return w @ mw, 2 * mw, 2 * m

    def value(ws):
        return ((ws @ m) * ws).sum(1)

    return barrier_newton(objective, value, len(m), m).to(gram.dtype)


def cagrad_weights(gram: torch.Tensor, c: float) -> torch.Tensor:
    """CAGrad: argmin over the simplex of the authors' objective g_w . g0 + cc sqrt(|g_w|^2 + 1e-8)
    (g_w = sum_k w_k g_k, g0 the mean task gradient, cc = c sqrt(|g0|^2 + 1e-8) + 1e-8, LibMTL's
    constants on the raw scale), solved on the unit scale: the whole objective divided by the mean
    squared norm d, so the 1e-8 becomes 1e-8 / d there and the argmin is the authors'."""
    raw = gram.double()
    d = raw.diagonal().mean().clamp(min=1e-300)
    m = raw / d
    k = len(m)
    b = m.mean(1)  # G g0 / d
    s = (c * (raw.mean().clamp(min=0) + 1e-8).sqrt() + 1e-8) / d.sqrt()  # cc / sqrt(d)
    eps = 1e-8 / d
    if k == 1:
        return torch.ones(1, dtype=gram.dtype, device=gram.device)
    if k == 2:
        return _cagrad_two(m, b, s, eps).to(gram.dtype)

    def objective(w):
        mw = m @ w
        norm = (w @ mw + eps).sqrt()
        hess = s * (m / norm - torch.outer(mw, mw) / norm**3)
        return w @ b + s * norm, b + s * mw / norm, hess

    def value(ws):
        return ws @ b + s * (((ws @ m) * ws).sum(1) + eps).sqrt()

    return barrier_newton(objective, value, k, m).to(gram.dtype)


def _cagrad_two(m: torch.Tensor, b: torch.Tensor, s: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """K = 2 in closed form. With w = (t, 1 - t): |g_w|^2 + eps = a t^2 + 2 b' t + c' + eps (a = |g1 - g2|^2,
    b' = (g1 - g2).g2, c' = |g2|^2) and g_w . g0 = const + q t (q = (g1 - g2).g0). The objective is
    convex in t; its stationary point solves q + s (a t + b') / |g_w| = 0, i.e. with u = a t + b'
    and D = a (c' + eps) - b'^2 (the Gram determinant plus a eps), sqrt(a) u / sqrt(u^2 + D) = r = -q / s, so
    u = r sqrt(D / (a - r^2)), then t clamped to [0, 1]. Where no stationary point exists (r^2 >= a)
    the slope has q's sign everywhere and the answer is an end of the segment."""
    a = m[0, 0] + m[1, 1] - 2 * m[0, 1]
    b2 = m[0, 1] - m[1, 1]
    det = (m[0, 0] * m[1, 1] - m[0, 1] ** 2).clamp(min=0) + a.clamp(min=0) * eps
    q = b[0] - b[1]
    r = -q / s.clamp(min=1e-300)
    room = a - r**2
    u = r * (det / room.clamp(min=1e-300)).sqrt()
    interior = ((u - b2) / a.clamp(min=1e-300)).clamp(0, 1)
    end = torch.where(q > 0, torch.zeros_like(q), torch.ones_like(q))
    t = torch.where((room > 0) & (s > 0), interior, end)
    t = torch.where(a > 1e-12, t, torch.full_like(t, 0.5))  # identical gradients: every t is optimal
    return torch.stack([t, 1 - t])
