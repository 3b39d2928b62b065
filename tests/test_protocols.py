"""The protocols' parts pinned on hand-computed cases: Keras' Adam (epsilon hat), Keras' clipped
cross-entropy, the modern learning-rate schedule, augmentation; and the modern protocol end to
end: deterministic, and a seed trained alone or in a stack of seeds trains identically (CPU)."""

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mtlbench.config import ParamsError, defaults, parse_params
from mtlbench.data.tasks import TensorSet
from mtlbench.models import build_dedicated
from mtlbench.train import augment
from mtlbench.train.loop import fit
from mtlbench.train.multiseed import fit_seeds, seed_stack
from mtlbench.train.objectives import KERAS_EPSILON, Objective, row_cross_entropy, task_scores
from mtlbench.train.optim import KerasAdam, StepSchedule, keras_epsilon, learning_rate, make_optimizer
from mtlbench.train.protocols import KERAS_FAITHFUL, MODERN

# ------------------------------------------------------------------ Keras' Adam

LR, B1, B2, EPS = 0.1, 0.9, 0.999, 0.05  # a large eps, so that where it enters shows in the result
GRADS = (2.0, -0.5)


def keras_two_steps(p: float) -> float:
    """keras.optimizers.Adam written out for two steps of a scalar (float64 by hand)."""
    m = v = 0.0
    for t, g in enumerate(GRADS, start=1):
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        p -= LR * math.sqrt(1 - B2 ** t) / (1 - B1 ** t) * m / (math.sqrt(v) + EPS)
    return p


def torch_two_steps(p: float) -> float:
    """torch.optim.Adam's formula (eps after the bias correction), for contrast."""
    m = v = 0.0
    for t, g in enumerate(GRADS, start=1):
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        p -= LR * (m / (1 - B1 ** t)) / (math.sqrt(v / (1 - B2 ** t)) + EPS)
    return p


def _two_steps(optimizer_for) -> float:
    param = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer, before_step = optimizer_for(param)
    for g in GRADS:
        param.grad = torch.tensor([g])
        before_step()
        optimizer.step()
    return float(param.detach())


def test_keras_epsilon_hat_adam_matches_the_closed_form_two_step_update():
    protocol = replace(KERAS_FAITHFUL, lr=LR, betas=(B1, B2), eps=EPS)
    expected = keras_two_steps(1.0)
    assert abs(expected - torch_two_steps(1.0)) > 1e-3  # the two formulas really differ here

    def cpu_path(param):  # PyTorch's Adam with Keras' eps written in before each step
        optimizer = make_optimizer([param], protocol, torch.device("cpu"))
        return optimizer, StepSchedule(optimizer, protocol, steps_per_epoch=10).before_step

    def keras_adam(param):  # the graph-safe optimizer CUDA uses, run here on the CPU
        return KerasAdam([param], lr=LR, betas=(B1, B2), eps=EPS), lambda: None

    assert _two_steps(cpu_path) == pytest.approx(expected, abs=1e-6)
    assert _two_steps(keras_adam) == pytest.approx(expected, abs=1e-6)
    assert keras_epsilon(1e-7, 0.999, 1) == pytest.approx(3.162e-6, rel=1e-3)  # the step-1 value


def test_protocols_without_epsilon_hat_leave_torch_adam_as_it_is():
    protocol = replace(KERAS_FAITHFUL, lr=LR, betas=(B1, B2), eps=EPS, epsilon_hat=False)

    def plain(param):
        optimizer = make_optimizer([param], protocol, torch.device("cpu"))
        return optimizer, StepSchedule(optimizer, protocol, steps_per_epoch=10).before_step

    assert _two_steps(plain) == pytest.approx(torch_two_steps(1.0), abs=1e-6)


# ------------------------------------------------------------------ Keras' clipped cross-entropy

CLIPPED = Objective(clip_probabilities=True)


