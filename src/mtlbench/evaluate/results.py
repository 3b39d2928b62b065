"""The train stage's results read back: each variant's seeds and tasks as outcomes (metrics,
histories, confusion matrices), their curves, and a hash of what each run produced."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mtlbench.errors import ExpectedError
from mtlbench.fileio import read_json
from mtlbench.studies import Study
from mtlbench.evaluate.metrics import classification_metrics, confusion, reconstruction_metrics, report, report_data
from mtlbench.evaluate.comparisons import summarize


FIT_RECORDS = ("epochs", "best_val_loss", "wall_time_s", "params_total", "params_nonzero", "params_packed", "model_bytes")
JOINT_RECORDS = ("best_val_loss", "wall_time_s")  # one value for all tasks of a multitask fit
CURVE_COLUMNS = ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy")


def fit_records(fit: dict, joint: bool) -> dict[str, float]:
    """A task's fit summary; in a multitask fit the validation loss and the wall time are the joint
    fit's (every task of it has the same), so they are named `joint_<record>`, not as a task's own."""
    return {(f"joint_{k}" if joint and k in JOINT_RECORDS else k): fit[k] for k in FIT_RECORDS}


def curve_rows(history: list[dict], task: str) -> list[dict]:
    """One task's per-epoch curves out of a fit history (which keys them Keras-style); accuracies
    only for classification tasks."""
    rows = []
    for r in history:
        row = {"epoch": r["epoch"], "train_loss": r[f"{task}_loss"], "val_loss": r[f"val_{task}_loss"]}
        if f"{task}_accuracy" in r:
            row.update(train_accuracy=r[f"{task}_accuracy"], val_accuracy=r[f"val_{task}_accuracy"])
        rows.append(row)
    return rows


def seed_mean_curve(by_seed: dict[str, list[dict]], key: str) -> tuple[list[int], list[float]]:
    """Per epoch that every seed reached, the mean over the seeds. Early stopping ends some seeds
    sooner, and past the shortest one a "mean" would be of fewer seeds (once of one seed alone, which
    read as a collapse of the variant): the mean stops there and the per-seed lines show the rest."""
    shortest = min(by_seed.values(), key=len)
    epochs = [r["epoch"] for r in shortest]
    means = [float(np.mean([rows[i][key] for rows in by_seed.values()])) for i in range(len(epochs))]
    return epochs, means


def weight_rows(history: list[dict], task: str) -> list[dict]:
    """One task's effective loss weight per epoch (multitask loss schemes record it; else empty)."""
    return [{"epoch": r["epoch"], "weight": r[f"{task}_weight"]} for r in history if f"{task}_weight" in r]


@dataclass
class TaskOutcome:
    """One task of one run. Classification: the confusion matrix, report and predictions;
    reconstruction: `samples`, the first test images and their reconstructions (uint8 NCHW)."""

    task: str
    metrics: dict[str, float]
    history: list[dict[str, float]]
    matrix: np.ndarray | None
    class_names: list[str]
    report_text: str | None = None  # None until text_report() first asks (sklearn's text is slow for many tasks)
    report_dict: dict | None = None
    y_true: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    is_random: bool = False  # labels independent of the image
    samples: tuple[np.ndarray, np.ndarray] | None = None
    started_at: float | None = None  # Unix time the fit began, and each epoch's end (train/loop.py)
    epoch_ended_at: list[float] = field(default_factory=list)
    per_image_mse: np.ndarray | None = None  # a reconstruction's test MSE per image

    @property
    def item_scores(self) -> np.ndarray | None:
        """The primary metric per test item, whose mean is the metric: correct (1.0) or not, or an
        image's MSE; None where the outcome holds no per-item results. The paired tests count the
        test items as a sample through these."""
        if self.is_classification:
            if self.y_true is None or self.y_pred is None:
                return None
            return (np.asarray(self.y_pred) == np.asarray(self.y_true)).astype(np.float64)
        return None if self.per_image_mse is None else np.asarray(self.per_image_mse, dtype=np.float64)

    @property
    def is_classification(self) -> bool:
        return self.matrix is not None

    def text_report(self) -> str:
        if self.report_text is None:
            self.report_text = report(self.y_true, self.y_pred, len(self.class_names), self.class_names)
        return self.report_text


