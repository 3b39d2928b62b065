"""The multitask methods of train/methods: each formula pinned on two or three small gradients whose
result is known in closed form, the plug-in registry, and every method training a real network."""

import math
import sys
from dataclasses import replace

import pytest
import torch
from synthetic import two_task_images

from mtlbench.models import build_shared
from mtlbench.train.methods import METHODS, MethodError, check_fits, make_method
from mtlbench.train.methods.simplex import cagrad_weights
from mtlbench.train.methods.graddrop import GradDrop
from mtlbench.train.methods.mgda import min_norm_weights

G_CONFLICT = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # g1 . g2 = -1
G_ORTHO = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
LOSSES = torch.tensor([1.0, 0.5])


def combine(name: str, grads: torch.Tensor, losses: torch.Tensor = LOSSES, **options):
    method = make_method(name, len(grads), **options)
    return method.combine(grads, losses)


def test_mgda_is_the_min_norm_point_of_the_hull():
    # two tasks, closed form: a1 = clamp((g2 - g1).g2 / |g1 - g2|^2, 0, 1)
    g1, g2 = G_CONFLICT
    a1 = float(((g2 - g1) @ g2) / ((g1 - g2) @ (g1 - g2)))  # (-2*-1 + 1*1) / 5 = 0.6
    update, weights = combine("mgda", G_CONFLICT)
    assert weights.tolist() == pytest.approx([a1, 1 - a1], abs=1e-6) and a1 == pytest.approx(0.6)
    assert update.tolist() == pytest.approx([0.2, 0.4], abs=1e-6)  # 0.6 g1 + 0.4 g2
    # orthogonal g1 = (2, 0), g2 = (0, 1): a = (1/5, 4/5), the point (0.4, 0.8)
    assert combine("mgda", G_ORTHO)[1].tolist() == pytest.approx([0.2, 0.8], abs=1e-6)
    # three orthogonal gradients of norms 1, 2, 1: a_k proportional to 1 / |g_k|^2, (4, 1, 4) / 9
    three = torch.diag(torch.tensor([1.0, 2.0, 1.0]))
    assert min_norm_weights(three @ three.T).tolist() == pytest.approx([4 / 9, 1 / 9, 4 / 9], abs=1e-5)


def test_pcgrad_projects_conflicting_gradients():
    # g1' = g1 - (g1.g2 / |g2|^2) g2 = (1,0) + 0.5 (-1,1) = (0.5, 0.5); g2' = g2 + g1 = (0, 1)
    update, weights = combine("pcgrad", G_CONFLICT)
    assert update.tolist() == pytest.approx([0.5, 1.5])
    assert weights.tolist() == pytest.approx([2.0, 1.5], abs=1e-5)  # g1' + g2' = 2 g1 + 1.5 g2
    assert (weights @ G_CONFLICT).tolist() == pytest.approx(update.tolist(), abs=1e-5)
    update, _ = combine("pcgrad", G_ORTHO)  # no conflict: the plain sum
    assert update.tolist() == pytest.approx([2.0, 1.0])


def test_gradvac_starts_as_pcgrad_and_learns_its_targets():
    method = make_method("gradvac", 2, beta=0.5)
    update, _ = method.combine(G_CONFLICT, LOSSES)
    assert update.tolist() == pytest.approx([0.5, 1.5], abs=1e-6)  # targets 0: PCGrad's projection
    phi = -1 / math.sqrt(2)  # cos(g1, g2)
    assert method.target[0, 1].item() == pytest.approx(0.5 * phi) and method.target[0, 0].item() == 0.0
    # second step, target t = phi/2 < 0: g1 gains g2 |g1| (t sqrt(1-phi^2) - phi sqrt(1-t^2)) / (|g2| sqrt(1-t^2))
    t = 0.5 * phi
    t2 = method.target[1, 0].item()
    update, _ = method.combine(G_CONFLICT, LOSSES)
    lift1 = 1 * (t * math.sqrt(1 - phi**2) - phi * math.sqrt(1 - t**2)) / (math.sqrt(2) * math.sqrt(1 - t**2))
    lift2 = math.sqrt(2) * (t2 * math.sqrt(1 - phi**2) - phi * math.sqrt(1 - t2**2)) / (1 * math.sqrt(1 - t2**2))
    expected = G_CONFLICT[0] + lift1 * G_CONFLICT[1] + G_CONFLICT[1] + lift2 * G_CONFLICT[0]
    assert update.tolist() == pytest.approx(expected.tolist(), abs=1e-5)


