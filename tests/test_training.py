"""The keras-faithful loop: early stopping, validation split, determinism, restored weights."""

import math

import pytest
import torch
from torch import nn

from mtlbench.data.tasks import TensorSet
from mtlbench.models import build_dedicated, count_parameters
from mtlbench.train.accel import EAGER, Accel
from mtlbench.train.early_stopping import EarlyStopping
from mtlbench.train.loop import evaluate_losses, fit
from mtlbench.train.objectives import Objective
from mtlbench.train.protocols import KERAS_FAITHFUL
from mtlbench.train.methods import Weighted


def test_early_stopping_needs_improvement_beyond_min_delta():
    stop = EarlyStopping(patience=3, min_delta=0.01)
    assert stop.update(1, 0.50)
    assert not stop.update(2, 0.495)  # better, but by less than min_delta: not an improvement
    assert stop.update(3, 0.489)  # 0.011 below the best: improvement
    assert stop.best_epoch == 3 and stop.best == 0.489
    for epoch in (4, 5):
        stop.update(epoch, 0.485)
        assert not stop.should_stop
    stop.update(6, 0.485)
    assert stop.should_stop and stop.best_epoch == 3


def test_no_patience_never_stops():
    stop = EarlyStopping(patience=None, min_delta=0.0)
    for epoch in range(1, 20):
        stop.update(epoch, 1.0)
    assert not stop.should_stop


def test_validation_split_is_the_last_fraction_before_shuffling():
    x = torch.arange(10).float().reshape(10, 1)
    data = TensorSet((x,), (torch.arange(10),))
    train, val = data.split_validation(0.2)
    assert train.targets[0].tolist() == list(range(8)) and val.targets[0].tolist() == [8, 9]


def test_tensor_set_rejects_misaligned_rows():
    with pytest.raises(ValueError, match="differ in length"):
        TensorSet((torch.zeros(3, 2),), (torch.zeros(4),))


def _blobs(n: int, seed: int) -> TensorSet:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 1, 4, 4, generator=g) * 0.3
    x[torch.arange(n), 0, y, y] += 2.0  # the class lights one diagonal pixel
    return TensorSet((x,), (y,))


def _small_protocol(**changes):
    from dataclasses import replace

    return replace(KERAS_FAITHFUL, **{"batch_size": 32, "max_epochs": 12, **changes})


