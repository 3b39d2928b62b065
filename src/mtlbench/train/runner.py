"""Run one study's model variants over its seeds and save what evaluation needs: plan the
variants (each kind checks its own), cut them into resumable units (train/units.py), and let each
variant's kind (train/kinds/) train its units.

Layout written under the study's results folder:
    <variant>/seed<k>/run.json          fit summaries and per-epoch history per task
    <variant>/seed<k>/predictions.npz   <task>_true, <task>_pred on the test set (reconstruction:
                                        <task>_mse per image, <task>_sample_true/_pred images)
    <variant>/seed<k>/<name>.pt         trained weights with what rebuilds the model
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from mtlbench.config import Params, ParamsError
from mtlbench.data.prepared import load_provenance, prepared_paths
from mtlbench.data.tasks import task_identities
from mtlbench.fileio import write_json
from mtlbench.runtime import apply_numerics, numerics_in_use
from mtlbench.studies import Study
from mtlbench.train.executors import run_local, run_ray
from mtlbench.train.kinds import KINDS
from mtlbench.train.training import load_unit_tasks, resolve_device, train_unit
from mtlbench.train.kinds.common import stack_seeds, study_accel, study_protocol, tiny_shapes
from mtlbench.train.plan import print_plan
from mtlbench.train.units import (CONTEXT_FILE, SCRATCH, Unit, code_digest, place_unit, open_ledger, read_index,
                                  record_in_ledger, restore_from_ledger, start_folder, unit_key)


def selected_variants(study: Study, wanted: tuple[str, ...] | None) -> tuple[str, ...]:
    """The study's variants that run.variants selects (all when it is null), in catalogue order."""
    return tuple(v for v in study.variants if wanted is None or v in wanted)


def variant_plan(study: Study, params: Params) -> list[tuple[str, tuple[str, ...]]]:
    """(variant, its tasks) for every selected variant, its tasks cut to run.tasks when set; variants
    left with no task are skipped. Each variant's kind checks it (an RSN2 variant takes all of its
    tasks or none; an HPS variant's method must fit), and a kind that looks at all of its variants
    together (check_plan) does: said before any data is loaded or model trained."""
    plan = []
    for variant in selected_variants(study, params.run.variants):
        kept = tuple(t for t in study.tasks_of(variant) if params.run.tasks is None or t in params.run.tasks)
        if kept:
            KINDS[study.variant_kind(variant)].check(study, variant, kept, params)
            plan.append((variant, kept))
    for name, kind in KINDS.items():
        kind.check_plan(study, [v for v, _ in plan if study.variant_kind(v) == name], params)
    return plan


def plan_units(study: Study, plan: list[tuple[str, tuple[str, ...]]], seeds: tuple[int, ...], stacked: bool) -> list[Unit]:
    """The units of the variant plan, as each variant's kind cuts its seeds."""
    return [unit for variant, tasks in plan for unit in KINDS[study.variant_kind(variant)].units(variant, tasks, seeds, stacked)]


def tiny_build_and_step(study: Study, variant: str, specs: dict) -> None:
    """Build the variant's network as its kind will (CPU, seed 0) and run one forward and backward
    pass on two zero images per task: what a study's variant would fail at after minutes of data
    loading and training fails here in a fraction of a second."""
    tasks, shapes = tiny_shapes(study, variant, specs)
    inputs = [torch.zeros(2, *shape) for shape in shapes]
    with torch.random.fork_rng(devices=[]):  # PyTorch's default inits draw from the global generator
        outputs = KINDS[study.variant_kind(variant)].tiny_outputs(study, variant, tasks, shapes, inputs)
        flat = list(outputs)
        while any(isinstance(o, (tuple, list)) for o in flat):  # a network of several heads per task
            flat = [x for o in flat for x in (o if isinstance(o, (tuple, list)) else (o,))]
        torch.stack([o.float().sum() for o in flat]).sum().backward()


def check_builds(study: Study, plan: list[tuple[str, tuple[str, ...]]], specs: dict) -> None:
    """Every planned variant builds and steps on a tiny input (tiny_build_and_step) for the study's
    task `specs`, or a ParamsError naming study, variant and the fault, before any data is loaded."""
    for variant, _ in plan:
        try:
            tiny_build_and_step(study, variant, specs)
        except (ValueError, RuntimeError, KeyError) as err:
            sizes = ", ".join(f"{t} {specs[t].n_classes}-way" for t in study.tasks_of(variant))
            raise ParamsError(f"study {study.name}, variant {variant} ({study.variant_kind(variant)}, tasks {sizes}): "
                              f"its network cannot be built: {str(err).splitlines()[0]}; make the tasks fit the "
                              "variant (see the message) or leave the variant out with run.variants") from None


