"""Each multitask method against an independent port of its authors' code (LibMTL, commit 4336804,
and AvivNavon/nash-mtl; file and function named in each test) on the same gradients: random,
conflicting, near-parallel and mixed-scale, K = 2, 3, 5 (and up to 100 for the solvers), and over
several steps for stateful methods. The inner solvers are measured against exact solvers (scipy),
not against the ports' own approximations."""

import math

import numpy as np
import pytest
import torch
from scipy import optimize

from mtlbench.train.methods import make_method
from mtlbench.train.methods.simplex import cagrad_weights, min_norm_weights


def gradient_cases(k: int, seed: int = 0, dim: int = 40) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 100 * k)
    random = rng.normal(size=(k, dim))
    conflicting = random.copy()
    conflicting[1] = -0.8 * conflicting[0] + 0.1 * rng.normal(size=dim)
    near_parallel = random[:1] * rng.uniform(0.5, 2.0, size=(k, 1)) + 1e-3 * rng.normal(size=(k, dim))
    mixed_scale = random * 10.0 ** rng.uniform(-2, 2, size=(k, 1))
    return {"random": random, "conflicting": conflicting, "near-parallel": near_parallel, "mixed scale": mixed_scale}


def relative_distance(u: np.ndarray, v: np.ndarray) -> float:
    """|u - v| / |v|: how far an update is from the reference update, as one number."""
    return float(np.linalg.norm(u - v) / np.linalg.norm(v))


CASES = [(k, case) for k in (2, 3, 5) for case in ("random", "conflicting", "near-parallel", "mixed scale")]


def simplex_minimum(objective, k: int, jac=None) -> tuple[np.ndarray, float]:
    """An exact reference: SLSQP from several starts, converged far past its default tolerance."""
    best = None
    starts = [np.full(k, 1.0 / k)] + ([np.eye(k)[i] * 0.9 + 0.1 / k for i in range(k)] if k <= 5 else [])
    for x0 in starts:
        r = optimize.minimize(objective, x0, jac=jac, method="SLSQP", bounds=[(0, 1)] * k,
                              constraints=({"type": "eq", "fun": lambda x: 1 - x.sum()},),
                              options={"ftol": 1e-15, "maxiter": 2000})
        if best is None or r.fun < best.fun:
            best = r
    return best.x, float(best.fun)


# --- CAGrad: LibMTL LibMTL/weighting/CAGrad.py, backward(), calpha = c, rescale = 1 ----------------

def libmtl_cagrad(grads: np.ndarray, c: float) -> np.ndarray:
    """LibMTL's update, line for line in numpy, with scipy's SLSQP at its default tolerance."""
    k = len(grads)
    gg = grads @ grads.T
    g0_norm = math.sqrt(gg.mean() + 1e-8)
    x_start = np.ones(k) / k
    b, cc = x_start.copy(), c * g0_norm + 1e-8
    res = optimize.minimize(lambda x: x @ gg @ b + cc * math.sqrt(x @ gg @ x + 1e-8), x_start,
                            bounds=[(0, 1)] * k, constraints=({"type": "eq", "fun": lambda x: 1 - sum(x)},))
    gw = res.x @ grads
    g = grads.mean(0) + cc / (np.linalg.norm(gw) + 1e-8) * gw
    return g / (1 + c**2)


def cagrad_objective(gram: np.ndarray, c: float):
    """LibMTL's inner objective on the raw scale (its constants: 1e-8 under both square roots and
    added to cc)."""
    cc = c * math.sqrt(gram.mean() + 1e-8) + 1e-8
    b = gram.mean(1)
    return lambda w: w @ b + cc * math.sqrt(w @ gram @ w + 1e-8)


