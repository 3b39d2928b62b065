"""Run one study's model variants over its seeds and save what evaluation needs.

Layout written under the study's results folder:
    <variant>/seed<k>/run.json          fit summaries and per-epoch history per task
    <variant>/seed<k>/predictions.npz   <task>_true, <task>_pred on the test set (reconstruction:
                                        <task>_mse per image, <task>_sample_true/_pred images)
    <variant>/seed<k>/<name>.pt         trained weights with what rebuilds the model
Dedicated models of one task train all their seeds together when run.stack_seeds says so.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from mtlbench.config import Params, ParamsError
from mtlbench.data.prepared import load_provenance, prepared_paths
from mtlbench.data.tasks import TaskData, TensorSet, load_tasks, task_identities
from mtlbench.fileio import atomic_path, write_json
from mtlbench.models import build_dedicated, build_shared, count_parameters
from mtlbench.models.dedicated import SHARED
from mtlbench.models.packing import pack, packed_counts
from mtlbench.models.rsn2 import RSN2Net, init_rsn2, rescale_kept_
from mtlbench.models.store import save_model
from mtlbench.runtime import allocator_in_use, apply_numerics, numerics_in_use, omp_wait_policy
from mtlbench.studies import DEDICATED, HPS, RSN2, Study
from mtlbench.train.accel import STACK_AUTO, Accel, configure_backends, resolve_accel
from mtlbench.train.loop import FitResult, fit, predict_logits
from mtlbench.train.masks import compute_masks
from mtlbench.train.multiseed import fit_seeds, seed_models, seed_stack
from mtlbench.train.objectives import per_image_mse
from mtlbench.train.protocols import PROTOCOLS, Protocol, hs_protocol, modern_protocol
from mtlbench.train.units import (
    CONTEXT_FILE, SCRATCH, Unit, code_digest, place_unit, plan_units, settings_of, start_folder, unit_key,
)
from mtlbench.train.executors import run_local, run_ray
from mtlbench.train.methods import MethodError, check_fits, make_method


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise ParamsError("run.device: cuda was requested but torch sees no CUDA device; allowed here: auto, cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def _fit_summary(result: FitResult, sizes: dict[str, int]) -> dict:
    return {
        "epochs": result.epochs_trained,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "wall_time_s": result.wall_time_s,
        "stopped_early": result.stopped_early,
        "started_at": result.started_at,
        "epoch_ended_at": result.epoch_ended_at,
        "history": result.history,
        **sizes,
    }


def stack_seeds(setting: str, device: torch.device, architecture: str) -> bool:
    """run.stack_seeds: `auto` stacks on CUDA where measured faster (accel.STACK_AUTO); never on CPU,
    where a few cores gain nothing from it. Only sequential mlp/cnn28 networks can be stacked."""
    if architecture not in STACK_AUTO:
        return False
    return setting == "true" or (setting == "auto" and device.type == "cuda" and STACK_AUTO[architecture])


def study_protocol(study: Study, params: Params) -> Protocol:
    """run.protocol: modern trains every study alike; faithful takes the study's own protocol."""
    if params.run.protocol == "modern":
        base = modern_protocol(study.architecture, **params.modern.overrides())
    elif study.protocol == "hs":
        base = hs_protocol(params.hs.epochs, params.hs.early_stopping)
    else:
        base = PROTOCOLS[study.protocol]
    return base.capped(params.run.max_epochs)


def study_accel(study: Study, params: Params, device: torch.device) -> Accel:
    return resolve_accel(params.cuda.settings(), params.cpu.settings(), study.architecture, device)


