"""Dedicated models: one network per task (the baseline every multitask variant is compared with).
A task's seeds train together in one stacked network when run.stack_seeds says so."""

from __future__ import annotations

from pathlib import Path

from mtlbench.config import Params
from mtlbench.data.tasks import TaskData
from mtlbench.models import build_dedicated
from mtlbench.studies import DEDICATED, Study
from mtlbench.train.kinds.base import VariantKind
from mtlbench.train.kinds.common import (fit_summary, keep_and_save, stack_seeds, study_accel, study_protocol,
                                         write_seed)
from mtlbench.train.loop import fit, predict_logits
from mtlbench.train.multiseed import fit_seeds, seed_models, seed_stack
from mtlbench.train.units import Unit


class Dedicated(VariantKind):
    name = DEDICATED
    owns = frozenset({"stack_seeds"})

    def build_tiny(self, study, variant, specs, shapes):
        return [build_dedicated(study.architecture, shape, t.n_classes, 0) for t, shape in zip(specs, shapes)]

    def tiny_outputs(self, study, variant, specs, shapes, inputs):
        return [model(x) for model, x in zip(self.build_tiny(study, variant, specs, shapes), inputs)]

    def store_spec(self, study, in_shape, n_classes):
        return {"architecture": study.architecture, "in_shape": list(in_shape), "n_classes": n_classes}

    joint = False

    def budget(self, summaries):
        return int(sum(s["params_total"] for s in summaries.values()))  # every task's own network

    def fits(self, study, unit):
        return [((task,), 1) for task in unit.tasks]  # one network per task

    def units(self, variant, tasks, seeds, stacked):
        return [Unit(variant, tasks, tuple(seeds))] if stacked else super().units(variant, tasks, seeds, stacked)

    def train(self, study: Study, variant: str, tasks: list[TaskData], seeds: tuple[int, ...], params: Params,
              out_dir: Path) -> None:
        """One dedicated model per task and seed; the seeds of a task train together when stacked."""
        protocol = study_protocol(study, params)
        summaries: dict[int, dict] = {seed: {} for seed in seeds}
        predictions: dict[int, dict] = {seed: {} for seed in seeds}
        for task in tasks:
            x_train = task.train.inputs[0]
            in_shape = tuple(x_train.shape[1:])
            name, n_classes = task.spec.name, task.spec.n_classes
            label = f"{study.name} dedicated {name}"
            accel = study_accel(study, params, x_train.device)
            if stack_seeds(params.run.stack_seeds, x_train.device, study.architecture, params.run.rows_per_seed):
                stack = seed_stack(study.architecture, in_shape, n_classes, seeds).to(x_train.device)
                results = fit_seeds(stack, task.train, protocol, seeds, name, label=label, progress=params.run.progress,
                                    accel=accel)
                models = seed_models(stack, study.architecture, in_shape, n_classes, accel)
            else:
                models, results = [], []
                for seed in seeds:
                    model = build_dedicated(study.architecture, in_shape, n_classes, seed).to(x_train.device)
                    results.append(fit(model, task.train, protocol, seed, (name,), label=f"{label} seed={seed}",
                                       progress=params.run.progress, accel=accel))
                    models.append(model)
            spec = self.store_spec(study, in_shape, n_classes)
            for seed, model, result in zip(seeds, models, results):
                kept, sizes = keep_and_save(model, [task], predict_logits(model, task.test.inputs),
                                            out_dir / f"seed{seed}" / f"model_{name}.pt", spec)
                predictions[seed].update(kept)
                summaries[seed][name] = fit_summary(result, sizes)
        for seed in seeds:
            write_seed(out_dir / f"seed{seed}", study, variant, seed, protocol, tasks, summaries[seed], predictions[seed],
                       self.facts(study, variant, summaries[seed]))
