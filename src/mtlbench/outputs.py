"""The DVC-tracked outputs of the evaluate stage: the compact metric metrics/<run>.json, the full
record reports/studies/<run>.json, reports/<run>.md and the plot files (confusion pairs with
class names for DVC's `confusion` template, per-epoch curves with loss weights as CSV). All of them
are byte-identical across identical reruns (no wall times)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

from mtlbench.evaluate import (
    compare_to_unitary,
    CURVE_COLUMNS, VariantOutcome, compare_to_dedicated, curve_rows, grouped_mean_curves, markdown_report,
    seed_mean_curve,
    primary_metric, task_comparisons, weight_rows,
)
from mtlbench.config import AnalysisConfig
from mtlbench.fileio import atomic_dir, write_json, write_text
from mtlbench.runtime import cpu_model
from mtlbench.studies import Study

SCRATCH = Path(".mtlbench-tmp")  # temporary folders of plot outputs, outside the plot definitions


def _half_width(ci: list[float] | None) -> float | None:
    return None if ci is None else (ci[1] - ci[0]) / 2


def shown_in(headline: Sequence[str] | None):
    """Whether a task is shown one by one: every task, or the study's headline tasks."""
    return (lambda task: True) if headline is None else (lambda task: task in headline)


def metrics_document(details: dict) -> dict:
    """The compact DVC metric (metrics/<run>.json), narrow enough for `dvc exp show`, cut from the
    study's details (details_document): per variant and task the primary test metric's mean and
    the half-width of its 95% CI (`<metric>_ci`), and per multitask variant (`<variant>_vs_dedicated`)
    each task's paired gain (positive = better) with its CI half-width (over seeds and test items)
    and Holm-adjusted p, and
    delta-m (%) with its CI half-width."""
    shown = shown_in(details["headline"])
    document: dict = {}
    for variant, summary in details["variants"].items():
        document[variant] = {}
        for task, by_metric in summary.items():
            if shown(task):
                metric = primary_metric(by_metric)
                s = by_metric[metric]
                document[variant][task] = {metric: s["mean"], f"{metric}_ci": _half_width(s["ci95"])}
    for variant, entry in details["comparisons"].items():
        compact: dict = {}
        for task, diffs in task_comparisons(entry).items():
            if "paired" in diffs and shown(task):
                c = diffs["paired"]
                compact[task] = {"gain": c["mean"], "gain_ci": _half_width((c.get("crossed") or c)["ci95"]),
                                 "p": c["p_holm"]}
        if "delta_m" in entry:
            compact["delta_m_pct"] = entry["delta_m"]["mean"]
            compact["delta_m_ci"] = _half_width(entry["delta_m"]["ci95"])
        document[f"{variant}_vs_dedicated"] = compact
    return document


def details_document(study: Study, outcomes: list[VariantOutcome], context: dict | None = None,
                     analysis: AnalysisConfig = AnalysisConfig(), plan: dict | None = None,
                     run: str | None = None) -> dict:
    """Everything evaluation knows of a study, for the summary stage and readers (not a DVC metric):
    "variants" {variant: {task: {metric: seed statistics}}}, "comparisons" (compare_to_dedicated, with
    the paired verdicts), "against_unitary" (each HPS method against `hps_sum`, compare_to_unitary;
    empty without one), "analysis" (the equivalence margins they used and the plan status:
    confirmatory or exploratory, evaluate/plans.py), "methods" {variant: kind, architecture and parameter budget} and "curves"
    {variant: {task: {seed: per-epoch rows}}} (of the headline tasks, where a study names them)."""
    methods = {}
    for o in outcomes:  # the budget as the variant's kind counts it (run.json's kind.budget)
        methods[o.variant] = {"kind": o.kind, "architecture": o.params.get("architecture"), "params": o.budget,
                              "tasks": list(o.summary),
                              **({"method": o.params["method"]} if o.params.get("method") else {})}
    shown = shown_in(study.headline)
    curves: dict = {o.variant: {} for o in outcomes}
    for o in outcomes:
        for seed in o.seeds:
            for t in filter(lambda t: shown(t.task), seed.tasks):
                curves[o.variant].setdefault(t.task, {})[str(seed.seed)] = curve_rows(t.history, t.task)
    produced_on = {"device": outcomes[0].params.get("device"), "torch": outcomes[0].params.get("torch"),
                   "cpu": cpu_model(), "seeds": len(outcomes[0].seeds),
                   # how it was made, for the summary's provenance block
                   "protocol": outcomes[0].params.get("protocol"), "max_epochs": outcomes[0].params.get("max_epochs"),
                   "train_limit": (context or {}).get("train_limit"), "train_sample": (context or {}).get("train_sample"),
                   "epoch_cap": (context or {}).get("max_epochs"),
                   "numerics": (context or {}).get("numerics")}
    return {"study": study.name, "run": run or study.name, "produced_on": produced_on,
            "headline": None if study.headline is None else list(study.headline),
            "variants": {o.variant: o.summary for o in outcomes},
            "analysis": {"margin": analysis.margin, "mse_margin": analysis.mse_margin,
                         "plan": plan or {"status": "exploratory", "plan": None, "why": "no analysis plan"}},
            "comparisons": compare_to_dedicated(outcomes, analysis.margin, analysis.mse_margin),
            "against_unitary": compare_to_unitary(outcomes, analysis.margin, analysis.mse_margin),
            "methods": methods, "curves": curves}