def test_clipped_cross_entropy_against_hand_values_and_its_zero_gradients():
    logits = torch.tensor([[0.0, math.log(3.0)],  # p_true = 1/4: inside the clip, -log(1/4)
                           [0.0, 40.0],  # p_true = e^-40 ~ 4e-18: clipped to 1e-7 -> 16.118, no gradient
                           [40.0, 0.0]],  # p_true ~ 1: clipped to 1 - 1e-7, no gradient
                          requires_grad=True)
    labels = torch.tensor([0, 0, 0])
    loss = row_cross_entropy(logits, labels, CLIPPED)
    assert loss[0].item() == pytest.approx(math.log(4.0), rel=1e-6)
    assert loss[1].item() == pytest.approx(-math.log(KERAS_EPSILON), rel=1e-4)  # 16.118
    assert loss[1].item() == pytest.approx(16.118, abs=1e-3)
    assert loss[2].item() == pytest.approx(-math.log1p(-KERAS_EPSILON), abs=1e-6)
    loss.sum().backward()
    assert logits.grad[1].abs().sum() == 0 and logits.grad[2].abs().sum() == 0
    torch.testing.assert_close(logits.grad[0], torch.tensor([-0.75, 0.75]))  # softmax - onehot
    # the logits loss of the confidently wrong row: 40 and a full gradient
    plain = row_cross_entropy(logits.detach()[1:2], labels[1:2])
    assert plain.item() == pytest.approx(40.0, abs=1e-4)


def test_clipped_losses_are_the_same_batched_or_per_task():
    g = torch.Generator().manual_seed(0)
    outputs = [torch.randn(8, 10, generator=g) * 20 for _ in range(3)]
    targets = [torch.randint(0, 10, (8,), generator=g) for _ in range(3)]
    batched, _ = task_scores(outputs, targets, CLIPPED)
    alone = torch.stack([task_scores([o], [y], CLIPPED)[0][0] for o, y in zip(outputs, targets)])
    assert torch.equal(batched, alone)
    assert float(batched.max()) <= -math.log(KERAS_EPSILON) + 1e-4


# ------------------------------------------------------------------ the modern schedule

def test_warmup_then_cosine_learning_rate_at_chosen_steps():
    protocol = replace(MODERN, lr=0.01, warmup_epochs=1, max_epochs=5)  # 10 steps per epoch: 50 steps
    at = lambda step: learning_rate(protocol, step, steps_per_epoch=10)  # noqa: E731
    assert at(1) == pytest.approx(0.001)  # 1/10 of the warm-up
    assert at(5) == pytest.approx(0.005)
    assert at(10) == pytest.approx(0.01)  # warm-up ends at the peak
    assert at(30) == pytest.approx(0.005)  # half way through the 40 cosine steps: half the peak
    assert at(20) == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert at(50) == pytest.approx(0.0, abs=1e-12)  # the last step
    assert learning_rate(replace(protocol, schedule="constant", warmup_epochs=0), 37, 10) == 0.01


def test_step_schedule_writes_the_learning_rate_into_every_group():
    protocol = replace(MODERN, lr=0.01, warmup_epochs=1, max_epochs=2)
    params = [torch.nn.Parameter(torch.zeros(16)), torch.nn.Parameter(torch.zeros(3))]  # a fused and a plain group
    optimizer = make_optimizer(params, protocol, torch.device("cpu"))
    assert isinstance(optimizer, torch.optim.AdamW) and len(optimizer.param_groups) == 2
    schedule = StepSchedule(optimizer, protocol, steps_per_epoch=4)
    seen = []
    for _ in range(8):
        schedule.before_step()
        seen.append([g["lr"] for g in optimizer.param_groups])
    assert [a for a, b in seen if a == b] == [a for a, _ in seen]
    assert [round(a, 6) for a, _ in seen[:4]] == [0.0025, 0.005, 0.0075, 0.01]
    assert seen[-1][0] == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------ augmentation