@pytest.mark.parametrize("k,case", CASES)
def test_cagrad_reaches_the_exact_optimum_and_the_authors_update(k, case):
    grads = gradient_cases(k)[case]
    gram = grads @ grads.T
    objective = cagrad_objective(gram, 0.4)
    w = cagrad_weights(torch.tensor(gram), 0.4).numpy()
    _, exact = simplex_minimum(objective, k)
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0, abs=1e-9)
    assert objective(w) - exact <= 1e-7 * max(np.diag(gram).mean(), abs(exact))  # the objective gap
    update, _ = make_method("cagrad", k, c=0.4).combine(torch.tensor(grads), torch.ones(k))
    theirs = libmtl_cagrad(grads, 0.4)
    cosine = float(update.numpy() @ theirs / (np.linalg.norm(update.numpy()) * np.linalg.norm(theirs)))
    assert cosine > 0.999, f"update cosine {cosine:.6f} against LibMTL's (SLSQP at its default tolerance)"


@pytest.mark.parametrize("k", [20, 100])
def test_cagrad_and_mgda_solvers_converge_for_many_tasks(k):
    grads = gradient_cases(k)["mixed scale"]
    gram = grads @ grads.T
    m = gram / np.diag(gram).mean()
    objective = cagrad_objective(gram, 0.4)
    _, exact = simplex_minimum(objective, k)
    assert objective(cagrad_weights(torch.tensor(gram), 0.4).numpy()) - exact <= 1e-6 * np.diag(gram).mean()
    a = min_norm_weights(torch.tensor(gram)).numpy()
    _, exact = simplex_minimum(lambda x: x @ m @ x, k, jac=lambda x: 2 * m @ x)
    assert a @ m @ a - exact <= 1e-6


# --- MGDA: LibMTL LibMTL/weighting/MGDA.py, MinNormSolver (the min-norm point of the hull) --------

@pytest.mark.parametrize("k,case", CASES)
def test_mgda_is_the_exact_min_norm_point(k, case):
    grads = gradient_cases(k)[case]
    gram = grads @ grads.T
    m = gram / np.diag(gram).mean()
    a = min_norm_weights(torch.tensor(gram)).numpy()
    _, exact = simplex_minimum(lambda x: x @ m @ x, k, jac=lambda x: 2 * m @ x)
    assert a.min() >= 0 and a.sum() == pytest.approx(1.0, abs=1e-9)
    assert a @ m @ a - exact <= 1e-8 * max(1.0, exact)


# --- MGDA and CAGrad at mixed scales, against an exact conic solver (cvxpy with Clarabel) ---------

def wide_scales(k: int, seed: int, dim: int = 40) -> np.ndarray:
    """K random directions with norms logspace(-2, 2): ratios up to 1e4, where 14 barrier rounds
    left MGDA's update 10-70% from the min-norm point."""
    rng = np.random.default_rng(seed + 7 * k)
    grads = rng.normal(size=(k, dim))
    return grads / np.linalg.norm(grads, axis=1, keepdims=True) * np.logspace(-2, 2, k)[:, None]


def conic_minimum(objective, k: int) -> tuple[np.ndarray, str]:
    """argmin over the simplex of a cvxpy objective of w, by Clarabel at tolerances 1e-10 (the
    callers scale the data by the smallest gradient norm: unscaled, Clarabel stops 1e-4 away)."""
    import cvxpy as cp

    w = cp.Variable(k, nonneg=True)
    problem = cp.Problem(cp.Minimize(objective(w)), [cp.sum(w) == 1])
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10, max_iter=400)
    return w.value, problem.status


SCALE_CASES = [(k, seed) for k in (3, 5, 10) for seed in range(3)]


@pytest.mark.parametrize("k,seed", SCALE_CASES)
def test_mgda_reaches_the_exact_min_norm_point_at_mixed_scales(k, seed):
    import cvxpy as cp

    grads = wide_scales(k, seed)
    small = np.linalg.norm(grads, axis=1).min()
    w, status = conic_minimum(lambda w: cp.sum_squares(grads.T @ w / small), k)
    assert status == "optimal"
    exact = w @ grads
    update, _ = make_method("mgda", k).combine(torch.tensor(grads), torch.ones(k))
    update = update.numpy()
    assert (update @ update - exact @ exact) / (exact @ exact) <= 1e-6  # the objective gap, relative
    assert relative_distance(update, exact) <= 1e-4