OVERLAID = ("val_loss", "val_accuracy")  # one plot each, in plots/<metric>/<run>/: a metric per axis


def overlay_curves(details: dict, baseline: str | None) -> dict[str, dict[str, list[dict]]]:
    """`dvc plots show`'s comparison: per validation metric {file name: rows}, one file per multitask
    variant and task, `<task>__<variant>.json`, rows {"epoch", "dedicated", "multitask"}: the seeds'
    mean curve of the baseline and of the variant. Each mean ends where that variant's shortest seed
    ended (figures' rule); after it the row has no value for it (JSON, not a blank CSV cell, which
    DVC's plots would draw as 0), so the line stops there."""
    curves = details["curves"]
    files: dict[str, dict[str, list[dict]]] = {}
    for variant, by_task in curves.items():
        if variant == baseline or baseline not in curves:
            continue
        for task, by_seed in by_task.items():
            if task not in curves[baseline]:
                continue
            for metric in (m for m in OVERLAID if m in next(iter(by_seed.values()))[0]):
                columns = {"dedicated": seed_mean_curve(curves[baseline][task], metric),
                           "multitask": seed_mean_curve(by_seed, metric)}
                epochs = sorted({e for got, _ in columns.values() for e in got})
                known = {name: dict(zip(*curve)) for name, curve in columns.items()}
                files.setdefault(metric, {})[f"{task}__{variant}.json"] = [
                    {"epoch": e, **{name: by[e] for name, by in known.items() if e in by}} for e in epochs]
    return files


def _csv(rows: list[dict], columns: Sequence[str] = CURVE_COLUMNS) -> str:
    """Rows as CSV with the given header (a reconstruction's curves have no accuracy columns)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def data_warnings(context: dict) -> list[str]:
    """One warning per dataset whose files were not the official ones (data.verify: false)."""
    return [f"{name}: trained and tested on files that are not the official ones (data.verify was false; their "
            f"checksums are in data/prepared/{name}.json): these numbers are not comparable with the reference"
            for name, d in sorted((context.get("data") or {}).items()) if d and not d.get("matches", True)]


def affinity_section(affinity: dict) -> str:
    """The run's affinity signals in the report: the means over seeds, per pair (mtlbench.affinity)."""
    seeds = list(affinity["seeds"].values())
    mean = lambda signal, pair: sum(s[signal][pair] for s in seeds) / len(seeds)  # noqa: E731
    rows = [f"| gradient cosine | {pair} | {mean('cosine', pair):+.4f} |" for pair in seeds[0]["cosine"]]
    rows += [f"| lookahead | {pair} | {mean('lookahead', pair):+.4f} |" for pair in seeds[0]["lookahead"]]
    return "\n".join([
        "", "## Task affinity early in training", "",
        f"Measured on the shared trunk over {affinity['window']}, mean of {len(seeds)} seeds (each on its own "
        "rows), before any test result: the cosine between two tasks' gradients, and the lookahead affinity "
        "Z(i->j) of Fifty et al. 2021 (positive: a step for task i lowers task j's loss; per unit learning rate). "
        "src/mtlbench/affinity.py says how.", "",
        "| signal | tasks | mean |", "|---|---|---|", *rows, ""])