@dataclass
class SeedOutcome:
    seed: int
    tasks: list[TaskOutcome]
    models: dict[str, Path] = field(default_factory=dict)  # name -> the saved model file (models/store.py)
    results_hash: str = ""  # of every file the train stage wrote for this seed (run.json, predictions, models)
    model_tasks: dict[str, list[str]] = field(default_factory=dict)  # model name -> the tasks it answers


@dataclass
class VariantOutcome:
    variant: str
    params: dict[str, object]
    seeds: list[SeedOutcome]
    summary: dict = field(default_factory=dict)  # task -> metric -> seed statistics
    kind: str = ""  # the variant's kind (studies.Variant.kind): the baseline is found by it
    joint: bool = True  # one fit trained all its tasks (what its kind wrote in run.json)
    budget: int | None = None  # its parameters for all its tasks, as its kind counts them


def _task_outcome(spec, run: dict, predictions, joint: bool) -> TaskOutcome:
    name, n = spec.name, spec.n_classes
    fit = run["tasks"][name]
    records = fit_records(fit, joint=joint)
    if not spec.is_classification:
        metrics = {**reconstruction_metrics(predictions[f"{name}_mse"]), **records}
        samples = (predictions[f"{name}_sample_true"], predictions[f"{name}_sample_pred"])
        return TaskOutcome(task=name, metrics=metrics, history=fit["history"], matrix=None, class_names=[], samples=samples,
                           started_at=fit.get("started_at"), epoch_ended_at=fit.get("epoch_ended_at", []),
                           per_image_mse=np.asarray(predictions[f"{name}_mse"]))
    y_true, y_pred = predictions[f"{name}_true"], predictions[f"{name}_pred"]
    matrix = confusion(y_true, y_pred, n)
    report_dict = report_data(matrix)
    metrics = {
        **classification_metrics(y_true, y_pred, n, report_dict),
        **records,
    }
    return TaskOutcome(
        task=name, metrics=metrics, history=fit["history"], matrix=matrix,
        class_names=list(spec.class_names), report_dict=report_dict, y_true=y_true, y_pred=y_pred,
        is_random=spec.is_random, started_at=fit.get("started_at"), epoch_ended_at=fit.get("epoch_ended_at", []),
    )


def _run_params(run: dict) -> dict[str, object]:
    """The same keys for every run of every study, so MLflow's compare view lines them up."""
    protocol = run["protocol"]
    fit = next(iter(run["tasks"].values()))
    return {
        "study": run["study"], "variant": run["variant"], "architecture": run["architecture"],
        "method": fit.get("method"), "method_options": fit.get("method_options"),
        "protocol": protocol["name"], "lr": protocol["lr"], "batch_size": protocol["batch_size"],
        "max_epochs": protocol["max_epochs"], "patience": protocol["patience"], "min_delta": protocol["min_delta"],
        "val_fraction": protocol["val_fraction"], "grad_clip": protocol.get("grad_clip"),
        "n_tasks": len(run["tasks"]), "device": run["device"], "torch": run["torch"],
    }


class ResultsError(ExpectedError):
    """The train stage's results are missing, incomplete or damaged (said with the file and what to do)."""


SEED_FOLDER = re.compile(r"seed(\d+)")


def _damaged(path: Path, err: Exception, study: str) -> ResultsError:
    why = f"no key {err}" if isinstance(err, KeyError) else str(err).splitlines()[0] if str(err) else "damaged"
    return ResultsError(f"{path}: unreadable ({type(err).__name__}: {why}); "
                        f"the train stage's output is damaged: `dvc repro train@{study}` retrains exactly the "
                        f"units whose files no longer match the digests recorded in results/{study}/units.json")


def seed_folders(variant_dir: Path, study: str) -> list[Path]:
    """The variant's seed<k> folders in seed order; anything else there is an error, not a seed."""
    entries = sorted(variant_dir.iterdir())
    stray = [p for p in entries if not SEED_FOLDER.fullmatch(p.name)]
    if stray:
        raise ResultsError(f"{stray[0]}: not a seed folder of the train stage (expected seed<k>); move it out of "
                           f"results/ or run `dvc repro` (the train stage removes what it did not write)")
    return sorted(entries, key=lambda p: int(SEED_FOLDER.fullmatch(p.name).group(1)))


