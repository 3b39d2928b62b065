"""Evaluation: per-run classification metrics, confusion matrices and reports (as sklearn prints
them), reconstruction MSE and PSNR, seed statistics, multitask-minus-dedicated comparisons, and the
study's markdown report. Pure functions of predictions."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from scipy import stats as scipy_stats
from sklearn.metrics import classification_report

from mtlbench.fileio import read_json
from mtlbench.studies import Study
from mtlbench.verdict import format_interval, judge, paired_comparison, verdict_text

# Per-run values summarised over seeds into metrics/<study>.json. Wall time is recorded in MLflow
# and the reports but kept out of the metrics file: it differs between identical reruns.
SUMMARY_METRICS = (
    "accuracy", "macro_precision", "macro_recall", "macro_f1", "mse", "psnr",
    "epochs", "best_val_loss", "joint_best_val_loss", "params_total", "params_nonzero", "params_packed", "model_bytes",
)
FIT_RECORDS = ("epochs", "best_val_loss", "wall_time_s", "params_total", "params_nonzero", "params_packed", "model_bytes")
JOINT_RECORDS = ("best_val_loss", "wall_time_s")  # one value for all tasks of a multitask fit
LOWER_IS_BETTER = frozenset({"mse"})
# Shown in the reports' tables and compared with the dedicated runs: each task has the first two
# (classification) or the last two (reconstruction).
TEST_METRICS = ("accuracy", "macro_f1", "mse", "psnr")


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


def weight_rows(history: list[dict], task: str) -> list[dict]:
    """One task's effective loss weight per epoch (multitask loss schemes record it; else empty)."""
    return [{"epoch": r["epoch"], "weight": r[f"{task}_weight"]} for r in history if f"{task}_weight" in r]


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int,
                           report_dict: dict | None = None) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 (absent classes count, as zeros)."""
    macro = (report_dict or report_data(confusion(y_true, y_pred, n_classes)))["macro avg"]
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "macro_precision": float(macro["precision"]),
        "macro_recall": float(macro["recall"]),
        "macro_f1": float(macro["f1-score"]),
    }


def reconstruction_metrics(per_image_mse: np.ndarray) -> dict[str, float]:
    """Test MSE (pixels in [0, 1]) and PSNR in dB, each the mean over images (PSNR of an image:
    10 log10(1 / its MSE), as tf.image.psnr with max_val 1; a perfect image counts as 100 dB)."""
    mse = np.asarray(per_image_mse, dtype=np.float64)
    psnr = 10.0 * np.log10(1.0 / np.maximum(mse, 1e-10))
    return {"mse": float(mse.mean()), "psnr": float(psnr.mean())}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted, as sklearn orders them."""
    counts = np.bincount(np.asarray(y_true) * n_classes + np.asarray(y_pred), minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def report_data(matrix: np.ndarray) -> dict:
    """sklearn's `classification_report(..., output_dict=True, zero_division=0)` computed from the
    confusion matrix: sklearn's own input checks cost 20 ms a task, minutes for a study with
    thousands of (task, seed) pairs (tests/test_evaluate.py holds the two equal)."""
    tp, support, predicted = np.diag(matrix).astype(float), matrix.sum(axis=1), matrix.sum(axis=0)
    precision, recall = _ratio(tp, predicted.astype(float)), _ratio(tp, support.astype(float))
    f1 = _ratio(2 * tp, (support + predicted).astype(float))  # 2tp / (2tp + fp + fn)
    out: dict = {str(i): {"precision": float(precision[i]), "recall": float(recall[i]), "f1-score": float(f1[i]),
                          "support": float(support[i])} for i in range(len(matrix))}
    total = float(support.sum())
    out["accuracy"] = float(tp.sum() / total) if total else 0.0
    weights = support / total if total else np.zeros(len(matrix))
    for name, w in (("macro avg", None), ("weighted avg", weights)):
        out[name] = {"precision": float(np.average(precision, weights=w)), "recall": float(np.average(recall, weights=w)),
                     "f1-score": float(np.average(f1, weights=w)), "support": total}
    return out


def format_confusion(matrix: np.ndarray) -> str:
    """The matrix as `print(confusion_matrix(...))` shows it (no '...' elision for big ones)."""
    return np.array2string(matrix, threshold=sys.maxsize, max_line_width=sys.maxsize)


def report(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, names: Sequence[str] | None = None) -> str:
    """The classification report as sklearn prints it, rows labelled with the class names."""
    return classification_report(y_true, y_pred, labels=list(range(n_classes)), zero_division=0,
                                 target_names=list(names) if names else None)


def seed_statistics(values: Sequence[float]) -> dict:
    """Mean, sample SD (ddof=1), n, min, max and a 95% t-interval; SD and CI are null for n < 2."""
    arr = np.asarray(values, dtype=np.float64)
    n = len(arr)
    mean = float(arr.mean())
    sd = float(arr.std(ddof=1)) if n > 1 else None
    if sd is not None:
        half = float(scipy_stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        ci = [mean - half, mean + half]
    else:
        ci = None
    return {"mean": mean, "sd": sd, "n": n, "min": float(arr.min()), "max": float(arr.max()),
            "ci95": ci, "values": [float(v) for v in arr]}


def summarize(per_seed: dict[str, dict[str, dict[int, dict[str, float]]]]) -> dict:
    """{model: {task: {seed: metrics}}} -> {model: {task: {metric: seed statistics}}}."""
    return {
        model: {
            task: {
                metric: seed_statistics([by_seed[s][metric] for s in sorted(by_seed)])
                for metric in SUMMARY_METRICS
                if all(metric in m for m in by_seed.values())
            }
            for task, by_seed in tasks.items()
        }
        for model, tasks in per_seed.items()
    }


# ------------------------------------------------------------------ markdown report

def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def statistics_table(summary: dict, metrics: Iterable[str] = TEST_METRICS) -> str:
    lines = ["| model | task | metric | mean | sd | n | min | max | 95% CI |", "|---|---|---|---|---|---|---|---|---|"]
    for model, tasks in summary.items():
        for task, by_metric in tasks.items():
            for metric in (m for m in metrics if m in by_metric):
                s = by_metric[metric]
                ci = "-" if s["ci95"] is None else f"[{s['ci95'][0]:.4f}, {s['ci95'][1]:.4f}]"
                lines.append(f"| {model} | {task} | {metric} | {_fmt(s['mean'])} | {_fmt(s['sd'])} | {s['n']} "
                             f"| {_fmt(s['min'])} | {_fmt(s['max'])} | {ci} |")
    return "\n".join(lines)


def markdown_report(study: str, outcomes: list["VariantOutcome"], headline: Sequence[str] | None = None) -> str:
    """The variants side by side, each run's confusion matrix and classification report (of the
    headline tasks when a study names them; every task is in metrics/ and MLflow), then the seed
    statistics."""
    rows = headline if headline is not None else list(dict.fromkeys(
        t.task for o in outcomes for t in o.seeds[0].tasks))
    comparisons = compare_to_dedicated(outcomes)
    parts = [f"# {study}", "", "## Test results, mean +- SD over seeds", "",
             "Accuracy (classification) or MSE (reconstruction, lower is better).", "",
             variant_table(outcomes, rows), ""]
    if comparisons:
        parts += ["## Verdict: multitask against dedicated, paired by seed", "",
                  *(f"- {line}" for line in verdict_lines(comparisons, headline)), "",
                  "Paired t-test on the seed-by-seed differences, Holm-adjusted across the real tasks; "
                  "the exact sign-flip test beside it (README, \"Verdicts\").", ""]
    parts += ["Test-set results per model, task and seed; classification as sklearn prints it.", ""]
    for outcome in outcomes:
        for seed in outcome.seeds:
            for t in seed.tasks:
                if headline is not None and t.task not in headline:
                    continue
                m = t.metrics
                scores = (f"accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}" if t.is_classification
                          else f"MSE {m['mse']:.5f}, PSNR {m['psnr']:.2f} dB")
                parts += [
                    f"## {outcome.variant} / {t.task} / seed {seed.seed}",
                    "",
                    f"{scores}, epochs {m['epochs']}, "
                    f"best val loss {m.get('best_val_loss', m.get('joint_best_val_loss')):.4f}"
                    f"{' (joint)' if 'joint_best_val_loss' in m else ''}, "
                    f"parameters {m['params_total']} ({m['params_nonzero']} non-zero)",
                    "",
                ]
                if t.is_classification:
                    parts += ["```", format_confusion(t.matrix), t.text_report().rstrip(), "```", ""]
    summary = {o.variant: {t: by for t, by in o.summary.items() if headline is None or t in headline} for o in outcomes}
    parts += ["## Seed statistics", "", statistics_table(summary), ""]
    if comparisons:
        parts += ["## Multitask minus dedicated", "", comparison_table(comparisons, headline), ""]
    return "\n".join(parts)


def task_comparisons(entry: dict) -> dict[str, dict]:
    """The per-task part of one variant's comparison entry (the rest is delta-m)."""
    return {k: v for k, v in entry.items() if not k.startswith("delta_m")}


def verdict_lines(comparisons: dict, headline: Sequence[str] | None = None) -> list[str]:
    """One quotable line per variant and task (mtlbench.verdict.verdict_text), then delta-m."""
    lines = []
    for variant, entry in comparisons.items():
        for task, diffs in task_comparisons(entry).items():
            if "paired" in diffs and (headline is None or task in headline):
                lines.append(verdict_text(task, variant, diffs["paired"]["metric"], diffs["paired"]))
        if "delta_m" in entry:
            lines.append(delta_m_text(variant, entry["delta_m"]))
    return lines


def delta_m_text(variant: str, s: dict) -> str:
    ci = "" if s["ci95"] is None else f", 95% CI {format_interval(s['ci95'], unit='%')}"
    return f"delta-m: {variant} {s['mean']:+.2f}%{ci}, n={s['n']} (mean relative change over the real tasks; positive = better)"


def comparison_table(comparisons: dict, headline: Sequence[str] | None = None) -> str:
    lines = ["| variant | task | metric | paired diff (mean) | 95% CI | n | p (t, Holm) | p (sign-flip) "
             "| smallest detectable | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    for variant, entry in comparisons.items():
        for task, diffs in task_comparisons(entry).items():
            c = diffs.get("paired")
            if c is None or (headline is not None and task not in headline):
                continue
            ci = "-" if c["ci95"] is None else f"[{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}]"
            lines.append(f"| {variant} | {task} | {c['metric']} | {c['mean']:+.4f} | {ci} | {c['n']} | {_fmt(c['p_holm'], 3)} "
                         f"| {_fmt(c['p_sign_flip'], 3)} | {_fmt(c['min_detectable'])} | {c['verdict']} |")
        if "delta_m" in entry:
            s = entry["delta_m"]
            lines.append(f"| {variant} | delta-m | primary metrics | {s['mean']:+.2f}% | {format_interval(s['ci95'], unit='%')} "
                         f"| {s['n']} | | | | |")
        for key, value in entry.items():  # delta-m over the tasks that have each metric (means only)
            if key.startswith("delta_m_") and key.endswith("_pct") and key != "delta_m_pct":
                metric = key.removeprefix("delta_m_").removesuffix("_pct")
                lines.append(f"| {variant} | delta-m {metric} | {metric} | {value:+.2f}% | | | | | | |")
    return "\n".join(lines)


# ------------------------------------------------------------------ a study's results

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


def _task_outcome(spec, run: dict, predictions) -> TaskOutcome:
    name, n = spec.name, spec.n_classes
    fit = run["tasks"][name]
    records = fit_records(fit, joint=run["variant"] != "dedicated")
    if not spec.is_classification:
        metrics = {**reconstruction_metrics(predictions[f"{name}_mse"]), **records}
        samples = (predictions[f"{name}_sample_true"], predictions[f"{name}_sample_pred"])
        return TaskOutcome(task=name, metrics=metrics, history=fit["history"], matrix=None, class_names=[], samples=samples,
                           started_at=fit.get("started_at"), epoch_ended_at=fit.get("epoch_ended_at", []))
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


def evaluate_study(study: Study, results_dir: Path, root: Path = Path(".")) -> list[VariantOutcome]:
    """Read every variant's seeds from the train stage's results and evaluate them (each variant
    on the tasks it trained, in the study's task order)."""
    outcomes = []
    variants = [v for v in study.variants if (results_dir / v).is_dir()]  # run.variants may select some
    if not variants:
        raise FileNotFoundError(f"{results_dir}: no trained variants; run the train stage first")
    specs = study.specs(root)
    for variant in variants:
        seed_dirs = sorted((results_dir / variant).glob("seed*"), key=lambda p: int(p.name[4:]))
        seeds, params, names = [], {}, []
        for seed_dir in seed_dirs:
            run = read_json(seed_dir / "run.json")
            params = _run_params(run)
            names = [t for t in study.tasks if t in run["tasks"]]
            with np.load(seed_dir / "predictions.npz") as predictions:
                tasks = [_task_outcome(specs[name], run, predictions) for name in names]
            models = {p.stem: p for p in sorted(seed_dir.glob("model_*.pt"))}
            seeds.append(SeedOutcome(seed=run["seed"], tasks=tasks, models=models, results_hash=results_hash(seed_dir),
                                     model_tasks=model_tasks(names, models)))
        per_seed = {name: {s.seed: s.tasks[i].metrics for s in seeds} for i, name in enumerate(names)}
        outcomes.append(VariantOutcome(variant, params, seeds, summarize({variant: per_seed})[variant]))
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
    if outcome.variant == "dedicated" or len(seed.tasks) < 2 or any(
            [r["loss"] for r in t.history] != joint for t in seed.tasks[1:]):
        return {}
    return {group: mean_curves(members) for group, members in task_groups(seed.tasks).items()}


def task_groups(tasks: Sequence[TaskOutcome]) -> dict[str, list[TaskOutcome]]:
    """Classification tasks split into real and random-label ones, for averaged curves and table
    rows (a reconstruction's loss is on another scale: it is averaged with neither)."""
    labelled = [t for t in tasks if t.is_classification]
    groups = {"real": [t for t in labelled if not t.is_random], "random": [t for t in labelled if t.is_random]}
    return {name: members for name, members in groups.items() if members}


def primary_metric(by_metric: dict) -> str:
    """The metric a task is judged by: accuracy, or MSE for a reconstruction."""
    return "accuracy" if "accuracy" in by_metric else "mse"


def variant_table(outcomes: list["VariantOutcome"], rows: Sequence[str]) -> str:
    """Tasks as rows, variants as columns, "mean +- SD" over seeds of each task's primary metric
    (laid out like reference/003), then the mean accuracy over each variant's real and random tasks."""
    header = "| task | " + " | ".join(o.variant for o in outcomes) + " |"
    lines = [header, "|---" * (len(outcomes) + 1) + "|"]

    def cell(s: dict | None) -> str:
        if s is None:
            return ""
        return f"{s['mean']:.4f}" + ("" if s["sd"] is None else f" +- {s['sd']:.4f}")

    for task in rows:
        found = [o.summary[task] for o in outcomes if task in o.summary]
        metric = primary_metric(found[0]) if found else "accuracy"
        label = task if metric == "accuracy" else f"{task} ({metric})"
        lines.append(f"| {label} | " + " | ".join(cell(o.summary.get(task, {}).get(metric)) for o in outcomes) + " |")
    for group in ("real", "random"):
        cells = []
        for o in outcomes:
            members = [t.task for t in task_groups(o.seeds[0].tasks).get(group, [])]
            cells.append(f"{np.mean([o.summary[t]['accuracy']['mean'] for t in members]):.4f} ({len(members)})" if members else "")
        if any(cells):
            lines.append(f"| mean of {group} tasks (n) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_to_dedicated(outcomes: list[VariantOutcome], baseline: str = "dedicated") -> dict:
    """Per multitask variant: mean difference to the study's own dedicated runs per task and metric
    (plus the paired per-seed differences' statistics), and delta-m, the average relative change
    over tasks in percent, signed so that positive means better (Maninis et al. 2019: an MSE that
    falls counts as a gain): `delta_m_pct` over every task by its primary metric (accuracy, or MSE
    for a reconstruction), `delta_m_<metric>_pct` over the tasks that have that metric. Only tasks
    with a dedicated run count (cifar100_binary trains dedicated models for T1..T5 alone), and
    delta-m leaves out random-label tasks: their test accuracy is chance by construction, so they
    get per-task differences but would only add noise to the average.

    Each task's `paired` entry is the paired test of its primary metric with the verdict
    (mtlbench.verdict); `delta_m` holds the seed statistics of the per-seed delta-m (seed k's
    signed relative change to dedicated seed k, over the tasks' dedicated means, so its mean is
    `delta_m_pct`)."""
    by_name = {o.variant: o for o in outcomes}
    if baseline not in by_name:
        return {}
    base = by_name[baseline]
    comparisons = {}
    for outcome in outcomes:
        shared = [task for task in outcome.summary if task in base.summary]
        if outcome.variant == baseline or not shared:
            continue
        entry: dict = {task: {} for task in shared}
        random_tasks = frozenset(t.task for t in base.seeds[0].tasks if t.is_random)
        relative: dict[str, dict[str, float]] = {}  # metric -> task -> signed relative change
        per_seed_relative: dict[str, list[float]] = {}  # task -> seed k's signed change / dedicated mean
        signed_pairs: dict[str, dict] = {}
        for task in shared:
            primary = primary_metric(base.summary[task])
            for metric in (m for m in TEST_METRICS if m in outcome.summary[task] and m in base.summary[task]):
                mine, ref = outcome.summary[task][metric]["mean"], base.summary[task][metric]["mean"]
                paired = _paired_differences(outcome, base, task, metric)
                entry[task][f"{metric}_diff"] = mine - ref
                entry[task][f"{metric}_paired_diff"] = seed_statistics(paired) if paired else None
                sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
                if task not in random_tasks:
                    relative.setdefault(metric, {})[task] = sign * (mine - ref) / ref if ref else 0.0
                if metric == primary and paired:
                    signed_pairs[task] = {"metric": metric, **paired_comparison([sign * d for d in paired])}
                    if task not in random_tasks:
                        per_seed_relative[task] = [sign * d / ref if ref else 0.0 for d in paired]
        for task, judged in judge(signed_pairs, random_tasks).items():
            entry[task]["paired"] = judged
        primary = [relative[primary_metric(base.summary[task])][task] for task in shared if task not in random_tasks]
        if not primary:  # only random-label tasks in common: no delta-m
            comparisons[outcome.variant] = entry
            continue
        entry["delta_m_pct"] = 100.0 * float(np.mean(primary))
        for metric, by_task in relative.items():
            entry[f"delta_m_{metric}_pct"] = 100.0 * float(np.mean(list(by_task.values())))
        if per_seed_relative and len({len(v) for v in per_seed_relative.values()}) == 1:
            per_seed = [100.0 * float(np.mean(values)) for values in zip(*per_seed_relative.values())]
            entry["delta_m"] = seed_statistics(per_seed)
        comparisons[outcome.variant] = entry
    return comparisons


def _paired_differences(outcome: VariantOutcome, base: VariantOutcome, task: str, metric: str) -> list[float]:
    def by_seed(o: VariantOutcome) -> dict[int, float]:
        return {s.seed: next(t.metrics[metric] for t in s.tasks if t.task == task) for s in o.seeds}

    mine, theirs = by_seed(outcome), by_seed(base)
    return [mine[s] - theirs[s] for s in sorted(mine) if s in theirs]