@pytest.mark.filterwarnings("ignore::UserWarning")  # cvxpy: "Solution may be inaccurate"
@pytest.mark.parametrize("k,seed", SCALE_CASES)
def test_cagrad_reaches_the_exact_optimum_of_the_authors_objective_at_mixed_scales(k, seed):
    """The reference optimum is the better of Clarabel's and scipy's SLSQP (Clarabel stops
    "inaccurate" on a few of these, SLSQP up to 2e-5 above the optimum at K = 10)."""
    import cvxpy as cp

    grads = wide_scales(k, seed)
    gram = grads @ grads.T
    objective = cagrad_objective(gram, 0.4)
    cc = 0.4 * math.sqrt(gram.mean() + 1e-8) + 1e-8
    small = np.linalg.norm(grads, axis=1).min()
    conic, _ = conic_minimum(lambda w: w @ gram.mean(1) / small**2
                             + cc / small * cp.norm(cp.hstack([grads.T @ w / small, np.array([1e-4 / small])])), k)
    slsqp, _ = simplex_minimum(objective, k)
    exact = min((conic, slsqp), key=objective)
    w = cagrad_weights(torch.tensor(gram), 0.4).numpy()
    assert (objective(w) - objective(exact)) / abs(objective(exact)) <= 1e-6
    update, _ = make_method("cagrad", k, c=0.4).combine(torch.tensor(grads), torch.ones(k))
    g_w = exact @ grads
    theirs = (grads.mean(0) + cc / (np.linalg.norm(g_w) + 1e-8) * g_w) / 1.16  # LibMTL's update, rescale 1
    assert relative_distance(update.numpy(), theirs) <= 1e-4


# --- Nash-MTL: AvivNavon/nash-mtl methods/weight_methods.py, NashMTL (lines 99-270) ----------------

def authors_nash(grads: np.ndarray, rounds: int = 20) -> tuple[np.ndarray, float]:
    """The authors' solver, step for step: G G^T divided by its Frobenius norm F, then up to 20
    convex-concave rounds with ECOS from alpha = 1, each minimising sum(G a) + phi(a) / F under
    -log(a_i F) - log((G a)_i) <= 0 (phi their linearisation at the last alpha), with their three
    stopping rules. Returns alpha and its residual on the raw equation |G G^T a - 1 / a|."""
    import cvxpy as cp

    k = len(grads)
    gtg = grads @ grads.T
    f = np.linalg.norm(gtg)
    g = gtg / f
    alpha = cp.Variable(k, nonneg=True)
    previous = cp.Parameter(k)
    g_alpha = g @ alpha
    phi = (1 / previous + (1 / (g @ previous)) @ g) @ (alpha - previous)
    problem = cp.Problem(cp.Minimize(cp.sum(g_alpha) + phi / f),
                         [-cp.log(alpha[i] * f) - cp.log(g_alpha[i]) <= 0 for i in range(k)])
    a = np.ones(k)
    for _ in range(rounds):
        alpha.value, previous.value = a, a
        try:
            problem.solve(solver=cp.ECOS, warm_start=True, max_iters=100)
        except cp.SolverError:
            alpha.value = previous.value
        if (alpha.value is None or np.linalg.norm(g @ a - 1 / (a + 1e-10)) < 1e-3
                or np.linalg.norm(alpha.value - previous.value) < 1e-6):
            break
        a = alpha.value
    return a, float(np.linalg.norm(gtg @ a - 1 / a))


NASH_CASES = [(k, case, scale) for k, case in CASES if case != "near-parallel" for scale in (1.0, 0.03)]


