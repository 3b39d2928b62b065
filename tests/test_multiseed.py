"""Seeds trained together in one grouped network give exactly what each seed gives alone (CPU)."""

from dataclasses import replace

import pytest
import torch

from mtlbench.data.tasks import TensorSet
from mtlbench.models import build_dedicated
from mtlbench.train.accel import EAGER, Accel
from mtlbench.train.loop import fit, predict_logits
from mtlbench.train.multiseed import fit_seeds, seed_models, seed_stack
from mtlbench.train.protocols import KERAS_FAITHFUL


def _untimed(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


@pytest.mark.parametrize("arch, shape, accel", [("mlp", (1, 6, 6), EAGER), ("cnn28", (1, 8, 8), EAGER),
                                                ("cnn28", (1, 8, 8), Accel(channels_last=True))])
def test_stacked_seeds_match_single_seed_runs_exactly(arch, shape, accel):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (240,), generator=g)
    x = torch.rand(240, *shape, generator=g) * 0.3
    x.view(240, -1)[torch.arange(240), y] += 1.0
    data = TensorSet((x,), (y,))
    # patience 1, min_delta 0.1: these seeds stop at different epochs, exercising freezing
    protocol = replace(KERAS_FAITHFUL, batch_size=32, max_epochs=8, patience=1, min_delta=0.1)
    seeds = (3, 4, 5)
    stack = seed_stack(arch, shape, 10, seeds)
    together = fit_seeds(stack, data, protocol, seeds, "t", accel=accel)
    epochs = set()
    for i, seed in enumerate(seeds):
        alone = build_dedicated(arch, shape, 10, seed)
        single = fit(alone, data, protocol, seed, ("t",), accel=accel)
        assert _untimed(together[i].history) == _untimed(single.history)
        assert together[i].best_val_loss == single.best_val_loss
        extracted = seed_models(stack, arch, shape, 10, accel)[i]
        assert all(torch.equal(a, b) for a, b in zip(extracted.parameters(), alone.parameters()))
        assert torch.equal(predict_logits(extracted, (x,))[0], predict_logits(alone, (x,))[0])
        epochs.add(single.epochs_trained)
    assert len(epochs) > 1, "the seeds should have stopped at different epochs"


def test_runner_gives_identical_results_stacked_or_not(idx_mirror, tmp_path):
    import json

    import numpy as np

    from mtlbench.config import parse_params
    from mtlbench.data.prepared import prepare
    from mtlbench.studies import STUDIES
    from mtlbench.train.runner import run_study

    mirror, sources = idx_mirror
    for name in ("digits", "fashion"):
        prepare(sources[name], str(mirror), True, tmp_path / "raw", tmp_path / "prepared")
    outputs = {}
    for stacked in (True, False):
        params = parse_params({"run": {"seeds": [0, 1], "device": "cpu", "train_limit": 100, "max_epochs": 2,
                                       "variants": ["dedicated"], "stack_seeds": stacked, "progress": False,
                                       "train_sample": "first"}},
                              {}, tmp_path)
        out = tmp_path / f"results-{stacked}"
        run_study(STUDIES["mnist_fashion_mlp"], params, tmp_path / "prepared", out)
        outputs[stacked] = out
    for seed in (0, 1):
        a, b = (outputs[s] / "dedicated" / f"seed{seed}" for s in (True, False))
        with np.load(a / "predictions.npz") as pa, np.load(b / "predictions.npz") as pb:
            assert all(np.array_equal(pa[k], pb[k]) for k in pa.files)
        ra, rb = (json.loads((d / "run.json").read_text())["tasks"] for d in (a, b))
        for task in ("digits", "fashion"):
            assert _untimed(ra[task]["history"]) == _untimed(rb[task]["history"])
