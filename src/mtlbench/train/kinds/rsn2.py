"""RSN2: one network holding a sparse subnetwork per task (Keras-original matched init, masks
from a sample of the training rows, then one or more training phases)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from mtlbench.config import Params, ParamsError
from mtlbench.data.tasks import TaskData
from mtlbench.models.rsn2 import RSN2Net, init_rsn2, rescale_kept_
from mtlbench.studies import RSN2, Study
from mtlbench.train.kinds.base import VariantKind
from mtlbench.train.kinds.common import (fit_summary, keep_and_save, phase_train_set, predict_each_task, study_accel,
                                         study_protocol, write_seed)
from mtlbench.train.loop import FitResult, fit
from mtlbench.train.masks import compute_masks


def prune_percent(study: Study, variant: str, params: Params) -> int:
    """rsn2.prune_percent when set, else the variant's own. A params-level value applies only where the
    run holds one rsn2 variant of the study (check_plan refuses it beside several)."""
    return params.rsn2.prune_percent or study.variant(variant).rsn2.prune_percent


class RSN2Kind(VariantKind):
    name = RSN2
    owns = frozenset({"rsn2"})

    def fits(self, study, unit):
        return [(unit.tasks, len(study.variant(unit.variant).rsn2.phases or (1,)))]  # one packed network, in phases

    def check(self, study, variant, tasks, params):
        if tasks != study.tasks_of(variant):
            raise ParamsError(f"run.tasks: the rsn2 variant of {study.name} trains {', '.join(study.tasks_of(variant))} "
                              "together; select all of them, or leave rsn2 out with run.variants")

    def check_plan(self, study: Study, variants: list[str], params: Params) -> None:
        """A params-level prune percent beside several rsn2 variants would make them identical."""
        if params.rsn2.prune_percent is not None and len(variants) > 1:
            raise ParamsError(f"rsn2.prune_percent: {params.rsn2.prune_percent} would give the rsn2 variants of "
                              f"{study.name} ({', '.join(variants)}) one prune percent, making them identical; set it "
                              "to null (each variant keeps its own), or keep one of them with run.variants")

    def context(self, study, variants, params):
        """One rsn2 variant: its settings; several: each variant's prune_percent."""
        prune = {v: prune_percent(study, v, params) for v in variants}
        return {"rsn2": {**asdict(params.rsn2), "prune_percent": prune[variants[0]] if len(prune) == 1 else prune}}

    def build_tiny(self, study, variant, specs, shapes):
        return RSN2Net(study.architecture, tuple(shapes), tuple(t.n_classes for t in specs))

    def tiny_outputs(self, study, variant, specs, shapes, inputs):
        return self.build_tiny(study, variant, specs, shapes)(*inputs)

    def train(self, study: Study, variant: str, tasks: list[TaskData], seeds: tuple[int, ...], params: Params,
              out_dir: Path) -> None:
        for seed in seeds:
            self.train_seed(study, variant, tasks, seed, params, out_dir / f"seed{seed}")

    def train_seed(self, study: Study, variant: str, tasks: list[TaskData], seed: int, params: Params,
                   seed_dir: Path) -> None:
        """One RSN2 network for all tasks: matched init, masks from the sample, then training phases."""
        protocol = study_protocol(study, params)
        spec = study.variant(variant).rsn2
        p = prune_percent(study, variant, params)
        names = tuple(t.spec.name for t in tasks)
        all_tasks = [1.0] * len(tasks)
        device = tasks[0].train.targets[0].device
        model = RSN2Net(study.architecture, tuple(tuple(t.train.inputs[0].shape[1:]) for t in tasks),
                        tuple(t.spec.n_classes for t in tasks))
        model = init_rsn2(model, seed, params.rsn2.init).to(device)
        sample = phase_train_set(tasks, all_tasks)
        if spec.mask_sample is not None:
            sample = sample.rows(slice(0, spec.mask_sample))
        kept = compute_masks(model, params.rsn2.mask_method, (100 - p) / 100, sample, spec.mask_loss_weights)
        if params.rsn2.rescale_kept:
            rescale_kept_(model, (100 - p) / 100)

        fits: dict[str, FitResult] = {}
        for i, weights in enumerate(spec.phases or (all_tasks,)):
            label = f"{study.name} {variant} seed={seed}" + (f" phase {i + 1}" if spec.phases else "")
            result = fit(model, phase_train_set(tasks, weights), protocol, seed, names, loss_weights=weights,
                         label=label, progress=params.run.progress,
                         accel=study_accel(study, params, device))  # a fresh optimizer per phase
            fits.update({name: result for name, w in zip(names, weights) if w})

        predictions, sizes = keep_and_save(model, tasks, predict_each_task(model, tasks), seed_dir / "model_rsn2.pt")
        method = {"prune_percent": p, "mask_method": params.rsn2.mask_method, "init": params.rsn2.init,
                  "rescale_kept": params.rsn2.rescale_kept,
                  "phases": [list(w) for w in spec.phases or (all_tasks,)], "kept_per_layer": kept}
        summaries = {name: {**fit_summary(fits[name], sizes), **method} for name in names}
        write_seed(seed_dir, study, variant, seed, protocol, tasks, summaries, predictions,
                   self.facts(study, variant, summaries))