@pytest.mark.filterwarnings("ignore::UserWarning")  # cvxpy: "Solution may be inaccurate" where ECOS stalls
@pytest.mark.parametrize("k,case,scale", NASH_CASES)  # near-parallel: no bargaining solution
def test_nash_mtl_weights_and_clipped_update_match_the_authors_solver(k, case, scale):
    """The authors' alpha solves the raw equation G G^T a = 1 / a: a mtlbench that solved the
    normalised one (weights sqrt(F) times theirs) fails here wherever F != 1."""
    grads = gradient_cases(k)[case] * scale
    alpha, residual = authors_nash(grads)
    update, weights = make_method("nash_mtl", k).combine(torch.tensor(grads), torch.ones(k))
    gtg = grads @ grads.T
    assert gtg @ weights.numpy() == pytest.approx(1 / weights.numpy(), rel=1e-9)  # exact on the raw scale
    if residual > 1e-4:  # ECOS stalled (K = 5, norms 1e-2 to 1e2): the authors' rounds never converged
        pytest.skip(f"the authors' solver stopped at a residual of {residual:.1e}; exactness checked above")
    assert weights.numpy() == pytest.approx(alpha, rel=1e-4)
    parameter = torch.nn.Parameter(torch.zeros(grads.shape[1], dtype=torch.float64))
    parameter.grad = torch.tensor(alpha @ grads)
    torch.nn.utils.clip_grad_norm_([parameter], 1.0)  # their backward, max_norm 1.0
    assert relative_distance(update.numpy(), parameter.grad.numpy()) < 1e-4
    unclipped, _ = make_method("nash_mtl", k, max_norm=0.0).combine(torch.tensor(grads), torch.ones(k))
    assert relative_distance(unclipped.numpy(), alpha @ grads) < 1e-4


def test_nash_mtl_clips_small_gradients_as_the_authors_do():
    """At gradient scale 0.03 the raw weights are large, so the shared update reaches the clip
    (norm 1.0, as the authors' is); the normalised equation's update stayed at 0.044."""
    grads = gradient_cases(2)["random"] * 0.03
    update, _ = make_method("nash_mtl", 2).combine(torch.tensor(grads), torch.ones(2))
    assert float(update.norm()) == pytest.approx(1.0, rel=1e-5)


def test_nash_mtl_gives_a_zero_gradient_task_weight_one_and_bargains_among_the_rest():
    grads = gradient_cases(3)["random"]
    grads[2] = 0.0
    _, weights = make_method("nash_mtl", 3, max_norm=0.0).combine(torch.tensor(grads), torch.ones(3))
    assert weights[2].item() == 1.0
    gtg = grads @ grads.T  # the others solve their block of the raw equation
    assert (gtg[:2, :2] @ weights[:2].numpy()) == pytest.approx(1 / weights[:2].numpy(), rel=1e-6)


# --- IMTL-G: LibMTL LibMTL/weighting/IMTL.py, backward() -------------------------------------------

def libmtl_imtl(grads: np.ndarray) -> np.ndarray:
    unit = grads / np.linalg.norm(grads, axis=1, keepdims=True)
    d = grads[0:1] - grads[1:]
    u = unit[0:1] - unit[1:]
    alpha = grads[0] @ u.T @ np.linalg.inv(d @ u.T)
    return np.concatenate([[1 - alpha.sum()], alpha])


@pytest.mark.parametrize("k,case", [c for c in CASES if c[1] != "near-parallel"])
def test_imtl_matches_libmtl(k, case):
    grads = gradient_cases(k)[case]
    _, weights = make_method("imtl", k).combine(torch.tensor(grads), torch.ones(k))
    assert weights.numpy() == pytest.approx(libmtl_imtl(grads), rel=1e-6, abs=1e-9)