def run_context(study: Study, params: Params, device: torch.device, prepared_dir: Path) -> dict:
    """Every setting that changes a result, as resolved for this run (auto options decided), and the
    content digests of the data it trained on: evaluate makes them params and tags of the MLflow runs."""
    context = {
        "train_limit": params.run.train_limit, "max_epochs": params.run.max_epochs, "tasks": params.run.tasks,
        "train_sample": params.run.train_sample if params.run.train_limit is not None else None,
        "device": device.type,
        "stack_seeds": stack_seeds(params.run.stack_seeds, device, study.architecture, params.run.rows_per_seed),
        "accel": asdict(study_accel(study, params, device)),
        "protocol": asdict(study_protocol(study, params)),  # run.protocol resolved, modern overrides in
        "numerics": numerics_in_use(),  # portable (the check's, runtime.PORTABLE_NUMERICS) or native
    }
    if device.type == "cpu":  # what every unit trains with (executors.py): it changes reductions' rounding
        context["threads"] = torch.get_num_threads()
    for name, kind in KINDS.items():  # a kind's own resolved settings (rsn2's), where the study has its variants
        variants = [v.name for v in study.variant_specs if v.kind == name]
        if variants:
            context.update(kind.context(study, variants, params))
    if study.protocol == "hs" and params.run.protocol == "faithful":
        context["hs"] = asdict(params.hs)
    context["data"] = {}
    for dataset in study.datasets:
        if not prepared_paths(prepared_dir, dataset)[1].is_file():  # arrays written by hand (unit tests)
            context["data"][dataset] = None
            continue
        files = load_provenance(prepared_dir, dataset)["files"].values()
        members = dict(sorted((m, d) for f in files for m, d in f["md5"].items()))
        context["data"][dataset] = {"md5": members, "matches": all(f["matches"] for f in files),
                                    "digest": hashlib.md5(json.dumps(members).encode()).hexdigest()}
    return context


def run_study(study: Study, params: Params, prepared_dir: Path, out_dir: Path, tasks_dir: Path = Path("data/tasks"),
              ledger: Path | None = None) -> None:
    """Train every selected variant of `study` for every seed into `out_dir`, unit by unit
    (train/units.py): units whose results are there under the same key are kept, the others
    train (run.executor) and land as each finishes; then the run's resolved settings, data
    digests and start and end times go to `out_dir/context.json`, which marks the folder complete."""
    started_at = time.time()
    apply_numerics()
    device = resolve_device(params.run.device)
    plan = variant_plan(study, params)
    if not plan:
        raise ParamsError(f"run.tasks / run.variants: nothing of study {study.name} is selected")
    specs = study.specs()  # a bad task file stops here, before anything is removed
    check_builds(study, plan, specs)
    context = run_context(study, params, device, prepared_dir)
    units = plan_units(study, plan, params.run.seeds, context["stack_seeds"])
    identities = task_identities(specs, tasks_dir)
    code = {v: code_digest(*KINDS[study.variant_kind(v)].code(study, v)) for v in dict.fromkeys(u.variant for u in units)}
    keys = {u: unit_key(study, u, KINDS[study.variant_kind(u.variant)].settings(context), code[u.variant], identities)
            for u in units}
    recorded = read_index(out_dir)  # before start_folder drops the stale: their times still estimate well
    index, todo = start_folder(out_dir, units, keys)
    if ledger is not None:  # units finished on another machine, committed (units.py)
        open_ledger(ledger, out_dir, index, keys)
        restored = restore_from_ledger(ledger, out_dir, todo, keys, index)
        todo = [u for u in todo if u not in restored]
        if restored:
            print(f"[{out_dir.name}] {len(restored)} unit{'s' if len(restored) != 1 else ''} restored from {ledger} "
                  "(trained before, committed without weights)", file=sys.stderr, flush=True)
    estimates = print_plan(study, units, todo, params, prepared_dir, device, recorded, out_dir.name)
    progress = UnitProgress(study.name, estimates, params.run.progress, len(units))
    if todo:
        scratch = out_dir / SCRATCH
        scratch.mkdir()

        def done(unit: Unit, folder: Path, seconds: float) -> None:
            place_unit(out_dir, folder, unit, keys[unit], seconds, index)
            if ledger is not None:
                record_in_ledger(ledger, out_dir, unit, index)
            progress.finished(unit, seconds)

        if params.run.executor == "ray":
            run_ray(todo, study, params, prepared_dir, tasks_dir, scratch, done)
        else:
            tasks = load_unit_tasks(study, todo, params, prepared_dir, tasks_dir)
            run_local(todo, lambda unit, folder: train_unit(study, unit, params, tasks, folder), scratch, done)
        shutil.rmtree(scratch, ignore_errors=True)
    write_json(out_dir / CONTEXT_FILE, {**context, "started_at": started_at, "ended_at": time.time()})


class UnitProgress:
    """One line per finished unit: units done of all, and the ETA of the rest: the wall time since
    training began, scaled by the plan's estimates of the units left over those of the units done
    (or by their count, where a unit has no estimate). Wall time, not the sum of unit times, so
    that units trained side by side (Ray) and a machine busy with other work are both counted as
    they are."""

    def __init__(self, study: str, estimates: dict[Unit, float | None], enabled: bool, total: int,
                 clock=time.perf_counter):
        """`estimates`: the units to train; `total`: all of the plan's, the kept ones counted as done."""
        self.study, self.estimates, self.enabled, self.clock = study, estimates, enabled, clock
        self.started = clock()
        self.left = list(estimates)
        self.done, self.total = total - len(estimates), total
        self.finished_units: list[Unit] = []

    def eta(self) -> float:
        elapsed = self.clock() - self.started
        done = [self.estimates.get(u) for u in self.finished_units]
        left = [self.estimates.get(u) for u in self.left]
        if all(done) and all(left) and done:
            return elapsed / sum(done) * sum(left)
        return elapsed / max(1, len(done)) * len(left)

    def finished(self, unit: Unit, seconds: float) -> None:
        self.done += 1
        self.left.remove(unit)
        self.finished_units.append(unit)
        if self.enabled:
            print(f"[{self.study}] unit {self.done}/{self.total} trained: {unit.label} in {seconds:.0f}s "
                  f"(ETA {self.eta() / 60:.1f} min for {len(self.left)} more)", file=sys.stderr, flush=True)