def train_dedicated(study: Study, variant: str, tasks: list[TaskData], seeds: tuple[int, ...], params: Params,
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
        if stack_seeds(params.run.stack_seeds, x_train.device, study.architecture):
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
        spec = {"architecture": study.architecture, "in_shape": list(in_shape), "n_classes": n_classes}
        for seed, model, result in zip(seeds, models, results):
            kept, sizes = keep_and_save(model, [task], predict_logits(model, task.test.inputs),
                                        out_dir / f"seed{seed}" / f"model_{name}.pt", spec)
            predictions[seed].update(kept)
            summaries[seed][name] = _fit_summary(result, sizes)
    for seed in seeds:
        _write_seed(out_dir / f"seed{seed}", study, variant, seed, protocol, params, tasks, summaries[seed], predictions[seed])


def phase_train_set(tasks: list[TaskData], weights: Sequence[float]) -> TensorSet:
    """The training rows of the tasks weighted in a phase, side by side (row i of each task forms one
    multitask example, as Keras' multi-input fit pairs them; unequal tasks are cut to the shortest).
    Tasks weighted 0 get zero input and dummy labels: their loss is computed but weighs nothing."""
    n = min(len(t.train) for t, w in zip(tasks, weights) if w)
    inputs, targets = [], []
    for task, weight in zip(tasks, weights):
        x, y = task.train.inputs[0], task.train.targets[0]
        if weight:
            inputs.append(x[:n])
            targets.append(y[:n])
        else:
            inputs.append(torch.zeros((1, *x.shape[1:]), device=x.device).expand(n, *x.shape[1:]))
            targets.append(torch.zeros(n, dtype=y.dtype, device=y.device))
    return TensorSet(tuple(inputs), tuple(targets))


def predict_each_task(model: torch.nn.Module, tasks: list[TaskData]) -> list[torch.Tensor]:
    """Test logits of every task through its own stream; the other streams see zeros (streams are
    independent in RSN2, so this changes nothing and allows test sets of different lengths)."""
    logits = []
    for t, task in enumerate(tasks):
        x = task.test.inputs[0]
        inputs = [x if s == t else torch.zeros_like(other.test.inputs[0][:1]).expand(len(x), *other.test.inputs[0].shape[1:])
                  for s, other in enumerate(tasks)]
        logits.append(predict_logits(model, inputs)[t])
    return logits


def train_rsn2(study: Study, variant: str, tasks: list[TaskData], seeds: tuple[int, ...], params: Params,
               out_dir: Path) -> None:
    for seed in seeds:
        train_rsn2_seed(study, variant, tasks, seed, params, out_dir / f"seed{seed}")


def prune_percent(study: Study, variant: str, params: Params) -> int:
    """rsn2.prune_percent when set, else the variant's own. A params-level value applies only where the
    run holds one rsn2 variant of the study (variant_plan refuses it beside several)."""
    return params.rsn2.prune_percent or study.variant(variant).rsn2.prune_percent


def train_rsn2_seed(study: Study, variant: str, tasks: list[TaskData], seed: int, params: Params, seed_dir: Path) -> None:
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
    summaries = {name: {**_fit_summary(fits[name], sizes), **method} for name in names}
    _write_seed(seed_dir, study, variant, seed, protocol, params, tasks, summaries, predictions)


def keep_and_save(model: torch.nn.Module, tasks: list[TaskData], outputs: Sequence[torch.Tensor], path: Path,
                  spec: dict | None = None) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """What every kind does after training: keep the test outputs evaluation needs, save the
    model (models/store.py; RSN2 packed) and measure it. Returns (kept outputs, sizes), sizes
    being the parameter counts, the packed count (the budget: for RSN2 its packed form, else all
    parameters) and the file's bytes."""
    kept = {}
    for task, output in zip(tasks, outputs):
        kept.update(kept_test_outputs(task, output))
    model = model.cpu()
    size = save_model(path, model, spec)
    counts = count_parameters(model)
    packed = packed_counts(pack(model))["params_packed"] if isinstance(model, RSN2Net) else counts["params_total"]
    return kept, {**counts, "params_packed": packed, "model_bytes": size}


def _write_seed(seed_dir, study, variant, seed, protocol, params, tasks, summaries, predictions) -> None:
    with atomic_path(seed_dir / "predictions.npz", sum(a.nbytes for a in predictions.values())) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **predictions)
    write_json(seed_dir / "run.json", {
        "study": study.name,
        "variant": variant,
        "seed": seed,
        "architecture": study.architecture,
        "protocol": asdict(protocol),
        "train_rows": {t.spec.name: len(t.train) for t in tasks},
        "test_rows": {t.spec.name: len(t.test) for t in tasks},
        "official_data": {t.spec.dataset: t.official_data for t in tasks},  # false: unverified files (data.verify)
        "device": str(tasks[0].train.targets[0].device),
        "torch": torch.__version__,
        "allocator": allocator_in_use(),
        "omp_wait_policy": omp_wait_policy(),
        "numerics": numerics_in_use(),
        "python": platform.python_version(),
        "tasks": summaries,
    })