def test_imtl_leaves_a_zero_gradient_out_and_stays_impartial_among_the_rest():
    grads = gradient_cases(3)["random"]
    grads[1] = 0.0
    update, weights = make_method("imtl", 3).combine(torch.tensor(grads), torch.ones(3))
    assert weights[1].item() == 0.0
    kept = grads[[0, 2]]
    assert weights[[0, 2]].numpy() == pytest.approx(libmtl_imtl(kept), rel=1e-6)
    units = kept / np.linalg.norm(kept, axis=1, keepdims=True)
    projections = units @ update.numpy()
    assert projections[0] == pytest.approx(projections[1], rel=1e-6) and projections[0] > 0


# --- PCGrad and GradVac: LibMTL PCGrad.py and GradVac.py, backward() (K = 2: no random order) ------

def libmtl_gradvac(grads: np.ndarray, rho: np.ndarray, beta: float) -> np.ndarray:
    pc = grads.copy()
    for i in range(len(grads)):
        for j in [t for t in range(len(grads)) if t != i]:
            r = pc[i] @ grads[j] / (np.linalg.norm(pc[i]) * np.linalg.norm(grads[j]) + 1e-8)
            if r < rho[i, j]:
                w = np.linalg.norm(pc[i]) * (rho[i, j] * math.sqrt(1 - r**2) - r * math.sqrt(1 - rho[i, j] ** 2))
                pc[i] += grads[j] * w / (np.linalg.norm(grads[j]) * math.sqrt(1 - rho[i, j] ** 2) + 1e-8)
            rho[i, j] = (1 - beta) * rho[i, j] + beta * r
    return pc.sum(0)


def test_pcgrad_and_gradvac_match_libmtl_over_several_steps():
    method = make_method("gradvac", 2, beta=0.5)
    method.register_buffer("target", torch.zeros(2, 2, dtype=torch.float64))
    rho = np.zeros((2, 2))
    for step, case in enumerate(("conflicting", "random", "conflicting", "mixed scale")):
        grads = gradient_cases(2, seed=step)[case]
        update, _ = method.combine(torch.tensor(grads), torch.ones(2))
        assert update.numpy() == pytest.approx(libmtl_gradvac(grads, rho, 0.5), rel=1e-6), f"step {step}"
        pc, _ = make_method("pcgrad", 2).combine(torch.tensor(grads), torch.ones(2))
        assert pc.numpy() == pytest.approx(libmtl_gradvac(grads, np.zeros((2, 2)), 0.5), rel=1e-6)  # targets 0: PCGrad


# --- DB-MTL: LibMTL LibMTL/weighting/DB_MTL.py, backward(), on a real model over several steps -----