def test_imtl_gives_equal_projections_on_every_task():
    grads = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # D = g1 - g2 = (1, -2), U = u1 - u2 = (1, -1): a2 = g1.U / (D.U) = 1/3, a1 = 2/3
    update, weights = combine("imtl", grads)
    assert weights.tolist() == pytest.approx([2 / 3, 1 / 3], abs=1e-6)
    assert update.tolist() == pytest.approx([2 / 3, 2 / 3], abs=1e-6)
    three = torch.tensor([[1.0, 0.0, 0.0], [1.0, 2.0, 0.0], [0.0, 1.0, 3.0]])
    update, weights = combine("imtl", three, torch.ones(3))
    units = three / three.norm(dim=1, keepdim=True)
    projections = units @ update
    assert float(weights.sum()) == pytest.approx(1.0) and projections.tolist() == pytest.approx([float(projections[0])] * 3, abs=1e-5)


def test_cagrad_symmetric_case_and_c_zero():
    grads = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # symmetric: w = (1/2, 1/2), g_w = g0 = (1/2, 1/2); d = g0 (1 + c) / (1 + c^2)
    update, _ = combine("cagrad", grads, c=0.5)
    assert update.tolist() == pytest.approx([0.75 / 1.25, 0.75 / 1.25], abs=1e-5)
    update, weights = combine("cagrad", G_CONFLICT, c=0.0)  # c = 0: plain gradient descent on the mean
    assert update.tolist() == pytest.approx(G_CONFLICT.mean(0).tolist(), abs=1e-6)


def test_cagrad_solver_matches_scipy_on_an_asymmetric_case():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    grads = torch.tensor([[3.0, 0.5], [-1.0, 2.0]], dtype=torch.float64)
    c = 0.4
    gram = (grads @ grads.T).numpy()
    g0_gram, sqrt_phi = gram.mean(1), c * math.sqrt(gram.mean())

    def objective(x):
        w = [x, 1 - x]
        return sum(w[i] * g0_gram[i] for i in range(2)) + sqrt_phi * math.sqrt(sum(w[i] * gram[i][j] * w[j] for i in range(2) for j in range(2)))

    best = scipy_optimize.minimize_scalar(objective, bounds=(0, 1), method="bounded", options={"xatol": 1e-10}).x
    w = cagrad_weights(grads @ grads.T, c)  # K = 2: the closed form
    assert float(w[0]) == pytest.approx(best, abs=1e-7)


def test_nash_mtl_solves_the_bargaining_equation():
    # orthogonal: G G^T = diag(4, 1), G G^T a = 1/a gives a = (1/2, 1); update (1, 1), norm 1.41,
    # clipped to norm 1 by default
    update, weights = combine("nash_mtl", G_ORTHO, max_norm=0.0)
    assert weights.tolist() == pytest.approx([0.5, 1.0], rel=1e-6)
    assert update.tolist() == pytest.approx([1.0, 1.0], rel=1e-6)
    update, _ = combine("nash_mtl", G_ORTHO)
    assert update.tolist() == pytest.approx([2**-0.5, 2**-0.5], rel=1e-5)
    grads = torch.tensor([[1.0, 0.2, 0.0], [0.3, 1.0, 0.5], [0.0, -0.4, 2.0]])
    _, a = combine("nash_mtl", grads, torch.ones(3))
    assert (grads @ grads.T @ a).tolist() == pytest.approx((1 / a).tolist(), rel=1e-5)