def train_hps(study: Study, variant: str, tasks: list[TaskData], seeds: tuple[int, ...], params: Params,
              out_dir: Path) -> None:
    """One shared trunk with a head per task; the variant's method (train/methods) turns the task
    losses into gradients, and the weights its steps used are recorded per epoch. A multi-input
    network (mlp) reads each task's own images, paired row by row as RSN2 pairs them; the others
    read one image for every task."""
    protocol = study_protocol(study, params)
    names = tuple(t.spec.name for t in tasks)
    method, options = hps_method(study, variant, names)
    x_train = tasks[0].train.inputs[0]
    in_shape, n_classes = tuple(x_train.shape[1:]), tuple(t.spec.n_classes for t in tasks)
    accel = study_accel(study, params, x_train.device)
    for seed in seeds:
        model = build_shared(study.architecture, in_shape, n_classes, seed).to(x_train.device)
        multi_input = not model.shared_representation
        data = (phase_train_set(tasks, [1.0] * len(tasks)) if multi_input
                else TensorSet((x_train,), tuple(t.train.targets[0] for t in tasks)))
        result = fit(model, data, protocol, seed, names, label=f"{study.name} {variant} seed={seed}",
                     progress=params.run.progress, accel=accel, method=make_method(method, len(tasks), **options))
        outputs = predict_each_task(model, tasks) if multi_input else predict_logits(model, tasks[0].test.inputs)
        seed_dir = out_dir / f"seed{seed}"
        spec = {"kind": "hps", "architecture": study.architecture, "in_shape": list(in_shape), "n_classes": list(n_classes)}
        predictions, sizes = keep_and_save(model, tasks, outputs, seed_dir / "model_hps.pt", spec)
        described = {"method": method, **({"method_options": jsonable(options)} if options else {})}
        summaries = {name: {**_fit_summary(result, sizes), **described} for name in names}
        _write_seed(seed_dir, study, variant, seed, protocol, params, tasks, summaries, predictions)


SAMPLE_IMAGES = 16  # reconstructions kept per run for the image grid in MLflow


