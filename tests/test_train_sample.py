"""run.train_sample: with a train_limit, each seed trains on its own draw of rows, the same for every
variant of that seed and every task on one dataset; `first` keeps the first rows for every seed."""

import json
from pathlib import Path

import pytest
import torch

from mtlbench.config import ParamsError, parse_params
from mtlbench.data.tasks import seed_rows
from mtlbench.studies import STUDIES
from mtlbench.train.runner import plan_units, run_study
from mtlbench.train.training import load_unit_tasks, unit_tasks


def params(tmp_path, **run):
    return parse_params({"run": {"seeds": [0, 1], "device": "cpu", "train_limit": 40, "max_epochs": 1,
                                 "progress": False, **run}}, {}, tmp_path)


def test_a_seeds_rows_are_a_fixed_nested_draw_of_distinct_rows():
    rows = seed_rows("digits", 60000, 3000, 0)
    assert torch.equal(rows, seed_rows("digits", 60000, 3000, 0))  # the same on every call (and machine)
    assert len(set(rows.tolist())) == 3000 and torch.equal(rows, rows.sort().values)
    assert rows.max() >= 3000  # not the first rows
    assert set(seed_rows("digits", 60000, 500, 0).tolist()) <= set(rows.tolist())  # nested in the limit
    other_seed, other_data = seed_rows("digits", 60000, 3000, 1), seed_rows("fashion", 60000, 3000, 0)
    # two independent draws of 3000 of 60000 share about 3000 * 3000 / 60000 = 150 rows
    assert 80 < len(set(rows.tolist()) & set(other_seed.tolist())) < 250
    assert 80 < len(set(rows.tolist()) & set(other_data.tolist())) < 250
    assert seed_rows("digits", 60000, 60000, 0) is None and seed_rows("digits", 50, 60, 0) is None


def test_every_variant_of_a_seed_trains_on_the_same_rows_and_tasks_of_one_dataset_stay_aligned(tmp_path, prepared):
    study = STUDIES["mnist_fashion_hps"]
    p = params(tmp_path, variants=["dedicated", "hps_sum"]).for_run("mnist_fashion_hps")
    units = plan_units(study, [("dedicated", study.tasks), ("hps_sum", study.tasks)], p.run.seeds, False)
    loaded = load_unit_tasks(study, units, p, prepared, tmp_path / "tasks")
    assert all(len(t.train) > 40 for t in loaded.values())  # loaded whole, cut per unit
    cut = {(u.variant, u.tasks, u.seeds): unit_tasks(u, p, loaded) for u in units}
    by_seed = {}
    for (variant, tasks, seeds), chosen in cut.items():
        for task in chosen:
            assert len(task.train) == 40
            full = loaded[task.spec.name].train
            rows = seed_rows(task.spec.dataset, len(full), 40, seeds[0])
            assert torch.equal(task.train.inputs[0], full.inputs[0][rows])  # images and labels of one row
            assert torch.equal(task.train.targets[0], full.targets[0][rows])
            by_seed.setdefault((task.spec.name, seeds[0]), []).append(task.train.targets[0])
    assert all(len(v) == 2 and torch.equal(v[0], v[1]) for v in by_seed.values())  # dedicated and hps_sum alike
    assert not torch.equal(by_seed[("digits", 0)][0], by_seed[("digits", 1)][0])


def test_tasks_on_one_image_tensor_share_one_cut(tmp_path, prepared):
    study = STUDIES["fashion_groups"]
    root = Path(__file__).resolve().parents[1]
    p = params(tmp_path, variants=["hps_sum"]).for_run("fashion_groups")
    units = plan_units(study, [("hps_sum", study.tasks)], (0,), False)
    loaded = load_unit_tasks(study, units, p, prepared, tmp_path / "tasks", root)
    chosen = unit_tasks(units[0], p, loaded)
    assert len(chosen) == 3 and all(t.train.inputs[0] is chosen[0].train.inputs[0] for t in chosen)


def test_the_sample_is_part_of_each_units_key_and_of_the_record(tmp_path, prepared, capsys):
    study, out = STUDIES["mnist_fashion_mlp"], tmp_path / "results"
    run_study(study, params(tmp_path, variants=["dedicated"], seeds=[0]), prepared, out)
    context = json.loads((out / "context.json").read_text())
    assert context["train_sample"] == "per_seed" and context["stack_seeds"] is False
    drawn = (out / "dedicated" / "seed0" / "predictions.npz").read_bytes()
    run_study(study, params(tmp_path, variants=["dedicated"], seeds=[0], train_sample="first", progress=True),
              prepared, out)
    assert "1 unit, 0 kept, 1 to train" in capsys.readouterr().err
    assert (out / "dedicated" / "seed0" / "predictions.npz").read_bytes() != drawn  # other rows, other model
    assert json.loads((out / "context.json").read_text())["train_sample"] == "first"


def test_forced_stacking_of_seeds_that_draw_their_own_rows_is_refused_in_one_line(tmp_path):
    with pytest.raises(ParamsError, match=r"run.stack_seeds: true .* run mnist_fashion_mlp draws its train_limit rows"):
        params(tmp_path, stack_seeds=True, studies=["mnist_fashion_mlp"])
    assert params(tmp_path, stack_seeds=True, train_sample="first").run.stack_seeds == "true"
    assert params(tmp_path, stack_seeds=True, train_limit=None).run.stack_seeds == "true"
    with pytest.raises(ParamsError, match="run.train_sample: .random. is not allowed; allowed values: per_seed, first"):
        params(tmp_path, train_sample="random")
