"""What every kind's training shares: the study's protocol and accel settings, the rows of a joint
fit, test predictions through each task's stream, what is kept of them, and the files of one
seed (`seed<k>/run.json`, `predictions.npz`, the model)."""

from __future__ import annotations

import platform
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from mtlbench.config import Params
from mtlbench.data.sources import SOURCES
from mtlbench.data.tasks import TaskData, TensorSet
from mtlbench.fileio import atomic_path, write_json
from mtlbench.models import count_parameters
from mtlbench.models.packing import pack, packed_counts
from mtlbench.models.rsn2 import RSN2Net
from mtlbench.models.store import save_model
from mtlbench.runtime import allocator_in_use, numerics_in_use, omp_wait_policy
from mtlbench.studies import Study
from mtlbench.train.accel import STACK_AUTO, Accel, resolve_accel
from mtlbench.train.loop import FitResult, predict_logits
from mtlbench.train.objectives import per_image_mse
from mtlbench.train.protocols import PROTOCOLS, Protocol, hs_protocol, modern_protocol

SAMPLE_IMAGES = 16  # reconstructions kept per run for the image grid in MLflow


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


def stack_seeds(setting: str, device: torch.device, architecture: str, rows_per_seed: bool = False) -> bool:
    """run.stack_seeds: `auto` stacks on CUDA where measured faster (accel.STACK_AUTO); never on CPU,
    where a few cores gain nothing from it. Only sequential mlp/cnn28 networks can be stacked, and
    only where the seeds train on the same rows (not `rows_per_seed`; config refuses `true` there)."""
    if architecture not in STACK_AUTO or rows_per_seed:
        return False
    return setting == "true" or (setting == "auto" and device.type == "cuda" and STACK_AUTO[architecture])


def fit_summary(result: FitResult, sizes: dict[str, int]) -> dict:
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


def write_seed(seed_dir: Path, study: Study, variant: str, seed: int, protocol: Protocol, tasks: list[TaskData],
               summaries: dict, predictions: dict, kind: dict) -> None:
    """A seed's predictions.npz and run.json (its fits per task, the settings it ran under and what
    its kind says of it: VariantKind.facts)."""
    with atomic_path(seed_dir / "predictions.npz", sum(a.nbytes for a in predictions.values())) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **predictions)
    write_json(seed_dir / "run.json", {
        "study": study.name,
        "variant": variant,
        "kind": kind,
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


def tiny_shapes(study: Study, variant: str, specs: dict) -> tuple[list, list]:
    """The variant's task specs and the input shape of each, as the loaded data will have them."""
    tasks = [specs[t] for t in study.tasks_of(variant)]
    stored = [SOURCES[t.dataset].image_shape for t in tasks]
    return tasks, [(c, t.resize, t.resize) if t.resize else (c, h, w) for t, (c, h, w) in zip(tasks, stored)]
