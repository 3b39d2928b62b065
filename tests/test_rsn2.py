"""RSN2: disjoint exact-count masks (degenerate scores included), no gradient at masked positions,
matched initialisation, independent streams, and identical predictions after packing."""

import pytest
import torch
import torch.nn.functional as F

from mtlbench.data.tasks import TensorSet
from mtlbench.models import build_dedicated
from mtlbench.models.packing import NO_TASK, pack, packed_counts, unpack
from mtlbench.models.rsn2 import RSN2Net, init_rsn2
from mtlbench.models.store import load_model, save_model
from mtlbench.train.masks import compute_masks, select_disjoint


def _assert_disjoint_exact(masks: torch.Tensor, keep_fraction: float):
    per_task = masks.reshape(masks.shape[0], -1)
    k = round(keep_fraction * per_task.shape[1])
    assert per_task.sum(1).tolist() == [k] * masks.shape[0]
    assert int(per_task.sum(0).max()) <= 1


@pytest.mark.parametrize("scores", [
    torch.rand(3, 20, 10),
    torch.zeros(3, 20, 10),  # the original's degenerate case: percentile 0, everything passes
    torch.cat([torch.zeros(1, 20, 10), torch.rand(2, 20, 10)]) * (torch.rand(3, 20, 10) > 0.95),  # mostly zeros
    torch.ones(3, 20, 10),  # all ties
])
def test_masks_are_disjoint_with_exact_counts(scores):
    masks = select_disjoint(scores, 0.3)
    _assert_disjoint_exact(masks, 0.3)


def test_masks_prefer_high_scores_and_respect_task_order():
    scores = torch.tensor([[5.0, 4.0, 0.0, 0.0], [5.0, 4.0, 3.0, 0.0]])
    masks = select_disjoint(scores, 0.5)
    assert masks.tolist() == [[True, True, False, False], [False, False, True, True]]


def test_too_many_tasks_for_the_kept_fraction_is_an_error():
    with pytest.raises(ValueError, match="need 12 of 10 positions"):
        select_disjoint(torch.rand(3, 10), 0.4)


def _sample(n_tasks: int, n: int = 64, shape=(1, 28, 28)) -> TensorSet:
    g = torch.Generator().manual_seed(0)
    return TensorSet(tuple(torch.rand(n, *shape, generator=g) for _ in range(n_tasks)),
                     tuple(torch.randint(0, 10, (n,), generator=g) for _ in range(n_tasks)))


@pytest.mark.parametrize("method", ["gradient", "magnitude"])
def test_compute_masks_on_every_layer(method):
    model = init_rsn2(RSN2Net("mlp", ((1, 28, 28),) * 2, (10, 10)), seed=0)
    compute_masks(model, method, 0.1, _sample(2), batch_size=16)
    for layer in model.masked_layers():
        _assert_disjoint_exact(layer.weight_mask, 0.1)
        _assert_disjoint_exact(layer.bias_mask, 0.1)  # biases start at 0: all-tie scores under magnitude
        assert torch.count_nonzero(layer.weight[~layer.weight_mask]) == 0


def test_masked_positions_get_zero_gradient():
    model = init_rsn2(RSN2Net("cnn28", ((1, 28, 28),) * 2, (10, 10)), seed=0)
    compute_masks(model, "magnitude", 0.2)
    sample = _sample(2, n=4)
    outputs = model(*sample.inputs)
    sum(F.cross_entropy(o, y) for o, y in zip(outputs, sample.targets)).backward()
    for layer in model.masked_layers():
        assert torch.count_nonzero(layer.weight.grad[~layer.weight_mask]) == 0
        assert torch.count_nonzero(layer.bias.grad[~layer.bias_mask]) == 0
        assert torch.count_nonzero(layer.weight.grad[layer.weight_mask]) > 0


def test_matched_initialisation_copies_the_dedicated_model():
    model = init_rsn2(RSN2Net("mlp", ((1, 28, 28),) * 2, (10, 10)), seed=5)
    dedicated = build_dedicated("mlp", (1, 28, 28), 10, seed=5)
    for t in range(2):
        assert torch.equal(model.masked_layers()[0].weight[t], dedicated[1].weight)
    original = init_rsn2(RSN2Net("mlp", ((1, 28, 28),) * 2, (10, 10)), seed=5, mode="original")
    first = original.masked_layers()[0].weight
    assert not torch.equal(first[0], first[1]) and abs(float(first.detach().std()) - 0.05) < 0.001


@pytest.mark.parametrize("arch", ["mlp", "cnn28"])
def test_task_streams_are_independent_and_match_a_dedicated_model(arch):
    model = init_rsn2(RSN2Net(arch, ((1, 28, 28),) * 2, (10, 10)), seed=1).eval()
    a, b = torch.rand(3, 1, 28, 28), torch.rand(3, 1, 28, 28)
    out_a, _ = model(a, b)
    out_a2, _ = model(a, torch.zeros_like(b))
    assert torch.allclose(out_a, out_a2)
    dedicated = build_dedicated(arch, (1, 28, 28), 10, seed=1).eval()  # unmasked + matched = identical net
    assert torch.allclose(out_a, dedicated(a), atol=1e-5)