def _tiny_mlp(seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
    for p in model.parameters():
        nn.init.normal_(p, std=0.3, generator=g)
    return model


def test_fit_learns_and_is_deterministic_per_seed():
    data = _blobs(400, seed=0)
    runs = []
    for seed in (7, 7, 8):
        model = _tiny_mlp(seed)
        result = fit(model, data, _small_protocol(patience=None), seed=seed, task_names=("t",))
        runs.append((result.history, [p.detach().clone() for p in model.parameters()]))
    (h1, w1), (h2, w2), (h3, _) = runs
    untimed = lambda history: [{k: v for k, v in r.items() if k != "seconds"} for r in history]  # noqa: E731
    assert untimed(h1) == untimed(h2)
    assert all(torch.equal(a, b) for a, b in zip(w1, w2))
    assert [r["val_loss"] for r in h1] != [r["val_loss"] for r in h3]  # another seed, another run
    assert h1[-1]["val_t_accuracy"] > 0.9


def test_restores_the_weights_of_the_best_epoch():
    data = _blobs(300, seed=1)
    model = _tiny_mlp(0)
    protocol = _small_protocol(lr=0.05, patience=2, min_delta=0.0)
    result = fit(model, data, protocol, seed=0, task_names=("t",))
    _, val = data.split_validation(0.2)
    assert result.best_epoch is not None
    restored = evaluate_losses(model, val, Weighted([1.0]), Objective.of(protocol))["loss"]
    assert math.isclose(float(restored), result.best_val_loss, rel_tol=1e-5)
    assert result.history[result.best_epoch - 1]["val_loss"] == result.best_val_loss


def test_multitask_loss_is_the_weighted_sum_of_task_losses():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = _tiny_mlp(0), _tiny_mlp(1)

        def forward(self, xa, xb):
            return self.a(xa), self.b(xb)

    d1, d2 = _blobs(200, 0), _blobs(200, 1)
    data = TensorSet(d1.inputs + d2.inputs, d1.targets + d2.targets)
    result = fit(TwoHeads(), data, _small_protocol(max_epochs=2), 0, ("a", "b"), loss_weights=(0.25, 0.75))
    last = result.history[-1]
    assert math.isclose(last["val_loss"], 0.25 * last["val_a_loss"] + 0.75 * last["val_b_loss"], rel_tol=1e-5)


def test_keras_initialisation_glorot_kernels_zero_biases():
    model = build_dedicated("mlp", (1, 28, 28), 10, seed=3)
    first = model[1]
    limit = math.sqrt(6 / (784 + 1000))
    assert first.weight.abs().max() <= limit and first.weight.abs().max() > 0.9 * limit
    assert torch.count_nonzero(first.bias) == 0
    again = build_dedicated("mlp", (1, 28, 28), 10, seed=3)
    assert torch.equal(first.weight, again[1].weight)


def test_architectures_match_spec_shapes_and_sizes():
    mlp = build_dedicated("mlp", (1, 28, 28), 10, seed=0)
    assert count_parameters(mlp)["params_total"] == 784 * 1000 + 5 * 1000 * 1000 + 1000 * 10 + 6 * 1000 + 10
    cnn = build_dedicated("cnn28", (3, 28, 28), 7, seed=0)
    assert cnn(torch.zeros(2, 3, 28, 28)).shape == (2, 7)
    flat = cnn[11].in_features
    assert flat == 64 * 26 * 26  # two stride-1 2x2 pools: 28 -> 27 -> 26
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        build_dedicated("resnet", (1, 28, 28), 10, seed=0)


def test_options_resolve_per_architecture_and_device():
    from mtlbench.train.accel import AUTO, CPU_AUTO, EAGER, resolve_accel
    from mtlbench.train.kinds.common import stack_seeds

    auto = {option: "auto" for option in ("graphs", "tf32", "bf16", "channels_last", "compile")}
    cpu_auto = {"channels_last": "auto"}
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_accel({**auto, "bf16": "true"}, cpu_auto, "cnn28", cpu) == CPU_AUTO["cnn28"] == Accel(channels_last=True)
    assert resolve_accel(auto, cpu_auto, "mlp", cpu) == EAGER
    assert resolve_accel(auto, {"channels_last": "false"}, "cnn28", cpu) == EAGER
    assert resolve_accel(auto, cpu_auto, "cnn28", cuda) == AUTO["cnn28"] and AUTO["cnn28"].channels_last
    assert resolve_accel(auto, {"channels_last": "false"}, "cnn28", cuda) == AUTO["cnn28"]  # cpu section: CPU only
    forced = resolve_accel({**auto, "graphs": "false", "compile": "true"}, cpu_auto, "mlp", cuda)
    assert not forced.graphs and forced.compile and forced.tf32 == AUTO["mlp"].tf32
    assert stack_seeds("auto", cuda, "mlp") and not stack_seeds("auto", cuda, "cnn28")
    assert not stack_seeds("auto", cpu, "mlp") and stack_seeds("true", cpu, "cnn28")


def _conv_data(rows: int = 192, shape=(1, 8, 8)) -> TensorSet:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (rows,), generator=g)
    x = torch.rand(rows, *shape, generator=g) * 0.3
    x.view(rows, -1)[torch.arange(rows), y] += 1.0
    return TensorSet((x,), (y,))


