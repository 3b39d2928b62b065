"""`python -m mtlbench.bench.pilot`: how the modern protocol's hyperparameters were chosen.

Candidates of train/protocols.MODERN are trained as dedicated mlp models (seed 0) on the first
20000 training rows of the real MNIST and Fashion files for 8 epochs, and compared on the
VALIDATION split only (the last 10% of those rows); the test sets are never read. Needs the
prepared data in data/prepared (`dvc repro prepare`). Writes bench/modern_pilot.json.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from mtlbench.data.tasks import load_tasks
from mtlbench.fileio import write_json
from mtlbench.models import build_dedicated
from mtlbench.runtime import cpu_model
from mtlbench.studies import STUDIES
from mtlbench.train.loop import fit
from mtlbench.train.protocols import MODERN

ROWS, EPOCHS, SEED = 20000, 8, 0
CANDIDATES = {"default": {}, "no_augment": {"augment": False}, "lr_3e-3": {"lr": 3e-3}}


def main() -> int:
    study = STUDIES["mnist_fashion_mlp"]
    specs = study.specs()
    tasks = load_tasks([specs[t] for t in study.tasks], Path("data/prepared"), Path("data/tasks"), ROWS,
                       torch.device("cpu"))
    results = {}
    for name, change in CANDIDATES.items():
        protocol = replace(MODERN, max_epochs=EPOCHS, **change)
        for task in tasks:
            started = time.time()
            model = build_dedicated(study.architecture, tuple(task.train.inputs[0].shape[1:]), task.spec.n_classes, SEED)
            fit_result = fit(model, task.train, protocol, SEED, (task.spec.name,))
            accuracies = [round(h[f"val_{task.spec.name}_accuracy"], 4) for h in fit_result.history]
            results[f"{name}/{task.spec.name}"] = {"val_accuracy_per_epoch": accuracies, "best_epoch": fit_result.best_epoch,
                                                   "seconds": round(time.time() - started)}
            print(name, task.spec.name, accuracies, file=sys.stderr, flush=True)
    write_json(Path("bench/modern_pilot.json"), {
        "rows": ROWS, "epochs": EPOCHS, "seed": SEED, "architecture": study.architecture, "cpu": cpu_model(),
        "threads": torch.get_num_threads(), "candidates": CANDIDATES, "validation": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