def test_augmentation_shifts_each_image_within_its_range_and_flips_only_colour_images():
    g = torch.Generator().manual_seed(0)
    moves = augment.draw(g, 4000, 1)
    assert moves.shape == (4000, 3) and moves.dtype == torch.int64
    assert set(moves[:, :2].unique().tolist()) == set(range(-augment.MAX_SHIFT_1CH, augment.MAX_SHIFT_1CH + 1))
    assert moves[:, 2].abs().sum() == 0  # digits and clothes are not flipped
    colour = augment.draw(torch.Generator().manual_seed(0), 4000, 3)
    assert set(colour[:, :2].unique().tolist()) == set(range(-augment.MAX_SHIFT_3CH, augment.MAX_SHIFT_3CH + 1))
    assert set(colour[:, 2].unique().tolist()) == {0, 1}


def test_augmentation_moves_pixels_as_drawn_by_exact_copies():
    x = torch.rand(3, 3, 8, 8)
    moves = torch.tensor([[0, 0, 0], [1, -2, 0], [0, 0, 1]])
    out = augment.apply(x, moves)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out[0], x[0])  # no move
    assert torch.equal(out[1, :, 1:, :6], x[1, :, :7, 2:])  # down 1, left 2: exact copies
    assert out[1, :, 0].abs().sum() == 0 and out[1, :, :, 6:].abs().sum() == 0  # zero fill
    assert torch.equal(out[2], x[2].flip(-1))
    assert set(out.flatten().tolist()) <= set(x.flatten().tolist()) | {0.0}


def test_augmentation_draws_are_deterministic_per_seed():
    first = augment.draw(torch.Generator().manual_seed(5), 64, 3)
    assert torch.equal(first, augment.draw(torch.Generator().manual_seed(5), 64, 3))
    assert not torch.equal(first, augment.draw(torch.Generator().manual_seed(6), 64, 3))
    assert len({tuple(m) for m in first.tolist()}) > 20  # every image its own draw


# ------------------------------------------------------------------ the modern protocol end to end

def _images(n: int = 240, shape=(1, 8, 8)) -> TensorSet:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.rand(n, *shape, generator=g) * 0.3
    x.view(n, -1)[torch.arange(n), y * 3] += 1.0
    return TensorSet((x,), (y,))


SMALL_MODERN = replace(MODERN, batch_size=32, max_epochs=4)


