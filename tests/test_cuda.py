"""The CUDA fast paths compute what the eager float32 loop computes (skipped without a GPU).

CI has no GPU; these run on a lent GPU machine (README "Speed" says how and what they gave).
CUDA kernels round differently from the CPU's, and batched kernels from per-slice ones, so the
comparisons here allow float noise; the same options twice on the same GPU must agree exactly.
"""

from dataclasses import replace

import pytest
import torch
from synthetic import two_task_images

from mtlbench.data.tasks import TensorSet
from mtlbench.models import build_dedicated
from mtlbench.train.accel import Accel, configure_backends
from mtlbench.train.epoch import EpochRunner
from mtlbench.train.optim import make_optimizer
from mtlbench.train.loop import fit, predict_logits
from mtlbench.train.multiseed import fit_seeds, seed_models, seed_stack
from mtlbench.train.protocols import KERAS_FAITHFUL
from mtlbench.train.methods import Weighted

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SHAPE = (1, 12, 12)
# 1000 training rows after the 0.2 validation split at batch 128: 7 full batches and a tail of 104,
# so both captured graphs (full and tail batch) are exercised.
PROTOCOL = replace(KERAS_FAITHFUL, batch_size=128, max_epochs=4, patience=None)


def _data(rows: int = 1250) -> TensorSet:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (rows,), generator=g)
    x = torch.rand(rows, *SHAPE, generator=g) * 0.3
    x.view(rows, -1)[torch.arange(rows), y] += 1.0
    return TensorSet((x.cuda(),), (y.cuda(),))


def _train(arch: str, accel: Accel, seed: int = 0):
    configure_backends(accel)
    model = build_dedicated(arch, SHAPE, 10, seed).cuda()
    result = fit(model, _data(), PROTOCOL, seed, ("t",), accel=accel)
    return model, [r["loss"] for r in result.history], [r["val_loss"] for r in result.history]


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("arch", ["mlp", "cnn28"])
def test_graph_step_trains_as_the_eager_step(arch):
    """The same kernels, replayed from a graph: the same training up to float noise."""
    eager, eager_loss, eager_val = _train(arch, Accel())
    fast, fast_loss, fast_val = _train(arch, Accel(graphs=True))
    assert eager_loss[-1] < eager_loss[0] * 0.7, "the task should be learnable"
    assert fast_loss == pytest.approx(eager_loss, rel=1e-4)
    assert fast_val == pytest.approx(eager_val, rel=1e-4)
    for a, b in zip(fast.parameters(), eager.parameters()):
        assert _relative(a.detach(), b.detach()) < 1e-4