@pytest.mark.parametrize("arch", ["mlp", "cnn28"])
def test_packing_keeps_predictions_and_the_dedicated_budget(arch, tmp_path):
    model = init_rsn2(RSN2Net(arch, ((1, 28, 28),) * 2, (10, 10)), seed=2)
    compute_masks(model, "gradient", 0.2 if arch == "cnn28" else 0.1, _sample(2, n=16), batch_size=8)
    with torch.no_grad():  # move off the initial values so packing is tested on "trained" weights
        for layer in model.masked_layers():
            layer.weight.add_(torch.randn_like(layer.weight) * 0.01 * layer.weight_mask)
    model.eval()
    x = _sample(2, n=8).inputs
    before = model(*x)
    packed = pack(model)
    after = unpack(packed)(*x)
    assert all(torch.equal(p, q) for p, q in zip(before, after))
    dedicated_params = sum(p.numel() for p in build_dedicated(arch, (1, 28, 28), 10, 0).parameters())
    counts = packed_counts(packed)
    assert counts["params_packed"] == dedicated_params
    assert counts["params_owned"] == sum(int(layer.weight_mask.sum() + layer.bias_mask.sum()) for layer in model.masked_layers())
    assert all(layer["weight_owner"].dtype == torch.uint8 for layer in packed["layers"])
    assert int((packed["layers"][0]["weight_owner"] == NO_TASK).sum()) > 0
    size = save_model(tmp_path / "m.pt", model)
    assert size == (tmp_path / "m.pt").stat().st_size
    reloaded = load_model(tmp_path / "m.pt")
    assert all(torch.equal(p, q) for p, q in zip(before, reloaded(*x)))


THREE_STREAMS = ((3, 28, 28), (1, 28, 28), (1, 28, 28))  # cifar_mnist_fashion_cnn


def test_streams_with_different_channels_get_one_stem_layer_per_channel_count(tmp_path):
    model = init_rsn2(RSN2Net("cnn28", THREE_STREAMS, (10, 10, 10)), seed=4)
    assert model.stem_groups == [[0], [1, 2]]
    assert model.stem[0].weight.shape == (1, 32, 3, 3, 3) and model.stem[1].weight.shape == (2, 32, 1, 3, 3)
    x = (torch.rand(2, 3, 28, 28), torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28))
    dedicated = build_dedicated("cnn28", (3, 28, 28), 10, seed=4).eval()
    assert torch.allclose(model.eval()(*x)[0], dedicated(x[0]), atol=1e-5)
    compute_masks(model, "magnitude", 0.1)
    before = model(*x)
    assert all(torch.equal(p, q) for p, q in zip(before, unpack(pack(model))(*x)))


def test_phases_train_only_the_weighted_tasks():
    from dataclasses import replace

    from mtlbench.data.tasks import TaskData
    from mtlbench.studies import TASKS
    from mtlbench.train.loop import fit
    from mtlbench.train.protocols import KERAS_FAITHFUL
    from mtlbench.train.kinds.common import phase_train_set

    g = torch.Generator().manual_seed(0)
    tasks = [TaskData(TASKS[name], TensorSet((torch.rand(40, *shape, generator=g),), (torch.randint(0, 10, (40,), generator=g),)),
                      TensorSet((torch.rand(8, *shape, generator=g),), (torch.randint(0, 10, (8,), generator=g),)))
             for name, shape in zip(("cifar10_28", "digits", "fashion"), THREE_STREAMS)]
    model = init_rsn2(RSN2Net("cnn28", THREE_STREAMS, (10, 10, 10)), seed=0)
    compute_masks(model, "magnitude", 0.1)
    protocol = replace(KERAS_FAITHFUL, batch_size=16, max_epochs=1)

    def slices(task):
        return [layer.weight[i].detach().clone() for layer, i in model.slices(task)]

    for weights, trained in (((1.0, 0.0, 0.0), {0}), ((0.0, 1.0, 1.0), {1, 2})):
        before = [slices(t) for t in range(3)]
        data = phase_train_set(tasks, weights)
        inactive = next(t for t in range(3) if t not in trained)
        assert torch.count_nonzero(data.inputs[inactive]) == 0  # inactive streams see zeros
        fit(model, data, protocol, 0, ("cifar10_28", "digits", "fashion"), loss_weights=weights)
        for t in range(3):
            unchanged = all(torch.equal(a, b) for a, b in zip(before[t], slices(t)))
            assert unchanged == (t not in trained), (weights, t)
