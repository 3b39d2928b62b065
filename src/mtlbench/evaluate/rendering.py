"""The study's markdown report: tables of seed statistics, the comparison with dedicated models
and the verdicts."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from mtlbench.verdict import format_interval, verdict_text
from mtlbench.evaluate.metrics import TEST_METRICS, format_confusion, primary_metric
from mtlbench.evaluate.results import VariantOutcome, task_groups
from mtlbench.evaluate.comparisons import compare_to_dedicated, task_comparisons


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


def markdown_report(study: str, outcomes: list["VariantOutcome"], headline: Sequence[str] | None = None,
                    comparisons: dict | None = None, plan: dict | None = None) -> str:
    """The variants side by side, each run's confusion matrix and classification report (of the
    headline tasks when a study names them; every task is in metrics/ and MLflow), then the seed
    statistics."""
    rows = headline if headline is not None else list(dict.fromkeys(
        t.task for o in outcomes for t in o.seeds[0].tasks))
    comparisons = compare_to_dedicated(outcomes) if comparisons is None else comparisons
    parts = [f"# {study}", "", "## Test results, mean +- SD over seeds", "",
             "Accuracy (classification) or MSE (reconstruction, lower is better).", "",
             variant_table(outcomes, rows), ""]
    if comparisons:
        parts += ["## Verdict: multitask against dedicated, paired by seed", "",
                  *([f"**{plan['status'].capitalize()}**: {plan['why']}.", ""] if plan else []),
                  *(f"- {line}" for line in verdict_lines(comparisons, headline)), "",
                  "Paired by seed and test item: the t-test counts the seeds and the test items as samples "
                  "(crossed random effects), Holm-adjusted across the real tasks; equivalence by TOST within the "
                  "margin; the exact sign-flip test over seeds beside it (docs/verdicts.md).", ""]
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
    lines = ["| variant | task | metric | paired diff (mean) | 95% CI, seeds | 95% CI, seeds and items | n | p (Holm) "
             "| p (TOST, Holm) | p (sign-flip) | smallest detectable | verdict |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for variant, entry in comparisons.items():
        for task, diffs in task_comparisons(entry).items():
            c = diffs.get("paired")
            if c is None or (headline is not None and task not in headline):
                continue
            ci = "-" if c["ci95"] is None else f"[{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}]"
            crossed = c.get("crossed")
            both = "-" if not crossed else f"[{crossed['ci95'][0]:+.4f}, {crossed['ci95'][1]:+.4f}]"
            lines.append(f"| {variant} | {task} | {c['metric']} | {c['mean']:+.4f} | {ci} | {both} | {c['n']} "
                         f"| {_fmt(c['p_holm'], 3)} | {_fmt(c.get('p_tost_holm'), 3)} | {_fmt(c['p_sign_flip'], 3)} "
                         f"| {_fmt(c['min_detectable'])} | {c['verdict']} |")
        if "delta_m" in entry:
            s = entry["delta_m"]
            lines.append(f"| {variant} | delta-m | primary metrics | {s['mean']:+.2f}% | {format_interval(s['ci95'], unit='%')} "
                         f"| {s['n']} | | | | |")
        for key, value in entry.items():  # delta-m over the tasks that have each metric (means only)
            if key.startswith("delta_m_") and key.endswith("_pct") and key != "delta_m_pct":
                metric = key.removeprefix("delta_m_").removesuffix("_pct")
                lines.append(f"| {variant} | delta-m {metric} | {metric} | {value:+.2f}% | | | | | | |")
    return "\n".join(lines)


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
