"""Each loss-combination scheme's formula, pinned on hand-computed cases."""

import math

import pytest
import torch
from synthetic import two_task_images

from mtlbench.train.methods import (
    DynamicWeightAverage, GeometricMean, Uncertainty, Weighted, make_method as make_combination,
)


def test_fixed_sum_and_mean_are_weighted_sums():
    losses = torch.tensor([1.0, 2.0, 4.0])
    assert float(make_combination("sum", 3)(losses)) == 7.0
    assert float(make_combination("mean", 3)(losses)) == pytest.approx(7.0 / 3)
    fixed = make_combination("fixed", 3, [0.5, 0.1, 1.0])
    assert float(fixed(losses)) == pytest.approx(0.5 + 0.2 + 4.0)
    assert fixed.effective_weights(losses).tolist() == pytest.approx([0.5, 0.1, 1.0])
    with pytest.raises(ValueError, match="fixed weighting needs 3 weights"):
        make_combination("fixed", 3, [1.0])
    with pytest.raises(ValueError, match="allowed: sum, mean, fixed, geometric, uncertainty, dwa"):
        make_combination("max", 3)


def test_geometric_mean_and_its_gradient():
    losses = torch.tensor([1.0, 4.0, 16.0], requires_grad=True)
    combination = GeometricMean()
    total = combination(losses)
    assert float(total.detach()) == pytest.approx(4.0)  # (1 * 4 * 16) ** (1/3)
    total.backward()
    expected = [4.0 / (3 * 1.0), 4.0 / (3 * 4.0), 4.0 / (3 * 16.0)]  # total / (K L_k)
    assert losses.grad.tolist() == pytest.approx(expected)
    assert combination.effective_weights(losses.detach()).tolist() == pytest.approx(expected)


def test_uncertainty_weighting_formula_and_weights_moving_with_the_losses():
    combination = Uncertainty(2)
    losses = torch.tensor([3.0, 0.2])
    # at log_var = 0 (s = 1): total = sum L_k / 2 + log 1
    assert float(combination(losses).detach()) == pytest.approx(1.6)
    with torch.no_grad():
        combination.log_var.copy_(torch.tensor([math.log(4.0), 0.0]))  # s_1 = 2
    assert float(combination(losses).detach()) == pytest.approx(3.0 / 8 + math.log(2.0) + 0.1)
    assert combination.effective_weights(losses).tolist() == pytest.approx([1 / 8, 1 / 2])

    learned = Uncertainty(2)
    optimizer = torch.optim.SGD(learned.parameters(), lr=0.1)
    for _ in range(200):  # the optimum is s_k^2 = L_k: a large loss gets a small weight
        optimizer.zero_grad()
        learned(losses).backward()
        optimizer.step()
    weights = learned.effective_weights(losses)
    assert float(weights[0]) < 0.5 < float(weights[1])
    assert torch.exp(learned.log_var).tolist() == pytest.approx(losses.tolist(), rel=0.05)


def test_dwa_weights_are_one_for_two_epochs_then_follow_the_loss_ratios():
    dwa = DynamicWeightAverage(3, temperature=2.0)
    losses = torch.tensor([1.0, 1.0, 1.0])
    assert dwa.effective_weights(losses).tolist() == [1.0, 1.0, 1.0]  # epoch 1
    dwa.end_epoch(torch.tensor([1.0, 2.0, 4.0]))
    assert dwa.effective_weights(losses).tolist() == [1.0, 1.0, 1.0]  # epoch 2
    dwa.end_epoch(torch.tensor([0.5, 2.0, 2.0]))  # ratios 0.5, 1.0, 0.5
    e_small, e_one = math.exp(0.25), math.exp(0.5)
    z = 2 * e_small + e_one
    expected = [3 * e_small / z, 3 * e_one / z, 3 * e_small / z]
    weights = dwa.effective_weights(losses)
    assert weights.tolist() == pytest.approx(expected)
    assert float(weights.sum()) == pytest.approx(3.0)
    assert float(dwa(torch.tensor([1.0, 2.0, 3.0]))) == pytest.approx(expected[0] + 2 * expected[1] + 3 * expected[2])


def test_every_scheme_trains_a_two_task_model_and_reports_weights_per_epoch():
    from mtlbench.models import build_shared
    from mtlbench.train.loop import fit
    from mtlbench.train.protocols import hs_protocol
    from dataclasses import replace

    data = two_task_images(200, 8)
    protocol = replace(hs_protocol(epochs=4, early_stopping=False), batch_size=32)
    for scheme in ("sum", "geometric", "uncertainty", "dwa"):
        combination = make_combination(scheme, 2)
        result = fit(build_shared("cifar_shared", (3, 8, 8), (2, 2), seed=0), data, protocol, 0, ("a", "b"),
                     method=combination)
        weights = [(r["a_weight"], r["b_weight"]) for r in result.history]
        assert len(weights) == 4 and result.history[-1]["loss"] < result.history[0]["loss"], scheme
        if scheme == "dwa":
            assert weights[0] == weights[1] == (1.0, 1.0) and sum(weights[3]) == pytest.approx(2.0)
            assert weights[3] != (1.0, 1.0)
        if scheme == "uncertainty":
            assert weights[0] != weights[-1]  # the learned weights moved
    assert isinstance(make_combination("sum", 2), Weighted)