def _untimed(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def test_modern_protocol_is_deterministic_and_augmentation_changes_training():
    data = _images()
    runs = [fit(build_dedicated("mlp", (1, 8, 8), 10, 0), data, protocol, 0, ("t",)).history
            for protocol in (SMALL_MODERN, SMALL_MODERN, replace(SMALL_MODERN, augment=False))]
    assert _untimed(runs[0]) == _untimed(runs[1])
    assert _untimed(runs[0]) != _untimed(runs[2])
    assert len(runs[0]) == SMALL_MODERN.max_epochs  # a fixed budget: no early stop


@pytest.mark.parametrize("arch", ["mlp", "cnn28"])
def test_modern_protocol_stacked_seeds_match_single_seed_runs_exactly(arch):
    data, shape, seeds = _images(), (1, 8, 8), (3, 4)
    together = fit_seeds(seed_stack(arch, shape, 10, seeds), data, SMALL_MODERN, seeds, "t")
    for i, seed in enumerate(seeds):
        alone = fit(build_dedicated(arch, shape, 10, seed), data, SMALL_MODERN, seed, ("t",))
        assert _untimed(together[i].history) == _untimed(alone.history)


# ------------------------------------------------------------------ params

def _params(**sections):
    raw = defaults()
    for section, values in sections.items():
        raw[section].update(values)
    return parse_params(raw, {}, Path("/repo"))


def test_an_unknown_protocol_names_the_allowed_ones():
    with pytest.raises(ParamsError, match=r"run.protocol: 'fancy' is not allowed; allowed values: faithful, modern"):
        _params(run={"protocol": "fancy"})


def test_modern_keys_under_faithful_are_an_error_not_ignored():
    with pytest.raises(ParamsError, match=r"modern.lr: is set \(0.003\) but run.protocol is 'faithful' for every run.*run.protocol: modern"):
        _params(modern={"lr": 0.003})
    params = _params(run={"protocol": "modern"}, modern={"lr": 0.003, "epochs": 20})
    assert params.modern.overrides()["lr"] == 0.003 and params.modern.overrides()["max_epochs"] == 20


def test_modern_values_are_checked():
    with pytest.raises(ParamsError, match=r"modern.label_smoothing: expected null or a number from 0 to 1 \(exclusive\)"):
        _params(run={"protocol": "modern"}, modern={"label_smoothing": 1.0})
    with pytest.raises(ParamsError, match=r"modern.warmup_epochs: 3 leaves no epoch after the warm-up"):
        _params(run={"protocol": "modern"}, modern={"epochs": 3, "warmup_epochs": 3})


def test_modern_params_reach_the_protocol_of_every_study():
    from mtlbench.studies import STUDIES
    from mtlbench.train.kinds.common import study_protocol

    params = _params(run={"protocol": "modern", "max_epochs": 3}, modern={"lr": 0.003, "augment": False})
    for study in STUDIES.values():
        protocol = study_protocol(study, params)
        assert (protocol.name, protocol.lr, protocol.augment, protocol.max_epochs) == ("modern", 0.003, False, 3)
    modern = _params(run={"protocol": "modern"})
    assert not study_protocol(STUDIES["mnist_fashion_mlp"], modern).augment  # chosen on validation
    assert study_protocol(STUDIES["mnist_fashion_cnn"], modern).augment
    faithful = study_protocol(STUDIES["mnist_fashion_mlp"], _params())
    assert faithful.epsilon_hat and faithful.clip_probabilities and faithful.name == "keras_faithful"


def test_modern_study_runs_reproduce_exactly_through_the_runner(idx_mirror, tmp_path):
    """run.protocol: modern end to end on real MNIST/Fashion rows: the conv study (augmented) and the
    RSN2 variant, trained twice, give identical histories and predictions; the run context records
    the resolved protocol (an MLflow param, part of every unit's key)."""
    import json

    import numpy as np

    from mtlbench.data.prepared import prepare
    from mtlbench.studies import STUDIES
    from mtlbench.train.runner import run_study

    mirror, sources = idx_mirror
    for name in ("digits", "fashion"):
        prepare(sources[name], str(mirror), True, tmp_path / "raw", tmp_path / "prepared")
    params = parse_params({"run": {"seeds": [0], "device": "cpu", "train_limit": 64, "progress": False,
                                   "protocol": "modern"}, "modern": {"epochs": 2}}, {}, tmp_path)
    outs = [tmp_path / f"results-{i}" for i in (0, 1)]
    for out in outs:
        run_study(STUDIES["mnist_fashion_cnn"], params, tmp_path / "prepared", out)
    context = json.loads((outs[0] / "context.json").read_text())
    assert context["protocol"]["name"] == "modern" and context["protocol"]["augment"] is True
    assert context["protocol"]["max_epochs"] == 2
    for variant in ("dedicated", "rsn2"):
        a, b = (out / variant / "seed0" for out in outs)
        with np.load(a / "predictions.npz") as pa, np.load(b / "predictions.npz") as pb:
            assert all(np.array_equal(pa[k], pb[k]) for k in pa.files)
        ra, rb = (json.loads((d / "run.json").read_text())["tasks"] for d in (a, b))
        for task in ("digits", "fashion"):
            assert len(ra[task]["history"]) == 2
            assert _untimed(ra[task]["history"]) == _untimed(rb[task]["history"])
