"""Every figure, drawn with matplotlib: from a run's details document (outputs.details_document)
each task's test score per variant with 95% CI error bars, the validation curves of every variant
overlaid per task, a forest plot of delta-m across runs and variants, and the map of the difference
over training rows (the summary stage's PNG
files and HTML page, the README's figure, the MLflow parent runs' artifacts); and the MLflow seed
runs' own: average-loss curves, confusion matrices, reconstructions."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullLocator  # noqa: E402

from mtlbench.evaluate import grouped_mean_curves, primary_metric, seed_mean_curve  # noqa: E402

DPI = 110


def png_bytes(fig: Figure) -> bytes:
    """PNG without the creation-time metadata, so identical data gives identical files."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _grid(n: int, width: float = 3.6, height: float = 3.0) -> tuple[Figure, np.ndarray]:
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes


def scores_figure(details: dict, tasks: list[str] | None = None) -> Figure:
    """Per task, the primary test metric's mean over seeds for each variant, with its 95% CI (dots and
    whiskers on an axis zoomed to the intervals)."""
    variants = details["variants"]
    tasks = tasks or list(dict.fromkeys(t for v in variants.values() for t in v))
    tasks = [t for t in tasks if any(t in v for v in variants.values())]  # headline tasks no variant ran
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes.flat, tasks):
        names = [v for v in variants if task in variants[v]]
        stats = [variants[v][task][primary_metric(variants[v][task])] for v in names]
        means = [s["mean"] for s in stats]
        errors = [0.0 if s["ci95"] is None else (s["ci95"][1] - s["ci95"][0]) / 2 for s in stats]
        metric = primary_metric(variants[names[0]][task])
        for i, (m, e) in enumerate(zip(means, errors)):  # points, not bars: the axis is zoomed to the CIs
            ax.errorbar([i], [m], yerr=[e], fmt="o", capsize=5, color=f"C{i}", markersize=7)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.grid(axis="y", alpha=0.3)
        labels = [f"{v}\n{m:.4f} (n={s['n']})" for v, m, s in zip(names, means, stats)]
        ax.set_xticks(range(len(names)), labels, fontsize=7, rotation=20 if len(names) > 3 else 0)
        low = min(m - e for m, e in zip(means, errors))
        high = max(m + e for m, e in zip(means, errors))
        pad = max(high - low, 1e-3) * 0.3
        top = high + pad if metric != "accuracy" else min(high + pad, 1.0)  # an accuracy CI can overshoot 1
        ax.set_ylim(max(0.0, low - pad), top)
        ax.set_title(f"{task}: test {metric}", fontsize=9)
    fig.suptitle(f"{details['study']}: mean over seeds, error bars 95% CI (t)", fontsize=10)
    fig.tight_layout()
    return fig


def curves_figure(details: dict, tasks: list[str] | None = None) -> Figure:
    """Per task, every variant's validation accuracy (loss for a reconstruction) per epoch, the
    mean over seeds and each seed, overlaid: dedicated against the multitask variants on one axis."""
    curves = details["curves"]
    tasks = tasks or list(dict.fromkeys(t for v in curves.values() for t in v))
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes.flat, tasks):
        for i, (variant, by_task) in enumerate(curves.items()):
            if task not in by_task or not by_task[task]:
                continue
            first = next(iter(by_task[task].values()))
            key = "val_accuracy" if "val_accuracy" in first[0] else "val_loss"
            for rows in by_task[task].values():  # each seed, thin, to its own last epoch
                ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], color=f"C{i}", alpha=0.3, linewidth=0.8)
            epochs, means = seed_mean_curve(by_task[task], key)
            ax.plot(epochs, means, color=f"C{i}", label=variant, marker="." if len(epochs) < 30 else None)
            ax.set_ylabel(key.replace("_", " "), fontsize=8)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(task, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"{details['study']}: validation curves, mean over seeds (to the shortest seed's end) and each seed (thin)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def forest_figure(rows: list[dict]) -> Figure:
    """delta-m (%) with its 95% CI per study and multitask variant; right of zero: multitask better.
    `rows`: {label, mean, ci95 (or None), n}."""
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.4))
    for y, row in enumerate(reversed(rows)):
        if row["ci95"] is not None:
            ax.plot(row["ci95"], [y, y], color="C0", linewidth=2)
        ax.plot([row["mean"]], [y], "o", color="C0")
        ax.text(row["mean"], y + 0.18, f"{row['mean']:+.2f}% (n={row['n']})",
                ha="center", fontsize=7)
    ax.axvline(0.0, color="gray", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(rows)), [r["label"] for r in reversed(rows)], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("delta-m, % (multitask vs dedicated; positive = multitask better), 95% CI over seeds", fontsize=8)
    ax.set_title("delta-m across runs and variants", fontsize=10)
    fig.tight_layout()
    return fig


