"""Run one study's model variants over its seeds and save what evaluation needs.

Layout written under the study's results folder:
    <variant>/seed<k>/run.json          fit summaries and per-epoch history per task
    <variant>/seed<k>/predictions.npz   <task>_true, <task>_pred on the test set
    <variant>/seed<k>/<name>.pt         trained weights with what rebuilds the model
"""

from __future__ import annotations

import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from mtlbench.config import Params
from mtlbench.data.tasks import TaskData, load_task
from mtlbench.fileio import atomic_path, write_json
from mtlbench.models import build_dedicated, count_parameters
from mtlbench.models.store import save_model
from mtlbench.studies import Study
from mtlbench.train.loop import FitResult, fit, predict_logits
from mtlbench.train.protocols import PROTOCOLS


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("run.device: cuda was requested but torch sees no CUDA device; use auto or cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def _fit_summary(result: FitResult, params: dict[str, int]) -> dict:
    return {
        "epochs": result.epochs_trained,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "wall_time_s": result.wall_time_s,
        "stopped_early": result.stopped_early,
        "history": result.history,
        **params,
    }


def train_dedicated_seed(study: Study, tasks: list[TaskData], seed: int, params: Params, seed_dir: Path) -> None:
    """One dedicated model per task, each seeded with `seed`."""
    protocol = PROTOCOLS[study.protocol].capped(params.run.max_epochs)
    summaries, predictions = {}, {}
    for task in tasks:
        x_train = task.train.inputs[0]
        in_shape = tuple(x_train.shape[1:])
        model = build_dedicated(study.architecture, in_shape, task.spec.n_classes, seed).to(x_train.device)
        result = fit(model, task.train, protocol, seed, (task.spec.name,),
                     label=f"{study.name} dedicated {task.spec.name} seed={seed}", progress=params.run.progress)
        (logits,) = predict_logits(model, task.test.inputs)
        predictions[f"{task.spec.name}_true"] = task.test.targets[0].cpu().numpy()
        predictions[f"{task.spec.name}_pred"] = logits.argmax(1).cpu().numpy()
        summaries[task.spec.name] = _fit_summary(result, count_parameters(model))
        spec = {"architecture": study.architecture, "in_shape": list(in_shape), "n_classes": task.spec.n_classes}
        save_model(seed_dir / f"model_{task.spec.name}.pt", model.cpu(), spec)
    _write_seed(seed_dir, study, "dedicated", seed, protocol, params, tasks, summaries, predictions)


def _write_seed(seed_dir, study, variant, seed, protocol, params, tasks, summaries, predictions) -> None:
    with atomic_path(seed_dir / "predictions.npz") as tmp:
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
        "device": str(tasks[0].train.targets[0].device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "tasks": summaries,
    })


VARIANT_TRAINERS = {"dedicated": train_dedicated_seed}


def run_study(study: Study, params: Params, prepared_dir: Path, out_dir: Path) -> None:
    """Train every variant of `study` for every seed into `out_dir` (a fresh folder)."""
    device = resolve_device(params.run.device)
    tasks = [load_task(spec, prepared_dir, params.run.train_limit, device) for spec in study.task_specs]
    for variant in study.variants:
        for seed in params.run.seeds:
            VARIANT_TRAINERS[variant](study, tasks, seed, params, out_dir / variant / f"seed{seed}")