def test_aligned_mtl_makes_the_gradients_orthonormal_at_the_smallest_singular_value():
    # orthogonal g1 = (2, 0), g2 = (0, 1): both rescaled to norm 1, a = (1/2, 1)
    update, weights = combine("aligned_mtl", G_ORTHO)
    assert weights.tolist() == pytest.approx([0.5, 1.0], abs=1e-6) and update.tolist() == pytest.approx([1.0, 1.0])
    b_rows = torch.tensor([[1.0, 1.0], [0.0, 1.0]])  # the aligned rows of a general pair: B G B G^T = sigma_min^2 I
    update, _ = combine("aligned_mtl", b_rows)
    s_min = torch.linalg.svdvals(b_rows).min()
    values, vectors = torch.linalg.eigh(b_rows @ b_rows.T)
    aligned = s_min * vectors @ torch.diag(values.rsqrt()) @ vectors.T @ b_rows
    assert (aligned @ aligned.T).flatten().tolist() == pytest.approx((s_min**2 * torch.eye(2)).flatten().tolist(), abs=1e-5)
    assert update.tolist() == pytest.approx(aligned.sum(0).tolist(), abs=1e-5)


def test_db_mtl_first_step_balances_log_gradients():
    # g1 / L1 = (1, 0), g2 / L2 = (0, 2); h = (1 - beta) g/L = (0.1, 0), (0, 0.2); scales (2, 1)
    grads = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    method = make_method("db_mtl", 2, beta=0.9, sigma=0.5)
    method.register_buffer("history", torch.zeros(2, 2))
    update, _ = method.combine(grads, LOSSES)  # step 1: rate 0.9
    assert update.tolist() == pytest.approx([0.2, 0.2], rel=1e-5)
    update, _ = method.combine(grads, LOSSES)  # step 2: rate 0.9 / sqrt(2); h = g/L + rate (0.1 g/L - g/L)
    rate = 0.9 / math.sqrt(2)
    h = 1 - 0.9 * rate
    assert method.history.flatten().tolist() == pytest.approx([h, 0.0, 0.0, 2 * h], rel=1e-5)


def test_graddrop_keeps_one_sign_per_element():
    grads = torch.tensor([[1.0, -1.0], [1.0, 1.0]])  # purity P = (1, 0.5)
    method = make_method("graddrop", 2)
    method.uniform = lambda like: torch.tensor([0.3, 0.7])  # P > U on element 0: keep +; P < U on 1: keep -
    update, _ = method.combine(grads, LOSSES)
    assert update.tolist() == [2.0, -1.0]
    method.uniform = lambda like: torch.tensor([0.3, 0.2])  # P > U on both: keep the positive parts
    assert method.combine(grads, LOSSES)[0].tolist() == [2.0, 1.0]


def test_gradnorm_weight_update():
    method = make_method("gradnorm", 2, alpha=1.5, lr=0.1, optimizer="sgd")
    # first step: L = L(0), r = 1; norms (1, 3): G = (1, 3), target 2; grad (-1, +3); w = (1.1, 0.7) -> sum 2
    method.update_weights(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 1.0]))
    assert method.weights.tolist() == pytest.approx([1.1 * 2 / 1.8, 0.7 * 2 / 1.8])
    assert method.initial.tolist() == [2.0, 1.0]
    w = method.weights.clone()
    # second step: L/L0 = (0.5, 1): r = (2/3, 4/3); the slower task's target rises
    method.update_weights(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0]))
    g = w * torch.tensor([1.0, 1.0])
    target = g.mean() * torch.tensor([2 / 3, 4 / 3]) ** 1.5
    stepped = w - 0.1 * torch.sign(g - target)
    assert method.weights.tolist() == pytest.approx((stepped * 2 / stepped.sum()).tolist())


def test_rlw_draws_softmax_normal_weights_from_torch():
    method = make_method("rlw", 3)
    losses = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    torch.manual_seed(5)
    expected = torch.softmax(torch.randn(3), 0)
    torch.manual_seed(5)
    _, weights = method.backward(losses)
    assert weights.tolist() == pytest.approx(expected.tolist()) and losses.grad.tolist() == pytest.approx(expected.tolist())