def _first_step(arch: str, accel: Accel, seeds: tuple[int, ...] = (0,)) -> tuple[list[float], list[torch.Tensor]]:
    """Loss and gradients of one training step on one batch of 128 rows, through EpochRunner (the
    gradients it leaves are the step's own: graphs write them, eager steps start from none)."""
    configure_backends(accel)
    if len(seeds) == 1:
        model, streams = build_dedicated(arch, SHAPE, 10, seeds[0]).cuda(), 1
    else:
        model, streams = seed_stack(arch, SHAPE, 10, seeds).cuda(), len(seeds)
    data = _data(128)
    data = TensorSet(data.inputs * streams, data.targets * streams)
    runner = EpochRunner(model, make_optimizer(model.parameters(), PROTOCOL, data.targets[0].device, accel),
                         data, replace(PROTOCOL, batch_size=128), Weighted([1.0] * streams).cuda(), accel=accel)
    losses = runner.epoch([torch.Generator().manual_seed(0) for _ in range(streams)])["task_loss"]
    return losses.tolist(), [p.grad.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("accel, tolerance", [
    (Accel(graphs=True, channels_last=True), 1e-5),
    (Accel(graphs=True, compile=True), 1e-5),
    (Accel(graphs=True, tf32=True), 5e-3),  # TF32 keeps 10 mantissa bits
    (Accel(graphs=True, tf32=True, bf16=True), 3e-2),  # bf16 keeps 7
])
def test_fast_options_compute_the_same_step(accel, tolerance):
    """Loss to the precision's rounding; gradients 20x looser, because the first layers' gradients
    are sums of many cancelling terms (measured on an H100: TF32 3.7%, bf16 10% on conv 1); a
    wrong gradient is off by its own size."""
    loss, grads = _first_step("cnn28", accel)
    reference_loss, reference = _first_step("cnn28", Accel())
    assert loss == pytest.approx(reference_loss, rel=tolerance)
    for a, b in zip(grads, reference):
        assert _relative(a, b) < 20 * tolerance


@pytest.mark.parametrize("arch", ["mlp", "cnn28"])
def test_stacked_seeds_compute_each_seeds_own_step(arch):
    seeds = (3, 4, 5)
    losses, grads = _first_step(arch, Accel(graphs=True), seeds)
    stack = seed_stack(arch, SHAPE, 10, seeds)  # the same structure, to find each seed's slices
    by_name = dict(zip((name for name, _ in stack.named_parameters()), grads))
    for i, seed in enumerate(seeds):
        loss, alone = _first_step(arch, Accel(graphs=True), (seed,))
        assert losses[i] == pytest.approx(loss[0], rel=1e-5)
        stacked = [by_name[name][j] for layer, j in stack.slices(i) for name in _names_of(stack, layer)]
        for a, b in zip(stacked, alone):
            assert _relative(a, b) < 1e-5


def _names_of(stack, layer) -> list[str]:
    prefix = next(n for n, m in stack.named_modules() if m is layer)
    return [f"{prefix}.weight", f"{prefix}.bias"]


@pytest.mark.parametrize("accel", [Accel(graphs=True, tf32=True, channels_last=True),
                                   Accel(graphs=True, tf32=True, bf16=True)])
def test_fast_options_are_deterministic_and_learn_as_well(accel):
    model, loss, val = _train("cnn28", accel)
    again, loss_again, val_again = _train("cnn28", accel)
    assert loss == loss_again and val == val_again
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    _, reference, reference_val = _train("cnn28", Accel())
    assert val[-1] < reference_val[0] * 0.3 and reference_val[-1] < reference_val[0] * 0.3


def test_stacked_seeds_on_cuda_train_like_single_seeds():
    """Batched and single GEMMs round differently and Adam amplifies that over epochs (see the
    step test above for the tight check), so whole runs agree in what they predict, not bit for bit
    (measured: epoch-2 losses 0.190 and 0.164)."""
    accel = Accel(graphs=True)
    configure_backends(accel)
    seeds = (3, 4, 5, 6)
    stack = seed_stack("mlp", SHAPE, 10, seeds).cuda()
    together = fit_seeds(stack, _data(), PROTOCOL, seeds, "t", accel=accel)
    x, y = _data().inputs[0], _data().targets[0]
    for i, seed in enumerate(seeds):
        alone, loss, val = _train("mlp", accel, seed)
        assert together[i].history[-1]["loss"] < together[i].history[0]["loss"] * 0.3
        extracted = seed_models(stack, "mlp", SHAPE, 10)[i]
        agree = (predict_logits(extracted, (x,))[0].argmax(1) == predict_logits(alone, (x,))[0].argmax(1)).float()
        assert float(agree.mean()) > 0.95
        assert float((predict_logits(alone, (x,))[0].argmax(1) == y).float().mean()) > 0.9


def test_hps_with_dropout_and_clipping_replays_deterministically():
    """Dropout inside a captured graph draws from the graph-safe CUDA generator, seeded by fit."""
    from mtlbench.models import build_shared
    from mtlbench.train.protocols import hs_protocol

    cpu = two_task_images(300, 32)
    data = TensorSet(tuple(x.cuda() for x in cpu.inputs), tuple(y.cuda() for y in cpu.targets))
    protocol = replace(hs_protocol(epochs=3, early_stopping=False), batch_size=64)
    histories = []
    for accel in (Accel(graphs=True, tf32=True), Accel(graphs=True, tf32=True)):
        configure_backends(accel)
        model = build_shared("cifar_shared", (3, 32, 32), (2, 2), seed=0).cuda()
        result = fit(model, data, protocol, 0, ("a", "b"), accel=accel)
        histories.append([{k: v for k, v in r.items() if k != "seconds"} for r in result.history])
    assert histories[0] == histories[1]
    assert histories[0][-1]["loss"] < histories[0][0]["loss"]


def test_cifar_small_with_batchnorm_and_reconstruction_graph_matches_eager():
    """The captured step keeps BatchNorm's running statistics and the MSE of a reconstruction head
    as the eager step computes them (warm-up steps are undone, buffers included)."""
    from mtlbench.models import build_shared
    from mtlbench.models.cifar_small import IMAGE_HEAD
    from mtlbench.train.protocols import hs_protocol

    cpu = two_task_images(300, 32)
    x = cpu.inputs[0].cuda()
    data = TensorSet((x,), (cpu.targets[0].cuda(), x))
    protocol = replace(hs_protocol(epochs=2, early_stopping=False), batch_size=64)
    runs = []
    for accel in (Accel(), Accel(graphs=True)):
        configure_backends(accel)
        model = build_shared("cifar_small", (3, 32, 32), (2, IMAGE_HEAD), seed=0).cuda()
        for layer in model.modules():  # dropout masks differ between eager and graph RNG offsets
            if isinstance(layer, torch.nn.Dropout):
                layer.p = 0.0
        result = fit(model, data, protocol, 0, ("a", "image"), accel=accel)
        runs.append((result.history, {k: v.clone() for k, v in model.state_dict().items() if "running" in k}))
    (eager, eager_stats), (graph, graph_stats) = runs
    for e, g in zip(eager, graph):
        assert g["image_loss"] == pytest.approx(e["image_loss"], rel=1e-3)
        assert g["a_loss"] == pytest.approx(e["a_loss"], rel=1e-3)
    for key in eager_stats:
        torch.testing.assert_close(graph_stats[key], eager_stats[key], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("protocol", [PROTOCOL, replace(PROTOCOL, name="modern-like", optimizer="adamw", epsilon_hat=False,
                                                        clip_probabilities=False, label_smoothing=0.1, weight_decay=0.05,
                                                        warmup_epochs=1, schedule="cosine", augment=True)])
def test_keras_adam_and_the_modern_schedule_replay_in_graphs_as_eagerly(protocol):
    """KerasAdam (its step count a device tensor) and the tensor learning rate the schedule fills
    between replays: a captured step trains as the eager one, and the CPU's fused Adam with Keras'
    epsilon per step lands where KerasAdam does."""
    histories = []
    for accel in (Accel(graphs=True), Accel()):
        model = build_dedicated("mlp", SHAPE, 10, 0).cuda()
        histories.append(fit(model, _data(), protocol, 0, ("t",), accel=accel).history)
    for g, e in zip(*histories):
        assert g["loss"] == pytest.approx(e["loss"], rel=1e-4)
        assert g["val_t_accuracy"] == pytest.approx(e["val_t_accuracy"], abs=0.01)
    cpu_model = build_dedicated("mlp", SHAPE, 10, 0)
    data = _data()
    cpu = fit(cpu_model, TensorSet(tuple(x.cpu() for x in data.inputs), tuple(y.cpu() for y in data.targets)),
              protocol, 0, ("t",)).history
    assert cpu[-1]["loss"] == pytest.approx(histories[1][-1]["loss"], rel=1e-3)
