"""MLflow records. The only module that imports mlflow.

Layout (documented in the README):
    experiment  <study>
      parent run  <variant>                 params, seed statistics, tags
        child run <variant>-seed<k>         per-epoch curves, test metrics, confusion matrices
                                            (PNG + counts), classification reports, sample
                                            reconstructions (PNG), loss weights, trained models
Metric keys are `<task>/<metric>` on child runs and `<task>/<metric>_<stat>` on parent runs, the
same in every study, so MLflow's compare view lines runs up.

Runs are created with explicit ids through MlflowClient, never by resuming whatever run the
environment names: under `mlflow run`, MLFLOW_RUN_ID names the launcher's run, which is recorded as
a tag (`mtlbench.launcher_run_id`) on every run made here instead of being hijacked as a parent.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME, MLFLOW_GIT_COMMIT  # noqa: E402

from mtlbench.evaluate import (  # noqa: E402
    SeedOutcome, VariantOutcome, compare_to_dedicated, curve_rows, grouped_mean_curves, weight_rows,
)

STATS = ("mean", "sd", "min", "max", "n")


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def artifact_root_for(tracking_uri: str) -> str | None:
    """Artifacts beside a local SQLite store (not in the cwd, which `dvc exp run --temp` discards)."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return None


class Tracker:
    def __init__(self, tracking_uri: str, log_models: bool, root: Path, stage: str):
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.log_models = log_models
        self.launcher_run_id = os.environ.pop("MLFLOW_RUN_ID", None)
        self.base_tags = {MLFLOW_GIT_COMMIT: git_commit(root), "git_commit": git_commit(root), "dvc_stage": stage}
        if self.launcher_run_id:
            self.base_tags["mtlbench.launcher_run_id"] = self.launcher_run_id

    # -------------------------------------------------------------- runs

    def experiment_id(self, name: str) -> str:
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        root = artifact_root_for(self.tracking_uri)
        return self.client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)

    def _create_run(self, experiment_id: str, name: str, tags: dict[str, str], parent: str | None = None) -> str:
        all_tags = {**self.base_tags, **tags, MLFLOW_RUN_NAME: name}
        if parent:
            all_tags[MLFLOW_PARENT_RUN_ID] = parent
        return self.client.create_run(experiment_id, tags=all_tags, run_name=name).info.run_id

    def _log(self, run_id: str, metrics: dict[str, float] | None = None, params: dict | None = None,
             steps: list[tuple[str, float, int]] = ()) -> None:
        now = int(time.time() * 1000)
        metric_rows = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items() if v is not None]
        metric_rows += [Metric(k, float(v), now, step) for k, v, step in steps]
        param_rows = [Param(k, str(v)) for k, v in (params or {}).items()]
        for start in range(0, len(param_rows), 100):  # log_batch takes at most 100 params...
            self.client.log_batch(run_id, params=param_rows[start : start + 100])
        for start in range(0, len(metric_rows), 1000):  # ...and 1000 metrics a call
            self.client.log_batch(run_id, metrics=metric_rows[start : start + 1000])

    # -------------------------------------------------------------- the study

    def log_study(self, study: str, variants: list[VariantOutcome], report_markdown: str,
                  headline: Sequence[str] | None = None) -> dict[str, str]:
        """Log every variant of a study; returns {variant: parent run id}.

        Every task's metrics, curves, confusion matrix and report are logged (the last two also as
        one confusion_matrices.json and one classification_reports.json per seed run). A study that
        names headline tasks (cifar100_binary: up to 100 tasks a run) gets per-task files and one
        confusion figure grid for those only, and the seed statistics of accuracy and macro F1 as
        parent metrics for the others (all of them are in seed_statistics.json)."""
        experiment_id = self.experiment_id(study)
        comparisons = compare_to_dedicated(variants)
        parents = {}
        for outcome in variants:
            tags = {"mtlbench.study": study, "mtlbench.variant": outcome.variant}
            parent = self._create_run(experiment_id, outcome.variant, {**tags, "mtlbench.role": "parent"})
            self._log(parent, params={**outcome.params, "seeds": [s.seed for s in outcome.seeds]},
                      metrics={**_parent_metrics(outcome.summary, headline),
                               **_comparison_metrics(comparisons.get(outcome.variant, {}))})
            self.client.log_dict(parent, outcome.summary, "seed_statistics.json")
            self.client.log_text(parent, report_markdown, "report.md")
            if grouped_mean_curves(outcome, outcome.seeds[0]):
                self.client.log_figure(parent, average_loss_figure(outcome), "average_loss_curves.png")
            for seed in outcome.seeds:
                self._log_seed(experiment_id, parent, outcome, seed, tags, headline)
            self.client.set_terminated(parent)
            parents[outcome.variant] = parent
        return parents

    def _log_seed(self, experiment_id: str, parent: str, outcome: VariantOutcome, seed: SeedOutcome, tags: dict,
                  headline: Sequence[str] | None = None) -> None:
        run = self._create_run(experiment_id, f"{outcome.variant}-seed{seed.seed}",
                               {**tags, "mtlbench.role": "seed", "mtlbench.seed": str(seed.seed)}, parent=parent)
        steps, metrics = [], {}
        for t in seed.tasks:
            metrics.update({f"{t.task}/{k}": v for k, v in t.metrics.items()})
            for row in curve_rows(t.history, t.task) + weight_rows(t.history, t.task):
                steps += [(f"{t.task}/{k}", v, int(row["epoch"])) for k, v in row.items() if k != "epoch"]
        for group, rows in grouped_mean_curves(outcome, seed).items():
            for row in rows:
                steps += [(f"mean_{group}/{k}", v, int(row["epoch"])) for k, v in row.items() if k != "epoch"]
        labelled = [t for t in seed.tasks if t.is_classification]
        if labelled:
            self.client.log_dict(run, {t.task: {"labels": t.class_names, "matrix": t.matrix.tolist()} for t in labelled},
                                 "confusion_matrices.json")
            self.client.log_dict(run, {t.task: t.report_dict for t in labelled}, "classification_reports.json")
        for t in seed.tasks:
            if t.samples is not None:
                self.client.log_figure(run, reconstruction_grid(*t.samples, f"{outcome.variant} {t.task} seed {seed.seed}"),
                                       f"{t.task}/reconstructions.png")
        shown = [t for t in labelled if headline is None or t.task in headline]
        if headline is not None and shown:
            self.client.log_figure(run, confusion_grid(shown, f"{outcome.variant} seed {seed.seed}"), "confusion_matrices.png")
        for t in shown:
            self.client.log_dict(run, {"labels": t.class_names, "matrix": t.matrix.tolist()},
                                 f"{t.task}/confusion_matrix.json")
            if headline is None:
                self.client.log_figure(run, confusion_figure(t.matrix, t.class_names, f"{outcome.variant} {t.task} seed {seed.seed}"),
                                       f"{t.task}/confusion_matrix.png")
            self.client.log_text(run, t.text_report(), f"{t.task}/classification_report.txt")
            self.client.log_dict(run, t.report_dict, f"{t.task}/classification_report.json")
        self._log(run, params={**outcome.params, "seed": seed.seed}, metrics=metrics, steps=steps)
        if self.log_models:
            self._log_models(run, seed.models)
        self.client.set_terminated(run)

    def _log_models(self, run_id: str, models: dict[str, Callable[[], object]]) -> None:
        import torch

        import mtlbench

        mlflow.set_tracking_uri(self.tracking_uri)
        # Pickle is the deliberate format (pt2 export needs example inputs per model); say so once
        # in the README rather than once per model in every log.
        logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
        with mlflow.start_run(run_id=run_id):  # log_model needs an active run; this id is explicit
            for name, build in models.items():
                mlflow.pytorch.log_model(
                    build(), name=name, serialization_format="pickle",
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                    code_paths=[str(Path(mtlbench.__file__).parent)],  # RSN2 layers unpickle from it
                )