def test_famo_weights_and_logit_update():
    method = make_method("famo", 2, lr=0.025, gamma=0.0)
    losses = torch.tensor([1.0, 0.5], requires_grad=True)
    _, weights = method.backward(losses)
    # z = (1/2, 1/2), c = 0.5/1 + 0.5/0.5 = 1.5: w = z / (c L) = (1/3, 2/3)
    assert weights.tolist() == pytest.approx([1 / 3, 2 / 3], rel=1e-6)
    assert losses.grad.tolist() == pytest.approx([1 / 3, 2 / 3], rel=1e-6)
    method.after_step(torch.tensor([0.5, 0.5]))  # delta = (log 2, 0): J^T delta = (log2/4, -log2/4)
    assert method.xi.tolist() == pytest.approx([-0.025, 0.025], rel=1e-4)  # Adam's first step: lr * sign
    assert method.total(torch.tensor([1.0, 0.5])).item() == 1.5  # state untouched by validation


def test_every_method_is_registered_checked_and_named_on_bad_input():
    assert {"gradnorm", "mgda", "mgda_ub", "pcgrad", "gradvac", "imtl", "cagrad", "nash_mtl", "aligned_mtl",
            "rlw", "db_mtl", "famo", "graddrop"} <= set(METHODS)
    with pytest.raises(MethodError, match="method 'pc_grad'; allowed: sum, mean, .*pcgrad"):
        make_method("pc_grad", 2)
    with pytest.raises(MethodError, match="method cagrad: unknown option 'alpha'; allowed options: c"):
        make_method("cagrad", 2, alpha=1.0)
    from mtlbench.models.dedicated import SHARED
    with pytest.raises(MethodError, match="method mgda_ub needs one representation .* use mgda instead"):
        check_fits("mgda_ub", {}, 2, SHARED["mlp"])
    with pytest.raises(MethodError, match="method pcgrad balances several tasks and this run leaves 1"):
        check_fits("pcgrad", {}, 1, SHARED["mlp"])
    check_fits("mgda_ub", {}, 2, SHARED["cifar_shared"])


def _fit(method: str, model=None, epochs: int = 2):
    from mtlbench.train.loop import fit
    from mtlbench.train.protocols import hs_protocol

    data = two_task_images(160, 8)
    protocol = replace(hs_protocol(epochs=epochs, early_stopping=False), batch_size=32)
    model = model or build_shared("cifar_shared", (3, 8, 8), (2, 2), seed=0)
    return model, fit(model, data, protocol, 0, ("a", "b"), method=make_method(method, 2))


@pytest.mark.parametrize("name", [m for m in METHODS if m != "fixed"])
def test_every_method_trains_a_shared_network_reproducibly(name):
    model, first = _fit(name)
    weights = [(r["a_weight"], r["b_weight"]) for r in first.history]
    assert len(weights) == 2 and all(math.isfinite(w) for pair in weights for w in pair), name
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["val_loss"]) for r in first.history)
    again = _fit(name)[1]
    timeless = lambda history: [{k: v for k, v in r.items() if k != "seconds"} for r in history]  # noqa: E731
    assert timeless(again.history) == timeless(first.history)  # same seed, same numbers: the method's randomness is seeded too