def kept_test_outputs(task: TaskData, output: torch.Tensor) -> dict[str, np.ndarray]:
    """What evaluation needs of one task's test outputs: labels and predicted classes, or (for a
    reconstruction, whose outputs are too big to keep) each image's MSE and the first images with
    their reconstructions as uint8."""
    name, target = task.spec.name, task.test.targets[0]
    if task.spec.is_classification:
        return {f"{name}_true": target.cpu().numpy(), f"{name}_pred": output.argmax(1).cpu().numpy()}

    def as_uint8(images: torch.Tensor) -> np.ndarray:
        return images[:SAMPLE_IMAGES].float().mul(255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()

    return {f"{name}_mse": per_image_mse(output, target).cpu().numpy(),
            f"{name}_sample_true": as_uint8(target), f"{name}_sample_pred": as_uint8(output)}


def hps_method(study: Study, variant: str, names: tuple[str, ...]) -> tuple[str, dict]:
    """The variant's method and options; per-task options (the fixed scheme's weights) follow
    the tasks run.tasks keeps."""
    spec = study.variant(variant)
    options = spec.method_options
    if "weights" in options:
        order = spec.tasks or study.tasks
        options["weights"] = tuple(options["weights"][order.index(n)] for n in names)
    return spec.method, options


def jsonable(options: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


VARIANT_TRAINERS = {DEDICATED: train_dedicated, RSN2: train_rsn2, HPS: train_hps}


def selected_variants(study: Study, wanted: tuple[str, ...] | None) -> tuple[str, ...]:
    """The study's variants that run.variants selects (all when it is null), in catalogue order."""
    return tuple(v for v in study.variants if wanted is None or v in wanted)


def variant_plan(study: Study, params: Params) -> list[tuple[str, tuple[str, ...]]]:
    """(variant, its tasks) for every selected variant, its tasks cut to run.tasks when set; variants
    left with no task are skipped. RSN2 packs all of a study's tasks, so it takes all or none."""
    plan = []
    for variant in selected_variants(study, params.run.variants):
        tasks = study.tasks_of(variant)
        kept = tuple(t for t in tasks if params.run.tasks is None or t in params.run.tasks)
        if study.variant_kind(variant) == RSN2 and kept and kept != tasks:
            raise ParamsError(f"run.tasks: the rsn2 variant of {study.name} trains {', '.join(tasks)} together; "
                              "select all of them, or leave rsn2 out with run.variants")
        if kept:
            plan.append((variant, kept))
    several = [v for v, _ in plan if study.variant_kind(v) == RSN2]
    if params.rsn2.prune_percent is not None and len(several) > 1:
        raise ParamsError(f"rsn2.prune_percent: {params.rsn2.prune_percent} would give the rsn2 variants of "
                          f"{study.name} ({', '.join(several)}) one prune percent, making them identical; set it "
                          "to null (each variant keeps its own), or keep one of them with run.variants")
    return plan


def check_methods(study: Study, plan: list[tuple[str, tuple[str, ...]]]) -> None:
    """Every hps variant's method exists, takes its options and fits the study's network and the
    tasks the run keeps: said before any data is loaded or model trained."""
    for variant, tasks in plan:
        spec = study.variant(variant)
        if spec.kind != HPS:
            continue
        if study.architecture not in SHARED:
            raise ParamsError(f"study {study.name}, variant {variant}: architecture {study.architecture} has no "
                              f"hard-parameter-sharing form; known: {', '.join(SHARED)}")
        try:
            check_fits(spec.method, spec.method_options, len(tasks), SHARED[study.architecture])
        except MethodError as err:
            raise ParamsError(f"study {study.name}, variant {variant}: {err}") from None


def tiny_build_and_step(study: Study, variant: str, specs: dict) -> None:
    """Build the variant's network as its trainer will (CPU, seed 0) and run one forward and backward
    pass on two zero images per task: what a study's variant would fail at after minutes of data
    loading and training fails here in a fraction of a second."""
    from mtlbench.data.sources import SOURCES

    tasks = [specs[t] for t in study.tasks_of(variant)]
    stored = [SOURCES[t.dataset].image_shape for t in tasks]
    shapes = [(c, t.resize, t.resize) if t.resize else (c, h, w) for t, (c, h, w) in zip(tasks, stored)]
    inputs = [torch.zeros(2, *shape) for shape in shapes]
    kind = study.variant_kind(variant)
    with torch.random.fork_rng(devices=[]):  # PyTorch's default inits draw from the global generator
        outputs = _tiny_outputs(study, kind, tasks, shapes, inputs)
        flat = list(outputs)
        while any(isinstance(o, (tuple, list)) for o in flat):  # a network of several heads per task
            flat = [x for o in flat for x in (o if isinstance(o, (tuple, list)) else (o,))]
        torch.stack([o.float().sum() for o in flat]).sum().backward()


def _tiny_outputs(study: Study, kind: str, tasks: list, shapes: list, inputs: list[torch.Tensor]):
    if kind == DEDICATED:
        return [build_dedicated(study.architecture, shape, t.n_classes, 0)(x) for t, shape, x in zip(tasks, shapes, inputs)]
    if kind == RSN2:
        return RSN2Net(study.architecture, tuple(shapes), tuple(t.n_classes for t in tasks))(*inputs)
    model = build_shared(study.architecture, shapes[0], tuple(t.n_classes for t in tasks), 0)
    return model(inputs[0]) if model.shared_representation else model(*inputs)


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
        "device": device.type, "stack_seeds": stack_seeds(params.run.stack_seeds, device, study.architecture),
        "accel": asdict(study_accel(study, params, device)),
        "protocol": asdict(study_protocol(study, params)),  # run.protocol resolved, modern overrides in
        "numerics": numerics_in_use(),  # portable (the check's, runtime.PORTABLE_NUMERICS) or native
    }
    rsn2_variants = [v.name for v in study.variant_specs if v.kind == RSN2]
    if rsn2_variants:  # one rsn2 variant: its settings; several: each variant's prune_percent
        prune = {v: prune_percent(study, v, params) for v in rsn2_variants}
        context["rsn2"] = {**asdict(params.rsn2),
                           "prune_percent": prune[rsn2_variants[0]] if len(prune) == 1 else prune}
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


def load_unit_tasks(study: Study, units: list[Unit], params: Params, prepared_dir: Path, tasks_dir: Path,
                    root: Path = Path(".")) -> dict[str, TaskData]:
    """The tasks the units train on, on the run's device (backends configured for the study)."""
    device = resolve_device(params.run.device)
    configure_backends(study_accel(study, params, device))
    specs = study.specs(root)
    needed = list(dict.fromkeys(t for unit in units for t in unit.tasks))
    loaded = load_tasks([specs[t] for t in needed], prepared_dir, tasks_dir, params.run.train_limit, device)
    return {t.spec.name: t for t in loaded}


def train_unit(study: Study, unit: Unit, params: Params, tasks: dict[str, TaskData], out: Path) -> None:
    """Train one unit into `out/<variant>/seed<k>/` with its variant kind's trainer."""
    trainer = VARIANT_TRAINERS[study.variant_kind(unit.variant)]
    trainer(study, unit.variant, [tasks[t] for t in unit.tasks], unit.seeds, params, out / unit.variant)


def run_study(study: Study, params: Params, prepared_dir: Path, out_dir: Path, tasks_dir: Path = Path("data/tasks")) -> None:
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
    check_methods(study, plan)
    specs = study.specs()  # a bad task file stops here, before anything is removed
    check_builds(study, plan, specs)
    context = run_context(study, params, device, prepared_dir)
    units = plan_units(plan, params.run.seeds, context["stack_seeds"], study)
    code = code_digest()
    identities = task_identities(specs, tasks_dir)
    keys = {u: unit_key(study, u, settings_of(context, study.variant_kind(u.variant)), code, identities) for u in units}
    index, todo = start_folder(out_dir, units, keys)
    progress = UnitProgress(study.name, len(units), len(units) - len(todo), params.run.progress)
    if todo:
        scratch = out_dir / SCRATCH
        scratch.mkdir()

        def done(unit: Unit, folder: Path, seconds: float) -> None:
            place_unit(out_dir, folder, unit, keys[unit], seconds, index)
            progress.finished(unit, seconds)

        if params.run.executor == "ray":
            run_ray(todo, study, params, prepared_dir, tasks_dir, scratch, done)
        else:
            tasks = load_unit_tasks(study, todo, params, prepared_dir, tasks_dir)
            run_local(todo, lambda unit, folder: train_unit(study, unit, params, tasks, folder), scratch, done)
        shutil.rmtree(scratch, ignore_errors=True)
    write_json(out_dir / CONTEXT_FILE, {**context, "started_at": started_at, "ended_at": time.time()})


class UnitProgress:
    """One line per finished unit: units done of all, and an ETA from the units' measured times."""

    def __init__(self, study: str, total: int, kept: int, enabled: bool):
        self.study, self.total, self.done, self.enabled = study, total, kept, enabled
        self.seconds: list[float] = []
        if kept:  # said even in quiet logs: it explains why a resumed run is short
            print(f"[{study}] {kept} of {total} units up to date (kept); training {total - kept}", file=sys.stderr, flush=True)

    def finished(self, unit: Unit, seconds: float) -> None:
        self.done += 1
        self.seconds.append(seconds)
        if self.enabled:
            left = (self.total - self.done) * sum(self.seconds) / len(self.seconds)
            print(f"[{self.study}] unit {self.done}/{self.total} done: {unit.label} in {seconds:.0f}s "
                  f"(ETA {left / 60:.1f} min for {self.total - self.done} more)", file=sys.stderr, flush=True)