def _comparison_metrics(entry: dict) -> dict[str, float]:
    """`<task>/<metric>_diff` (variant minus dedicated, means) and `delta_m_<metric>_pct`."""
    out = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            out.update({f"{key}/{k}": v for k, v in value.items() if not isinstance(v, dict) and v is not None})
        else:
            out[key] = value
    return out


def _parent_metrics(summary: dict, headline: Sequence[str] | None = None) -> dict[str, float]:
    out = {}
    for task, by_metric in summary.items():
        for metric, s in by_metric.items():
            if headline is not None and task not in headline and metric not in ("accuracy", "macro_f1"):
                continue
            for stat in STATS:
                out[f"{task}/{metric}_{stat}"] = s[stat]
            if s["ci95"] is not None:
                out[f"{task}/{metric}_ci95_low"], out[f"{task}/{metric}_ci95_high"] = s["ci95"]
    return out


def average_loss_figure(outcome: VariantOutcome):
    """Train and validation loss per epoch averaged over the variant's real (and random) tasks,
    one line per seed: the mixes' average-loss curves."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for seed in outcome.seeds:
        for group, rows in grouped_mean_curves(outcome, seed).items():
            for ax, key in zip(axes, ("train_loss", "val_loss")):
                ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], label=f"{group} tasks, seed {seed.seed}",
                        linestyle="-" if group == "real" else "--")
    for ax, key in zip(axes, ("train_loss", "val_loss")):
        ax.set_xlabel("epoch")
        ax.set_title(f"{outcome.variant}: mean task {key.replace('_', ' ')}")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def reconstruction_grid(originals: np.ndarray, reconstructions: np.ndarray, title: str):
    """Test images (top row of each pair) over their reconstructions (bottom), uint8 NCHW in."""
    n = len(originals)
    cols = min(8, n)
    pairs = -(-n // cols)
    fig, axes = plt.subplots(2 * pairs, cols, figsize=(1.2 * cols, 2.5 * pairs), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        row, col = 2 * (i // cols), i % cols
        for offset, images in ((0, originals), (1, reconstructions)):
            axes[row + offset, col].imshow(np.moveaxis(images[i], 0, -1).squeeze())
    fig.suptitle(f"{title}: originals over reconstructions", fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def confusion_grid(tasks: list, title: str):
    """The confusion matrices of several small tasks in one figure."""
    cols = min(5, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat[len(tasks):]:
        ax.axis("off")
    for ax, t in zip(axes.flat, tasks):
        ax.imshow(t.matrix, cmap="Blues")
        ax.set_xticks(range(len(t.class_names)), t.class_names, fontsize=6)
        ax.set_yticks(range(len(t.class_names)), t.class_names, fontsize=6)
        ax.set_title(t.task, fontsize=8)
        for (i, j), value in np.ndenumerate(t.matrix):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=7)
    fig.suptitle(f"{title} (rows true, columns predicted)", fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def confusion_figure(matrix: np.ndarray, labels: list[str], title: str):
    size = max(4.0, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(labels) <= 20:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=7,
                    color="white" if value > threshold else "black")
    fig.tight_layout()
    plt.close(fig)
    return fig