def write_study_outputs(study_def: Study, outcomes: list[VariantOutcome], root: Path,
                        warnings: Sequence[str] = (), context: dict | None = None,
                        analysis: AnalysisConfig = AnalysisConfig(), plan: dict | None = None,
                        run: str | None = None, affinity: dict | None = None) -> tuple[str, dict]:
    """Write every evaluate-stage output of the run `run` (default: the study's own name) of `study`
    under `root`; returns the markdown report and the details document (the MLflow figures are drawn
    from it).
    Confusion and curve plots cover the headline tasks (all when None); variants with several
    tasks also get their average curves over real and random tasks (`<variant>__mean_real__...`);
    a task whose loss weight changes per epoch (HPS schemes) has it as a `weight` column.
    `affinity`: the run's affinity stage output (reports/affinity/<run>.json), kept in the details."""
    study, headline = run or study_def.name, study_def.headline
    shown = shown_in(headline)
    details = {**details_document(study_def, outcomes, context, analysis, plan, study),
               **({"warnings": list(warnings)} if warnings else {}),
               **({"affinity": affinity} if affinity and affinity.get("measured") else {})}
    metrics = metrics_document(details)
    # the DVC metric stays narrow: a flag only where the data were not the official files (the words are in the report)
    write_json(root / "metrics" / f"{study}.json", {**metrics, **({"official_data": False} if warnings else {})})
    write_json(root / "reports" / "studies" / f"{study}.json", details)
    report_md = markdown_report(study, outcomes, headline, details["comparisons"], details["analysis"]["plan"])
    if warnings:  # first thing a reader sees, under the title
        title, rest = report_md.split("\n", 1)
        report_md = "\n".join([title, "", *(f"> **Warning**: {w}" for w in warnings), rest])
    if "affinity" in details:
        report_md += affinity_section(details["affinity"])
    write_text(root / "reports" / f"{study}.md", report_md)
    with atomic_dir(root / "plots" / "confusion" / study, scratch=root / SCRATCH) as folder:
        for o in outcomes:
            first = o.seeds[0]  # every seed's matrix is in MLflow and the report; DVC shows the first
            for t in (t for t in first.tasks if shown(t.task) and t.is_classification):
                names = t.class_names
                pairs = [{"actual": names[a], "predicted": names[p]} for a, p in zip(t.y_true.tolist(), t.y_pred.tolist())]
                write_text(folder / f"{o.variant}__{t.task}__seed{first.seed}.json", json.dumps(pairs, separators=(",", ":")))
    with atomic_dir(root / "plots" / "curves" / study, scratch=root / SCRATCH) as folder:
        for o in outcomes:
            for s in o.seeds:
                for t in filter(lambda t: shown(t.task), s.tasks):
                    rows = curve_rows(t.history, t.task)
                    weights = {r["epoch"]: r["weight"] for r in weight_rows(t.history, t.task)}
                    if weights:
                        rows = [{**r, "weight": weights[r["epoch"]]} for r in rows]
                    write_text(folder / f"{o.variant}__{t.task}__seed{s.seed}.csv", _csv(rows, list(rows[0])))
                for group, rows in grouped_mean_curves(o, s).items():
                    write_text(folder / f"{o.variant}__mean_{group}__seed{s.seed}.csv", _csv(rows))
    overlays = overlay_curves(details, study_def.baseline_variant)
    for metric in OVERLAID:  # each folder written, also empty: DVC declares both
        with atomic_dir(root / "plots" / metric / study, scratch=root / SCRATCH) as folder:
            for name, rows in overlays.get(metric, {}).items():
                write_text(folder / name, json.dumps(rows))
    return report_md, details