def map_figure(points: list[dict], margin: float | None) -> Figure:
    """The map: each task's multitask-minus-dedicated difference (points) against training rows per
    task, one panel per multitask variant, one line per task set and task; 95% CI bars; the grey
    band is the equivalence margin. Filled markers: confirmatory runs; hollow: exploratory (pilots).
    `points`: {variant, study, task, rows, diff, ci95, confirmatory} with diff and ci95 in points."""
    variants = list(dict.fromkeys(p["variant"] for p in points))
    fig, axes = plt.subplots(1, len(variants), figsize=(5.6 * len(variants), 4.2), squeeze=False, sharey=True)
    studies = list(dict.fromkeys(p["study"] for p in points))
    for ax, variant in zip(axes[0], variants):
        if margin:
            ax.axhspan(-margin, margin, color="0.88", zorder=0)
        ax.axhline(0.0, color="gray", linewidth=0.8, zorder=1)
        mine = [p for p in points if p["variant"] == variant]
        lines = list(dict.fromkeys((p["study"], p["task"]) for p in mine))
        for k, (study, task) in enumerate(lines):
            line = sorted((p for p in mine if (p["study"], p["task"]) == (study, task)), key=lambda p: p["rows"])
            color, style = f"C{studies.index(study)}", ("-", "--", ":")[[t for s, t in lines if s == study].index(task) % 3]
            shift = 1.0 + 0.03 * (k - len(lines) / 2)  # side by side on the log axis, so the bars do not hide each other
            xs = [p["rows"] * shift for p in line]
            ax.plot(xs, [p["diff"] for p in line], style, color=color, linewidth=1.2, label=f"{study}: {task}")
            for x, p in zip(xs, line):
                if p["ci95"] is not None:
                    ax.plot([x, x], p["ci95"], color=color, linewidth=1.2)
                ax.plot([x], [p["diff"]], "o", color=color, markerfacecolor=color if p["confirmatory"] else "white")
        ax.set_xscale("log")
        sizes = sorted({p["rows"] for p in mine})
        ax.set_xticks(sizes, [str(size) for size in sizes])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("training rows per task", fontsize=8)
        ax.set_title(variant, fontsize=10)
        ax.tick_params(labelsize=8)
    axes[0][0].set_ylabel("multitask - dedicated (points), 95% CI", fontsize=8)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("When does multitask pay? Difference against training rows per task "
                 "(grey: equivalence margin; hollow: exploratory)", fontsize=9)
    fig.tight_layout()
    return fig


def ranking_figure(comparisons: dict[str, dict[str, dict]], reference: str, title: str) -> Figure:
    """Per task, each method's paired difference to `reference` (points of accuracy) with its 95%
    CI, best first; filled where Holm's verdict is better or worse, hollow where no difference
    was detected. `comparisons`: evaluate.compare_methods' result."""
    tasks = list(dict.fromkeys(t for by_task in comparisons.values() for t in by_task))
    fig, axes = _grid(len(tasks), width=4.6, height=0.32 * len(comparisons) + 1.3)
    for ax, task in zip(axes.flat, tasks):
        rows = sorted(((m, by_task[task]) for m, by_task in comparisons.items() if task in by_task),
                      key=lambda mc: mc[1]["mean"])
        for y, (method, c) in enumerate(rows):
            scale = 100.0 if c["metric"] in ("accuracy", "macro_f1") else 1.0
            if c["ci95"] is not None:
                ax.plot([scale * v for v in c["ci95"]], [y, y], color="C0", linewidth=1.5)
            decided = c["verdict"] in ("better", "worse")
            ax.plot([scale * c["mean"]], [y], "o", color="C0", markerfacecolor="C0" if decided else "white")
        ax.axvline(0.0, color="gray", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(rows)), [m for m, _ in rows], fontsize=7)
        ax.set_title(f"{task}: difference to {reference}", fontsize=9)
        ax.set_xlabel("points (positive = method better), 95% CI", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def average_loss_figure(outcome):
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


def png_array(png: bytes) -> np.ndarray:
    return plt.imread(io.BytesIO(png), format="png")
