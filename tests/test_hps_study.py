"""Typed variants, multi-input hard sharing (mnist_fashion_hps) and the checks made before training."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from mtlbench.config import ParamsError, parse_params
from mtlbench.models import build_shared
from mtlbench.models.store import load_model
from mtlbench.serving import FlatIO, example_input, input_shapes
from mtlbench.studies import STUDIES, RSN2Spec, Study, hps, rsn2
from mtlbench.train.runner import check_builds, run_study, variant_plan

STUDY = STUDIES["mnist_fashion_hps"]



def small_params(tmp_path, **run):
    return parse_params({"run": {"seeds": [0], "device": "cpu", "train_limit": 120, "max_epochs": 2,
                                 "progress": False, **run}}, {}, tmp_path)


def test_every_study_and_variant_passes_the_checks_before_training(tmp_path):
    """Every configuration the catalogue holds builds its plan and its methods fit its networks."""
    params = small_params(tmp_path)
    for study in STUDIES.values():
        plan = variant_plan(study, params)
        assert [v for v, _ in plan] == list(study.variants), study.name
        check_builds(study, plan, study.specs())  # every network builds and takes one backward step on a tiny input
    assert {f"hps_{m}" for m in ("gradnorm", "mgda", "pcgrad", "gradvac", "imtl", "cagrad", "nash_mtl",
                                 "aligned_mtl", "rlw", "db_mtl", "famo", "graddrop", "sum", "mean", "fixed",
                                 "geometric", "uncertainty", "dwa")} <= set(STUDY.variants)


def test_a_method_that_does_not_fit_says_so_before_training(tmp_path, prepared):
    bad = replace(STUDY, variant_specs=(hps("hps_mgda_ub", "mgda_ub"),))
    with pytest.raises(ParamsError, match="study mnist_fashion_hps, variant hps_mgda_ub: method mgda_ub needs one "
                                          "representation .* use mgda instead"):
        run_study(bad, small_params(tmp_path), prepared, tmp_path / "never")
    with pytest.raises(ParamsError, match="variant hps_pcgrad: method pcgrad balances several tasks and this run leaves 1"):
        run_study(STUDY, small_params(tmp_path, tasks=["digits"], variants=["hps_pcgrad"]), prepared, tmp_path / "never")
    unknown = replace(STUDY, variant_specs=(hps("hps_x", "cagrad", alpha=2.0),))
    with pytest.raises(ParamsError, match="unknown option 'alpha'; allowed options: c"):
        variant_plan(unknown, small_params(tmp_path))
    assert not (tmp_path / "never").exists()


def test_multi_input_trunk_reads_each_task_through_its_own_head():
    model = build_shared("mlp", (1, 4, 4), (3, 3), seed=0).eval()
    a, b = torch.rand(5, 1, 4, 4), torch.rand(5, 1, 4, 4)
    out_a, out_b = model(a, b)
    with torch.no_grad():
        z_a, z_b = model.trunk(a), model.trunk(b)
        assert torch.allclose(out_a, z_a @ model.heads.weight[0].T + model.heads.bias[0], atol=1e-6)
        assert torch.allclose(out_b, z_b @ model.heads.weight[1].T + model.heads.bias[1], atol=1e-6)
    assert torch.allclose(model(a, torch.zeros_like(b))[0], out_a, atol=1e-6)  # tasks do not mix


def test_mnist_fashion_hps_trains_every_kind_with_its_own_images(tmp_path, prepared):
    params = small_params(tmp_path, variants=["hps_sum", "hps_pcgrad", "hps_nash_mtl"])
    out = tmp_path / "results"
    run_study(STUDY, params, prepared, out)
    for variant, method in (("hps_sum", "sum"), ("hps_pcgrad", "pcgrad"), ("hps_nash_mtl", "nash_mtl")):
        run = json.loads((out / variant / "seed0" / "run.json").read_text())
        assert run["variant"] == variant and run["tasks"]["digits"]["method"] == method
        history = run["tasks"]["fashion"]["history"]
        assert len(history) == 2 and {"digits_weight", "fashion_weight"} <= set(history[0])
        with np.load(out / variant / "seed0" / "predictions.npz") as p:
            assert len(p["digits_pred"]) == len(p["digits_true"]) and len(p["fashion_pred"]) == len(p["fashion_true"])
        model = load_model(out / variant / "seed0" / "model_hps.pt")
        served = FlatIO(model, input_shapes(model, None))
        assert served(example_input(input_shapes(model, None), rows=3)).shape == (3, 20)
    pcgrad = json.loads((out / "hps_pcgrad" / "seed0" / "run.json").read_text())["tasks"]["digits"]["history"]
    plain = json.loads((out / "hps_sum" / "seed0" / "run.json").read_text())["tasks"]["digits"]["history"]
    assert pcgrad[0]["digits_weight"] != plain[0]["digits_weight"] == 1.0


def test_two_variants_of_one_kind_in_one_study(tmp_path, prepared):
    two = replace(STUDIES["mnist_fashion_mlp"], variant_specs=(rsn2(RSN2Spec(prune_percent=50), "rsn2_p50"),
                                                              rsn2(RSN2Spec(prune_percent=90), "rsn2_p90")))
    out = tmp_path / "results"
    run_study(two, small_params(tmp_path), prepared, out)
    kept = {}
    for variant in ("rsn2_p50", "rsn2_p90"):
        run = json.loads((out / variant / "seed0" / "run.json").read_text())
        assert run["variant"] == variant
        kept[variant] = run["tasks"]["digits"]["prune_percent"], run["tasks"]["digits"]["params_nonzero"]
    assert kept["rsn2_p50"][0] == 50 and kept["rsn2_p90"][0] == 90 and kept["rsn2_p50"][1] > kept["rsn2_p90"][1]
    context = json.loads((out / "context.json").read_text())
    assert context["rsn2"]["prune_percent"] == {"rsn2_p50": 50, "rsn2_p90": 90}
    assert isinstance(two, Study)
    overridden = parse_params({"run": {"seeds": [0], "device": "cpu"}, "rsn2": {"prune_percent": 70}}, {}, tmp_path)
    with pytest.raises(ParamsError, match=r"rsn2.prune_percent: 70 would give the rsn2 variants of mnist_fashion_mlp "
                                          r"\(rsn2_p50, rsn2_p90\) one prune percent, making them identical"):
        variant_plan(two, overridden)
    alone = replace(two, variant_specs=two.variant_specs[:1])  # one rsn2 variant: the override is its value
    assert variant_plan(alone, overridden) == [("rsn2_p50", ("digits", "fashion"))]
