"""`python -m mtlbench.bench.pilot`: how the modern protocol's hyperparameters were chosen.

Candidates of train/protocols.MODERN are trained as dedicated mlp models (seed 0) on the first
20000 training rows of the real MNIST and Fashion files for 8 epochs, and compared on the
VALIDATION split only (the last 10% of those rows); the test sets are never read. Needs the
prepared data in data/prepared (`dvc repro prepare`). Writes bench/modern_pilot.json.

The longer budget (the cosine schedule spread over 30 epochs instead of 15):
`python -m mtlbench.bench.pilot --rows 0 --tasks fashion --epochs 15 --candidates no_augment
no_augment_epochs_30 --out bench/modern_budget_pilot.json` (no_augment: the mlp studies run modern
without augmentation, train/protocols.MODERN_BY_ARCHITECTURE), each fit read under both selection
rules (lowest validation loss, as the protocol restores; highest validation accuracy).
"""

from __future__ import annotations

import argparse
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
CANDIDATES = {"default": {}, "no_augment": {"augment": False}, "lr_3e-3": {"lr": 3e-3},
              "epochs_30": {"max_epochs": 30},  # the longer budget (the cosine schedule spans it)
              # the mlp studies' modern protocol as they run it (MODERN_BY_ARCHITECTURE), over 30 epochs
              "no_augment_epochs_30": {"augment": False, "max_epochs": 30}}
DEFAULT_CANDIDATES = ("default", "no_augment", "lr_3e-3")


def selections(history: list[dict], task: str) -> dict:
    """What each selection rule would keep from one fit's validation history: the epoch of the
    lowest validation loss (what the protocol restores) and the epoch of the highest validation
    accuracy, each with its validation accuracy. Validation data only: the test set is not read."""
    accuracy = [h[f"val_{task}_accuracy"] for h in history]
    by_loss = min(range(len(history)), key=lambda i: history[i]["val_loss"])
    by_accuracy = max(range(len(history)), key=lambda i: accuracy[i])
    return {"val_accuracy_per_epoch": [round(a, 4) for a in accuracy],
            "by_val_loss": {"epoch": by_loss + 1, "val_accuracy": round(accuracy[by_loss], 4)},
            "by_val_accuracy": {"epoch": by_accuracy + 1, "val_accuracy": round(accuracy[by_accuracy], 4)}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mtlbench.bench.pilot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=ROWS, help="training rows per task (0: all)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="max_epochs, unless a candidate sets its own")
    parser.add_argument("--tasks", nargs="+", default=None, help="of mnist_fashion_mlp (default: both)")
    parser.add_argument("--candidates", nargs="+", default=list(DEFAULT_CANDIDATES), choices=sorted(CANDIDATES))
    parser.add_argument("--out", type=Path, default=Path("bench/modern_pilot.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    study = STUDIES["mnist_fashion_mlp"]
    specs = study.specs()
    names = args.tasks or list(study.tasks)
    unknown = sorted(set(names) - set(study.tasks))
    if unknown:
        raise SystemExit(f"--tasks: {', '.join(unknown)} not in mnist_fashion_mlp (its tasks: {', '.join(study.tasks)})")
    tasks = load_tasks([specs[t] for t in names], Path("data/prepared"), Path("data/tasks"), args.rows or None,
                       torch.device("cpu"))
    results = {}
    for name in args.candidates:
        protocol = replace(MODERN, **{"max_epochs": args.epochs, **CANDIDATES[name]})
        for task in tasks:
            started = time.time()
            model = build_dedicated(study.architecture, tuple(task.train.inputs[0].shape[1:]), task.spec.n_classes, SEED)
            fit_result = fit(model, task.train, protocol, SEED, (task.spec.name,))
            picked = selections(fit_result.history, task.spec.name)
            results[f"{name}/{task.spec.name}"] = {**picked, "epochs": protocol.max_epochs,
                                                   "best_epoch": fit_result.best_epoch,
                                                   "seconds": round(time.time() - started)}
            print(name, task.spec.name, picked["val_accuracy_per_epoch"], file=sys.stderr, flush=True)
    write_json(args.out, {
        "rows": args.rows or "all", "epochs": args.epochs, "seed": SEED, "architecture": study.architecture,
        "cpu": cpu_model(), "threads": torch.get_num_threads(),
        "candidates": {n: CANDIDATES[n] for n in args.candidates}, "validation": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
