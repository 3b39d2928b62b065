"""Every variant kind of train/kinds, over the whole catalogue: each study x variant builds as its
kind trains it, takes an optimizer step, is saved by models/store.py and reloaded, and the reloaded
network predicts exactly what the trained one did (lightning-hydra-template instantiates every
config; this also steps, saves and reloads). And a kind plugs in as a method does."""

import pytest
import torch

from mtlbench.models.store import load_model, save_model
from mtlbench.serving import FlatIO
from mtlbench.studies import STUDIES, Study, Variant
from mtlbench.train.kinds import KINDS, VariantKind, register
from mtlbench.train.kinds.dedicated import Dedicated
from mtlbench.train.kinds.common import tiny_shapes
from mtlbench.train.runner import check_builds, plan_units

CASES = [(s, v) for s, study in STUDIES.items() for v in study.variants
         # cifar100_binary's mixes are the same network with more heads: its first variants stand for them
         if s != "cifar100_binary" or v in ("dedicated", "hps3", "mix10_10_sum")]


def _outputs(model, inputs):
    out = model(inputs[0]) if getattr(model, "shared_representation", False) else model(*inputs)
    return [o for o in (out if isinstance(out, (tuple, list)) else (out,))]


@pytest.mark.parametrize("study_name,variant", CASES)
def test_every_study_and_variant_builds_steps_saves_and_reloads_to_identical_predictions(study_name, variant, tmp_path):
    study = STUDIES[study_name]
    kind = KINDS[study.variant_kind(variant)]
    specs, shapes = tiny_shapes(study, variant, study.specs())
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.rand(3, *shape, generator=gen) for shape in shapes]
    with torch.random.fork_rng(devices=[]):
        built = kind.build_tiny(study, variant, specs, shapes)
    models = built if isinstance(built, list) else [built]
    per_model_inputs = [[x] for x in inputs] if isinstance(built, list) else [inputs] * len(models)
    for i, (model, x) in enumerate(zip(models, per_model_inputs)):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        torch.stack([o.float().pow(2).mean() for o in _outputs(model, x)]).sum().backward()
        optimizer.step()
        model.eval()
        before = [o.detach() for o in _outputs(model, x)]
        task = specs[i] if isinstance(built, list) else None
        in_shape = shapes[i] if isinstance(built, list) else shapes[0]
        n_classes = task.n_classes if task else tuple(t.n_classes for t in specs)
        path = tmp_path / f"model{i}.pt"
        save_model(path, model, kind.store_spec(study, in_shape, n_classes))
        reloaded = load_model(path)
        after = [o.detach() for o in _outputs(reloaded, x)]
        assert len(after) == len(before)
        for b, a in zip(before, after):
            assert torch.equal(b, a), f"{study_name}/{variant}: reloaded predictions differ"
        # as MLflow serves it (mlflow.log_models): one 2-D input row, every head's output in one 2-D row
        taken = x[:1] if getattr(reloaded, "shared_representation", False) else x
        served = FlatIO(reloaded, [t.shape[1:] for t in taken])(torch.cat([t.reshape(3, -1) for t in taken], dim=1))
        assert torch.equal(served.detach(), torch.cat([a.reshape(3, -1) for a in after], dim=1)), study_name


class Ensemble(VariantKind):
    """A kind of one's own: every task's dedicated networks from two seeds, averaged (only what
    check_params needs; its training would follow train/kinds/dedicated.py)."""

    name = "ensemble_test"

    def build_tiny(self, study, variant, specs, shapes):
        return KINDS["dedicated"].build_tiny(study, variant, specs, shapes)

    def tiny_outputs(self, study, variant, specs, shapes, inputs):
        return KINDS["dedicated"].tiny_outputs(study, variant, specs, shapes, inputs)

    def units(self, variant, tasks, seeds, stacked):
        return super().units(variant, tasks, seeds[::2], stacked)  # its own cut of the seeds


def test_a_kind_plugs_in_and_is_checked_planned_and_keyed_by_its_own_rules():
    kind = register(Ensemble())
    try:
        with pytest.raises(ValueError, match="already registered"):
            register(Ensemble())
        base = STUDIES["mnist_fashion_mlp"]
        study = Study("with_ensemble", base.tasks, base.architecture, base.protocol,
                      (*base.variant_specs, Variant("ens", "ensemble_test")))
        plan = [(v, study.tasks_of(v)) for v in study.variants]
        check_builds(study, plan, study.specs())
        units = plan_units(study, plan, (0, 1, 2, 3), stacked=False)
        assert [u.label for u in units if u.variant == "ens"] == ["ens/seed0", "ens/seed2"]
        context = {"rsn2": {"prune_percent": 90}, "stack_seeds": False, "protocol": {"lr": 0.001}, "started_at": 1.0}
        assert kind.settings(context) == {"protocol": {"lr": 0.001}}  # another kind's settings are not its key
        assert KINDS["rsn2"].settings(context) == {"rsn2": {"prune_percent": 90}, "protocol": {"lr": 0.001}}
    finally:
        del KINDS["ensemble_test"]


class PerTaskNetworks(Dedicated):
    """A kind of one's own that trains a network per task as dedicated does, under another name: what
    evaluation reports of it (parameter budget, epochs, separate fits) must come from the kind, not
    from its name."""

    name = "per_task_test"


def test_a_kind_of_ones_own_trains_and_is_evaluated_end_to_end_by_its_own_rules(tmp_path, prepared):
    from mtlbench.config import parse_params
    from mtlbench.evaluate import evaluate_study
    from mtlbench.outputs import details_document
    from mtlbench.train.runner import run_study

    register(PerTaskNetworks())
    try:
        base = STUDIES["mnist_fashion_mlp"]
        study = Study("with_toy", base.tasks, base.architecture, base.protocol,
                      (base.variant("dedicated"), Variant("toy", "per_task_test")))
        params = parse_params({"run": {"seeds": [0], "device": "cpu", "train_limit": 60, "max_epochs": 2,
                                       "progress": False}}, {}, tmp_path)
        run_study(study, params, prepared, tmp_path / "results")
        details = details_document(study, evaluate_study(study, tmp_path / "results"))
    finally:
        del KINDS["per_task_test"]
    dedicated, toy = details["methods"]["dedicated"], details["methods"]["toy"]
    per_task = [details["variants"]["toy"][t]["params_total"]["mean"] for t in base.tasks]
    assert toy["kind"] == "per_task_test" and toy["params"] == sum(per_task) == dedicated["params"]  # two networks
    assert [details["variants"]["toy"][t]["epochs"]["mean"] for t in base.tasks] == [2, 2]  # each its own fit
    assert "best_val_loss" in details["variants"]["toy"]["digits"]  # a task's own fit: not a joint one
    assert details["comparisons"]["toy"]["digits"]["paired"]["n"] == 1