def evaluate_study(study: Study, results_dir: Path, root: Path = Path(".")) -> list[VariantOutcome]:
    """Read every variant's seeds from the train stage's results and evaluate them (each variant
    on the tasks it trained, in the study's task order)."""
    outcomes = []
    variants = [v for v in study.variants if (results_dir / v).is_dir()]  # run.variants may select some
    if not variants or not (results_dir / "context.json").is_file():
        raise ResultsError(f"{results_dir}: no complete training results (the train stage writes context.json "
                           f"last); run `dvc repro train@{study.name}`")
    specs = study.specs(root)
    for variant in variants:
        seeds, params, names, facts = [], {}, [], {}
        for seed_dir in seed_folders(results_dir / variant, study.name):
            try:
                run = read_json(seed_dir / "run.json")
                params = _run_params(run)  # a run.json without its keys (tasks, seed, protocol, ...) is damaged too
                names = [t for t in study.tasks if t in run["tasks"]]
                seed = int(run["seed"])
                facts = {"joint": bool(run["kind"]["joint"]), "budget": int(run["kind"]["budget"])}  # its kind's word
            except (OSError, ValueError, KeyError, TypeError, AttributeError, StopIteration) as err:
                raise _damaged(seed_dir / "run.json", err, study.name) from None
            try:
                with np.load(seed_dir / "predictions.npz") as predictions:
                    tasks = [_task_outcome(specs[name], run, predictions, facts["joint"]) for name in names]
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
                raise _damaged(seed_dir / "predictions.npz", err, study.name) from None
            models = {p.stem: p for p in sorted(seed_dir.glob("model_*.pt"))}
            seeds.append(SeedOutcome(seed=seed, tasks=tasks, models=models, results_hash=results_hash(seed_dir),
                                     model_tasks=model_tasks(names, models)))
        per_seed = {name: {s.seed: s.tasks[i].metrics for s in seeds} for i, name in enumerate(names)}
        outcomes.append(VariantOutcome(variant, params, seeds, summarize({variant: per_seed})[variant],
                                       study.variant_kind(variant), **facts))
    return outcomes


VOLATILE_RECORDS = frozenset({"wall_time_s", "started_at", "epoch_ended_at", "seconds"})  # when and how fast, not what


def _without_volatile(value):
    if isinstance(value, dict):
        return {k: _without_volatile(v) for k, v in value.items() if k not in VOLATILE_RECORDS}
    if isinstance(value, list):
        return [_without_volatile(v) for v in value]
    return value


def results_hash(seed_dir: Path) -> str:
    """SHA-256 of what a seed's results say: every file's bytes, run.json without its timings. A
    deterministic retraining gives the same hash, so MLflow keeps one record of it (tracking)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in seed_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(seed_dir).as_posix().encode() + b"\0")
        if path.name == "run.json":
            digest.update(json.dumps(_without_volatile(read_json(path)), sort_keys=True).encode())
            continue
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_tasks(names: Sequence[str], models: dict) -> dict[str, list[str]]:
    """The tasks each saved model answers: a dedicated model its own, a multitask model all of them."""
    return {name: [name.removeprefix("model_")] if name.removeprefix("model_") in names else list(names) for name in models}


def mean_curves(tasks: Sequence["TaskOutcome"]) -> list[dict]:
    """Per epoch, the tasks' curves averaged (the multitask variants' average-loss curves)."""
    per_task = [curve_rows(t.history, t.task) for t in tasks]
    return [
        {"epoch": rows[0]["epoch"], **{k: float(np.mean([r[k] for r in rows])) for k in CURVE_COLUMNS[1:]}}
        for rows in zip(*per_task)
    ]


def grouped_mean_curves(outcome: "VariantOutcome", seed: "SeedOutcome") -> dict[str, list[dict]]:
    """{"real": curves, "random": curves} for a seed whose tasks were trained in one joint fit; empty
    for dedicated models, single tasks and phased training (separate fits: nothing to average)."""
    joint = [r["loss"] for r in seed.tasks[0].history]
    if not outcome.joint or len(seed.tasks) < 2 or any(
            [r["loss"] for r in t.history] != joint for t in seed.tasks[1:]):
        return {}
    return {group: mean_curves(members) for group, members in task_groups(seed.tasks).items()}


def task_groups(tasks: Sequence[TaskOutcome]) -> dict[str, list[TaskOutcome]]:
    """Classification tasks split into real and random-label ones, for averaged curves and table
    rows (a reconstruction's loss is on another scale: it is averaged with neither)."""
    labelled = [t for t in tasks if t.is_classification]
    groups = {"real": [t for t in labelled if not t.is_random], "random": [t for t in labelled if t.is_random]}
    return {name: members for name, members in groups.items() if members}
