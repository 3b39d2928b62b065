"""Seed statistics and the multitask-minus-dedicated comparisons (differences of means, paired
differences with their verdicts, delta-m)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats

from mtlbench.studies import BASELINE_KIND
from mtlbench.verdict import BOUNDED, MARGIN, MSE_MARGIN, difference_bounds, judge, paired_comparison, within
from mtlbench.evaluate.metrics import LOWER_IS_BETTER, TEST_METRICS, primary_metric
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mtlbench.evaluate.results import VariantOutcome

# Per-run values summarised over seeds into metrics/<run>.json. Wall time is recorded in MLflow
# and the reports but kept out of the metrics file: it differs between identical reruns.
SUMMARY_METRICS = (
    "accuracy", "macro_precision", "macro_recall", "macro_f1", "mse", "psnr",
    "epochs", "best_val_loss", "joint_best_val_loss", "params_total", "params_nonzero", "params_packed", "model_bytes",
)


def seed_statistics(values: Sequence[float], bounds: tuple[float, float] | None = None) -> dict:
    """Mean, sample SD (ddof=1), n, min, max and a 95% t-interval, cut to `bounds` (the values the
    metric can take: an accuracy's interval stays inside [0, 1]); SD and CI are null for n < 2."""
    arr = np.asarray(values, dtype=np.float64)
    n = len(arr)
    mean = float(arr.mean())
    sd = float(arr.std(ddof=1)) if n > 1 else None
    if sd is not None:
        half = float(scipy_stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        ci = within([mean - half, mean + half], bounds)
    else:
        ci = None
    return {"mean": mean, "sd": sd, "n": n, "min": float(arr.min()), "max": float(arr.max()),
            "ci95": ci, "values": [float(v) for v in arr]}


def summarize(per_seed: dict[str, dict[str, dict[int, dict[str, float]]]]) -> dict:
    """{model: {task: {seed: metrics}}} -> {model: {task: {metric: seed statistics}}}."""
    return {
        model: {
            task: {
                metric: seed_statistics([by_seed[s][metric] for s in sorted(by_seed)], BOUNDED.get(metric))
                for metric in SUMMARY_METRICS
                if all(metric in m for m in by_seed.values())
            }
            for task, by_seed in tasks.items()
        }
        for model, tasks in per_seed.items()
    }


def task_comparisons(entry: dict) -> dict[str, dict]:
    """The per-task part of one variant's comparison entry (the rest is delta-m)."""
    return {k: v for k, v in entry.items() if not k.startswith("delta_m")}


def compare_to_dedicated(outcomes: list[VariantOutcome], margin: float = MARGIN, mse_margin: float = MSE_MARGIN) -> dict:
    """Per multitask variant: mean difference to the study's own dedicated runs (the variant of
    studies.BASELINE_KIND, whatever its name) per task and metric
    (plus the paired per-seed differences' statistics), and delta-m, the average relative change
    over tasks in percent, signed so that positive means better (Maninis et al. 2019: an MSE that
    falls counts as a gain): `delta_m_pct` over every task by its primary metric (accuracy, or MSE
    for a reconstruction), `delta_m_<metric>_pct` over the tasks that have that metric. Only tasks
    with a dedicated run count (cifar100_binary trains dedicated models for T1..T5 alone), and
    delta-m leaves out random-label tasks: their test accuracy is chance by construction, so they
    get per-task differences but would only add noise to the average.

    Each task's `paired` entry is the paired test of its primary metric with the verdict
    (mtlbench.verdict), over seeds and test items (each seed's per-item scores of the primary metric),
    with the equivalence margin `margin` (accuracy-like metrics) or `mse_margin` times the dedicated
    mean (MSE); `delta_m` holds the seed statistics of the per-seed delta-m (seed k's
    signed relative change to dedicated seed k, over the tasks' dedicated means, so its mean is
    `delta_m_pct`)."""
    base = next((o for o in outcomes if o.kind == BASELINE_KIND), None)
    if base is None:
        return {}
    per_seed = {o.variant: {name: {s.seed: t.metrics for s in o.seeds for t in s.tasks if t.task == name}
                            for name in o.summary} for o in outcomes}
    return compare_seeds(per_seed, {o.variant: o.summary for o in outcomes}, base.variant,
                         frozenset(t.task for t in base.seeds[0].tasks if t.is_random), per_item_scores(outcomes),
                         margin, mse_margin)


def compare_seeds(per_seed: dict[str, dict[str, dict[int, dict[str, float]]]], summaries: dict, baseline: str,
                  random_tasks: frozenset[str] = frozenset(), per_item: dict | None = None,
                  margin: float = MARGIN, mse_margin: float = MSE_MARGIN) -> dict:
    """compare_to_dedicated from the numbers alone: `per_seed` {variant: {task: {seed: metrics}}},
    `summaries` its seed statistics (summarize), `baseline` the dedicated variant's name, `per_item`
    (optional) {variant: {task: {seed: per-item scores}}}: without it the test set is held fixed.
    Pairs are matched by seed number, so a seed is paired with the same seed wherever it trained."""
    base = summaries[baseline]
    comparisons = {}
    for variant, summary in summaries.items():
        shared = [task for task in summary if task in base]
        if variant == baseline or not shared:
            continue
        entry: dict = {task: {} for task in shared}
        relative: dict[str, dict[str, float]] = {}  # metric -> task -> signed relative change
        per_seed_relative: dict[str, list[float]] = {}  # task -> seed k's signed change / dedicated mean
        signed_pairs: dict[str, dict] = {}
        for task in shared:
            primary = primary_metric(base[task])
            for metric in (m for m in TEST_METRICS if m in summary[task] and m in base[task]):
                mine, ref = summary[task][metric]["mean"], base[task][metric]["mean"]
                paired = _paired_differences(per_seed[variant][task], per_seed[baseline][task], metric)
                entry[task][f"{metric}_diff"] = mine - ref
                entry[task][f"{metric}_paired_diff"] = seed_statistics(paired, difference_bounds(metric)) if paired else None
                sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
                if task not in random_tasks:
                    relative.setdefault(metric, {})[task] = sign * (mine - ref) / ref if ref else 0.0
                if metric == primary and paired:
                    items = _paired_items(per_item, variant, baseline, task, sign)
                    task_margin = equivalence_margin(metric, ref, margin, mse_margin)
                    signed_pairs[task] = {"metric": metric, **paired_comparison([sign * d for d in paired], metric,
                                                                                 items, task_margin)}
                    if task not in random_tasks:
                        per_seed_relative[task] = [sign * d / ref if ref else 0.0 for d in paired]
        for task, judged in judge(signed_pairs, random_tasks).items():
            entry[task]["paired"] = judged
        primary = [relative[primary_metric(base[task])][task] for task in shared if task not in random_tasks]
        if not primary:  # only random-label tasks in common: no delta-m
            comparisons[variant] = entry
            continue
        entry["delta_m_pct"] = 100.0 * float(np.mean(primary))
        for metric, by_task in relative.items():
            entry[f"delta_m_{metric}_pct"] = 100.0 * float(np.mean(list(by_task.values())))
        if per_seed_relative and len({len(v) for v in per_seed_relative.values()}) == 1:
            seed_delta_m = [100.0 * float(np.mean(values)) for values in zip(*per_seed_relative.values())]
            entry["delta_m"] = seed_statistics(seed_delta_m)
        comparisons[variant] = entry
    return comparisons


def equivalence_margin(metric: str, reference_mean: float, margin: float, mse_margin: float) -> float:
    """The TOST margin in `metric`'s units: `margin` for accuracy-like metrics, `mse_margin` times
    the reference's mean for MSE (whose scale depends on the images)."""
    return mse_margin * abs(reference_mean) if metric == "mse" else margin


def _paired_items(per_item: dict | None, variant: str, baseline: str, task: str, sign: float) -> np.ndarray | None:
    """[seeds, items] signed per-item differences of `variant` to `baseline` on `task`, over the
    seeds both have (None where either lacks per-item scores: the test is then over seeds only)."""
    if per_item is None:
        return None
    mine, theirs = per_item[variant][task], per_item[baseline][task]
    pairs = [(mine[s], theirs[s]) for s in sorted(mine) if s in theirs]
    if any(a is None or b is None for a, b in pairs):
        return None
    return np.stack([sign * (a - b) for a, b in pairs])


def _paired_differences(mine: dict[int, dict], theirs: dict[int, dict], metric: str) -> list[float]:
    """Seed k's value minus the baseline's seed k, over the seeds both have, in seed order."""
    return [mine[s][metric] - theirs[s][metric] for s in sorted(mine) if s in theirs]


UNITARY = "hps_sum"  # unitary scalarisation: the task losses summed, no weighting method


def compare_methods(variants: dict, methods: Sequence[str], reference: str, per_item: dict | None = None,
                    margin: float = MARGIN, mse_margin: float = MSE_MARGIN) -> dict[str, dict[str, dict]]:
    """Each of `methods` against one `reference` method of the same study, paired by seed on each
    task's primary metric (positive = the method better), from a details document's "variants"
    ({variant: {task: {metric: seed statistics with per-seed "values"}}}, seeds in one order) and,
    where given, `per_item` {variant: {task: {seed: per-item scores}}} (compare_to_dedicated's).
    For HPS the reference is `hps_sum`, unitary scalarisation: does any weighting beat plain
    summing (Kurin et al. 2022, Xin et al. 2022)? The family for Holm is every (method, task) pair
    of the study: the question is asked of all methods at once. Returns {method: {task: judged}}."""
    flat, keys = {}, []
    for method in methods:
        for task, by_metric in variants[method].items():
            if task not in variants[reference]:
                continue
            metric = primary_metric(variants[reference][task])
            mine, ref = by_metric[metric]["values"], variants[reference][task][metric]["values"]
            if len(mine) != len(ref):
                raise ValueError(f"{method} has {len(mine)} seeds of {task}, {reference} {len(ref)}: not paired")
            sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
            task_margin = equivalence_margin(metric, float(np.mean(ref)), margin, mse_margin)
            items = _paired_items(per_item, method, reference, task, sign)
            flat[f"{method}\0{task}"] = {"metric": metric, **paired_comparison(
                [sign * (a - b) for a, b in zip(mine, ref)], metric, items, task_margin)}
            keys.append((method, task))
    judged = judge(flat)
    out: dict[str, dict[str, dict]] = {}
    for method, task in keys:
        out.setdefault(method, {})[task] = judged[f"{method}\0{task}"]
    return out


def per_item_scores(outcomes: list[VariantOutcome]) -> dict:
    """{variant: {task: {seed: per-item scores of the primary metric}}} (TaskOutcome.item_scores)."""
    return {o.variant: {name: {s.seed: t.item_scores for s in o.seeds for t in s.tasks if t.task == name}
                        for name in o.summary} for o in outcomes}


def compare_to_unitary(outcomes: list[VariantOutcome], margin: float = MARGIN, mse_margin: float = MSE_MARGIN) -> dict:
    """Every other HPS method against `hps_sum` (compare_methods), over seeds and test items; empty
    where a study has no `hps_sum` variant or no other HPS method."""
    variants = {o.variant: o for o in outcomes}  # a variant trained under a multitask method (run.json says which)
    methods = [v for v, o in variants.items() if o.params.get("method") and v != UNITARY]
    if UNITARY not in variants or not methods:
        return {}
    variants = {o.variant: o.summary for o in outcomes}
    return compare_methods(variants, methods, UNITARY, per_item_scores(outcomes), margin, mse_margin)