def test_channels_last_on_cpu_trains_as_nchw_within_float_noise_and_deterministically():
    """NHWC sums each convolution in another order than NCHW, so the two trainings part by float
    noise that grows with every step, at a rate that depends on the CPU's kernels (measured at epoch
    3: 1e-7 relative on AMD EPYC, 2.8e-3 on Intel Sapphire Rapids). What bounds it on every CPU is
    what "the same training" means: the gap stays an order of magnitude below the gap a different
    seed makes, epoch by epoch; and one layout run twice is bit-identical."""
    data = _conv_data()
    protocol = _small_protocol(max_epochs=3, patience=None)
    runs = {}
    for label, accel, seed in (("nchw", EAGER, 0), ("nhwc", Accel(channels_last=True), 0),
                               ("nhwc again", Accel(channels_last=True), 0), ("nchw seed 1", EAGER, 1)):
        model = build_dedicated("cnn28", (1, 8, 8), 10, seed=seed)
        result = fit(model, data, protocol, seed=seed, task_names=("t",), accel=accel)
        runs[label] = ([r["val_loss"] for r in result.history], [p.detach().clone() for p in model.parameters()])
        if label == "nhwc":
            assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    (nchw_loss, nchw_w), (loss, w), (loss2, w2) = runs["nchw"], runs["nhwc"], runs["nhwc again"]
    assert loss == loss2 and all(torch.equal(a, b) for a, b in zip(w, w2))
    other_seed = runs["nchw seed 1"][0]
    for epoch, (a, b, c) in enumerate(zip(nchw_loss, loss, other_seed), start=1):
        assert abs(a - b) < 0.1 * abs(a - c), f"epoch {epoch}: layouts differ by {abs(a - b):.2e}, seeds by {abs(a - c):.2e}"
    # Adam steps a weight whose gradient is ~0 by ~lr in the direction of that gradient's rounding
    assert all(torch.allclose(a, b, atol=3 * protocol.lr) for a, b in zip(nchw_w, w))  # measured 1.8e-3


def test_adam_is_fused_where_no_tail_and_updates_as_the_default_adam_within_float_noise():
    """Fused Adam on CPU for tensors whose per-copy size has no vector tail (so stacked seeds update as
    lone ones, tests/test_multiseed.py); the few others take the default kernel. Either way it is
    Adam: a few steps land where torch.optim.Adam's default implementation lands, within float noise."""
    from mtlbench.train.optim import FUSED_CPU_ALIGN, make_optimizer

    cpu = torch.device("cpu")
    model = build_dedicated("mlp", (1, 4, 4), 10, seed=0)  # weights 16x1000 ... biases 1000 and 10
    groups = make_optimizer(model.parameters(), KERAS_FAITHFUL, cpu).param_groups
    fused = {p.numel() for g in groups if g["fused"] for p in g["params"]}
    unfused = {p.numel() for g in groups if not g["fused"] for p in g["params"]}
    assert fused == {16_000, 1_000_000, 10_000} and unfused == {1000, 10}
    assert all(n % FUSED_CPU_ALIGN == 0 for n in fused)
    stacked = [torch.zeros(3, 1000, requires_grad=True), torch.zeros(3, 16, requires_grad=True)]  # 3 copies
    by_copy = make_optimizer(stacked, KERAS_FAITHFUL, cpu, copies=3).param_groups
    assert [(g["fused"], [p.shape[1] for p in g["params"]]) for g in by_copy] == [(True, [16]), (False, [1000])]

    reference = build_dedicated("mlp", (1, 4, 4), 10, seed=0)
    plain = torch.optim.Adam(reference.parameters(), lr=KERAS_FAITHFUL.lr, betas=KERAS_FAITHFUL.betas,
                             eps=KERAS_FAITHFUL.eps)
    ours = make_optimizer(model.parameters(), KERAS_FAITHFUL, cpu)
    data = _blobs(64, seed=3)
    for net, optimizer in ((model, ours), (reference, plain)):
        for _ in range(3):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(data.inputs[0]), data.targets[0]).backward()
            optimizer.step()
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