class TwoHeads(torch.nn.Module):
    """A shared vector and one head per task; shared_parameters() as the methods need."""

    def __init__(self, k: int):
        super().__init__()
        gen = torch.Generator().manual_seed(k)
        self.w = torch.nn.Parameter(torch.randn(6, generator=gen, dtype=torch.float64))
        self.heads = torch.nn.ParameterList(torch.nn.Parameter(torch.randn(6, generator=gen, dtype=torch.float64))
                                            for _ in range(k))

    def shared_parameters(self):
        return [self.w]

    def losses(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([((x @ (self.w * h)) - 1.0) ** 2 + 0.1 for h in self.heads])


def test_db_mtl_matches_libmtl_shared_and_head_gradients_over_several_steps():
    k, beta, sigma = 3, 0.9, 0.5
    ours, theirs = TwoHeads(k), TwoHeads(k)
    method = make_method("db_mtl", k, beta=beta, sigma=sigma)
    method.bind(ours, list(ours.parameters()))
    buffer = torch.zeros(k, 6, dtype=torch.float64)
    for step in range(1, 5):
        x = torch.randn(6, generator=torch.Generator().manual_seed(step), dtype=torch.float64)
        ours.zero_grad()
        method.backward(ours.losses(x))
        # LibMTL: the backward of each log(L_k + 1e-8) reaches the heads; the shared gradient is replaced
        theirs.zero_grad()
        losses = torch.log(theirs.losses(x) + 1e-8)
        rows = []
        for t in range(k):
            theirs.w.grad = None
            losses[t].backward(retain_graph=True)
            rows.append(theirs.w.grad.clone())
        batch = torch.stack(rows)
        buffer = batch + (beta / step**sigma) * (buffer - batch)
        norms = buffer.norm(dim=-1)
        theirs.w.grad = ((norms.max() / (norms + 1e-8)).view(-1, 1) * buffer).sum(0)
        # the methods combine task gradients in float32 (GradientMethod.task_gradients), and the
        # parameters drift apart by that much after each step: 1e-5 relative
        assert ours.w.grad.tolist() == pytest.approx(theirs.w.grad.tolist(), rel=1e-5), f"step {step}"
        for a, b in zip(ours.heads, theirs.heads):
            assert a.grad.tolist() == pytest.approx(b.grad.tolist(), rel=1e-5), f"step {step}: heads"
        with torch.no_grad():  # the same plain step on both, so the next step sees new weights
            for p, q in zip(ours.parameters(), theirs.parameters()):
                p -= 0.01 * p.grad
                q -= 0.01 * q.grad


# --- GradNorm's weights under Adam: torch.optim.Adam on w with GradNorm's gradient -----------------

def test_gradnorm_adam_steps_the_weights_as_torch_adam_does():
    method = make_method("gradnorm", 2, alpha=1.5, lr=0.025)
    w = torch.nn.Parameter(torch.ones(2))
    adam = torch.optim.Adam([w], lr=0.025)
    initial = None
    for step, (norms, losses) in enumerate([((1.0, 3.0), (2.0, 1.0)), ((1.0, 1.0), (1.0, 1.0)),
                                            ((2.0, 0.5), (0.5, 0.9)), ((1.0, 2.0), (0.4, 0.8))]):
        norms, losses = torch.tensor(norms), torch.tensor(losses)
        method.update_weights(norms, losses)
        initial = losses if initial is None else initial
        ratio = losses / initial
        g = w.detach() * norms
        target = g.mean() * (ratio / ratio.mean()) ** 1.5
        w.grad = torch.sign(g - target) * norms
        adam.step()
        with torch.no_grad():
            w.clamp_(min=1e-6)
            w.mul_(2 / w.sum())
        assert method.weights.tolist() == pytest.approx(w.tolist(), rel=1e-6), f"step {step}"


# --- Uncertainty weighting: LibMTL LibMTL/weighting/UW.py -------------------------------------------

def test_uncertainty_with_libmtls_start_gives_libmtls_objective_and_weights():
    method = make_method("uncertainty", 3, log_var_init=-0.5)
    losses = torch.tensor([0.7, 1.3, 0.2])
    s = torch.full((3,), -0.5)
    assert method(losses).item() == pytest.approx((losses / (2 * s.exp()) + s / 2).sum().item())
    assert method.effective_weights(losses).tolist() == pytest.approx([1 / (2 * math.exp(-0.5))] * 3)
    assert make_method("uncertainty", 3).effective_weights(losses).tolist() == pytest.approx([0.5] * 3)


# --- geometric mean (GLS), DWA, Aligned-MTL: LibMTL GLS.py, DWA.py, Aligned_MTL.py, backward() ----

def test_geometric_mean_gives_libmtls_gradients_of_the_losses():
    losses = torch.tensor([0.7, 1.9, 0.05], dtype=torch.float64, requires_grad=True)
    make_method("geometric", 3)(losses).backward()
    theirs = losses.detach().clone().requires_grad_(True)
    torch.pow(theirs.prod(), 1.0 / 3).backward()  # GLS: (prod L)^(1/K)
    assert losses.grad.tolist() == pytest.approx(theirs.grad.tolist(), rel=1e-12)


def test_dwa_weights_follow_libmtls_over_epochs():
    method = make_method("dwa", 3, temperature=2.0)
    epochs = [[1.0, 2.0, 3.0], [0.8, 1.9, 2.5], [0.5, 1.8, 2.4], [0.45, 1.2, 2.3]]
    buffer = np.array(epochs).T  # LibMTL's train_loss_buffer [task, epoch]
    for epoch, losses in enumerate(epochs):
        if epoch > 1:  # LibMTL: epoch > 1 uses the ratio of the last two epochs' mean losses
            w = buffer[:, epoch - 1] / buffer[:, epoch - 2]
            expected = 3 * torch.softmax(torch.tensor(w) / 2.0, dim=-1)
        else:
            expected = torch.ones(3)
        assert method.effective_weights(torch.tensor(losses)).tolist() == pytest.approx(expected.tolist(), rel=1e-6)
        method.end_epoch(torch.tensor(losses))


def libmtl_aligned(grads: np.ndarray) -> np.ndarray:
    m = torch.tensor(grads @ grads.T)
    lmbda, v = torch.linalg.eigh(m)  # torch.symeig in LibMTL, removed from torch since
    tol = lmbda.max() * max(m.shape[-2:]) * torch.finfo().eps
    rank = int((lmbda > tol).sum())
    order = torch.argsort(lmbda, dim=-1, descending=True)
    lmbda, v = lmbda[order][:rank], v[:, order][:, :rank]
    b = lmbda[-1].sqrt() * ((v @ torch.diag(1 / lmbda.sqrt())) @ v.T)
    return b.sum(0).numpy()


@pytest.mark.parametrize("k,case", [c for c in CASES if c[1] != "near-parallel"])
def test_aligned_mtl_matches_libmtl(k, case):
    grads = gradient_cases(k)[case]
    update, weights = make_method("aligned_mtl", k).combine(torch.tensor(grads), torch.ones(k))
    alpha = libmtl_aligned(grads)
    assert weights.numpy() == pytest.approx(alpha, rel=1e-6)
    assert update.numpy() == pytest.approx(alpha @ grads, rel=1e-6)


def test_famo_matches_libmtl_loss_gradients_and_logits_over_several_steps():
    k, lr, gamma = 3, 0.025, 1e-3
    method = make_method("famo", k, lr=lr, gamma=gamma)
    w = torch.zeros(k, requires_grad=True)  # LibMTL FAMO.init_param / update_w: Adam with weight decay on w
    w_opt = torch.optim.Adam([w], lr=lr, weight_decay=gamma)
    gen = torch.Generator().manual_seed(3)
    for step in range(4):
        before = (torch.rand(k, generator=gen, dtype=torch.float64) + 0.1).requires_grad_(True)
        after = before.detach() * (0.5 + torch.rand(k, generator=gen, dtype=torch.float64))
        method.backward(before.float().detach().requires_grad_(True))  # ours, on a leaf of its own
        ours = before.detach().float().requires_grad_(True)
        method.forward(ours).backward()
        z = torch.softmax(w.detach(), -1).double()
        d = before - 0.0 + 1e-8
        c = (z / d).sum().detach()
        (d.log() * z / c).sum().backward()  # LibMTL backward()
        assert ours.grad.tolist() == pytest.approx(before.grad.tolist(), rel=1e-5), f"step {step}"
        method.after_step(after.float())
        delta = (before.detach() + 1e-8).log() - (after + 1e-8).log()  # LibMTL update_w()
        with torch.enable_grad():
            w.grad = torch.autograd.grad(torch.softmax(w, -1), w, grad_outputs=delta.float())[0]
        w_opt.step()
        assert method.xi.tolist() == pytest.approx(w.detach().tolist(), rel=1e-4, abs=1e-7), f"step {step}"