def test_a_method_plugs_in_from_a_module_of_ones_own(tmp_path, monkeypatch):
    (tmp_path / "toy_method.py").write_text(
        "import torch\n"
        "from mtlbench.train.methods import GradientMethod, register\n\n\n"
        "@register('toy_first_task')\n"
        "class FirstTaskOnly(GradientMethod):\n"
        "    def combine(self, grads, losses):\n"
        "        weights = torch.tensor([1.0] + [0.0] * (len(grads) - 1))\n"
        "        return weights @ grads, weights\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "toy_method", None)
    del sys.modules["toy_method"]
    import toy_method  # noqa: F401  (registers itself)

    try:
        _, result = _fit("toy_first_task")
        assert [r["b_weight"] for r in result.history] == [0.0, 0.0]
        assert all(r["a_weight"] == pytest.approx(1.0) for r in result.history)
    finally:
        METHODS.pop("toy_first_task")


class _Probe(torch.nn.Module):
    """One shared vector w and a scalar head per task; task k's loss is c_k (w . v) + b_k^2, so its
    shared gradient is c_k v: zero, identical, parallel or opposite gradients by the choice of c."""

    shared_representation = True

    def __init__(self, n_tasks: int, size: int = 8):
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(-1, 1, size))
        self.heads = torch.nn.Parameter(torch.ones(n_tasks))
        self.v = torch.linspace(0.5, 2.0, size)

    def shared_parameters(self):
        return [self.w]

    def losses(self, scales):
        return torch.stack([c * (self.w @ self.v) + b**2 for c, b in zip(scales, self.heads)])


DEGENERATE = {"one zero": (1.0, 0.0, 2.0), "identical": (1.0, 1.0), "parallel": (1.0, 2.0),
              "opposite": (1.0, -1.0), "all zero": (0.0, 0.0), "one task": (1.0,), "ratio 1e4": (1e2, 1e-2)}


@pytest.mark.parametrize("case", DEGENERATE)
@pytest.mark.parametrize("name", sorted(set(METHODS) - {"fixed", "mgda_ub"}))  # mgda_ub: mgda on a representation
def test_every_method_writes_finite_gradients_and_weights_on_degenerate_inputs(name, case):
    scales = DEGENERATE[case]
    if len(scales) < getattr(METHODS[name], "min_tasks", 1):
        pytest.skip(f"{name} needs {METHODS[name].min_tasks} tasks")
    model = _Probe(len(scales))
    method = make_method(name, len(scales))
    method.bind(model, list(model.parameters()))
    for _ in range(3):  # stateful methods (DWA, FAMO, GradVac, DB-MTL) over a few steps
        model.zero_grad()
        losses = model.losses(scales).abs() + 0.1  # positive, as the log-based methods need
        value, weights = method.backward(losses)
        assert all(torch.isfinite(p.grad).all() for p in model.parameters()), f"{name}, {case}: gradient"
        assert torch.isfinite(weights).all() and torch.isfinite(value), f"{name}, {case}: weights {weights}"
        # sensible too: the largest weight the formulas give here is Nash-MTL's 7e3 on the 1e4 norm
        # ratio (a_k ~ 1 / |g_k|); a zero gradient once drew 1e11 (Nash-MTL) and 1e15 (CAGrad)
        assert weights.abs().max() < 1e5, f"{name}, {case}: weights {weights}"
        method.after_step(losses.detach())
        method.end_epoch(losses.detach())


def test_imtl_treats_identical_gradients_alike_and_zero_gradients_give_a_zero_update():
    g = torch.tensor([[1.0, 2.0, -1.0]] * 3)
    update, weights = combine("imtl", g)
    assert weights.tolist() == pytest.approx([1 / 3] * 3) and update.tolist() == pytest.approx([1.0, 2.0, -1.0])
    model = _Probe(2)
    method = make_method("aligned_mtl", 2)
    method.bind(model, list(model.parameters()))
    method.backward(model.losses((0.0, 0.0)) + 1.0)
    assert model.w.grad.abs().max() == 0.0  # no task moves the shared vector: no update


def test_the_docs_methods_table_is_the_registry_s():
    """The methods table of docs/methods.md is generated (`make readme`); a method or a deviation changed in
    code and not regenerated fails here."""
    from pathlib import Path

    from mtlbench.train.methods import methods_table

    page = (Path(__file__).resolve().parents[1] / "docs" / "methods.md").read_text()
    table = "\n".join(methods_table())
    assert table in page, "docs/methods.md's methods table is stale: run `make readme`"
    assert all(f"| `{name}` |" in table for name in METHODS)
