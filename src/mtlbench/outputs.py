"""The DVC-tracked outputs of the evaluate stage: metrics/<study>.json, reports/<study>.md and the
plot files (confusion pairs of classification tasks for DVC's `confusion` template, per-epoch
curves and loss weights as CSV)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

from mtlbench.evaluate import (
    CURVE_COLUMNS, VariantOutcome, compare_to_dedicated, curve_rows, grouped_mean_curves, markdown_report, weight_rows,
)
from mtlbench.fileio import atomic_dir, write_json, write_text

def metrics_document(outcomes: list[VariantOutcome]) -> dict:
    """{model: {task: {metric: {mean, sd, n, min, max, ci95, values}}}}, plus "comparisons":
    {variant: {task: {metric_diff, metric_paired_diff}, delta_m_pct, delta_m_<metric>_pct}} when a
    study has multitask variants."""
    document = {o.variant: o.summary for o in outcomes}
    comparisons = compare_to_dedicated(outcomes)
    if comparisons:
        document["comparisons"] = comparisons
    return document


def _csv(rows: list[dict], columns: Sequence[str] = CURVE_COLUMNS) -> str:
    """Rows as CSV with the given header (a reconstruction's curves have no accuracy columns)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_study_outputs(study: str, outcomes: list[VariantOutcome], root: Path,
                        headline: Sequence[str] | None = None) -> str:
    """Write every evaluate-stage output of `study` under `root`; returns the markdown report.
    Confusion and curve plots cover the headline tasks (all when None); variants with several
    tasks also get their average curves over real and random tasks (`<variant>__mean_real__...`)."""
    shown = (lambda task: True) if headline is None else (lambda task: task in headline)
    write_json(root / "metrics" / f"{study}.json", metrics_document(outcomes))
    report_md = markdown_report(study, outcomes, headline)
    write_text(root / "reports" / f"{study}.md", report_md)
    with atomic_dir(root / "plots" / "confusion" / study) as folder:
        for o in outcomes:
            first = o.seeds[0]  # every seed's matrix is in MLflow and the report; DVC shows the first
            for t in (t for t in first.tasks if shown(t.task) and t.is_classification):
                pairs = [{"actual": int(a), "predicted": int(p)} for a, p in zip(t.y_true, t.y_pred)]
                write_text(folder / f"{o.variant}__{t.task}__seed{first.seed}.json", json.dumps(pairs, separators=(",", ":")))
    with atomic_dir(root / "plots" / "curves" / study) as folder:
        for o in outcomes:
            for s in o.seeds:
                for t in filter(lambda t: shown(t.task), s.tasks):
                    rows = curve_rows(t.history, t.task)
                    write_text(folder / f"{o.variant}__{t.task}__seed{s.seed}.csv", _csv(rows, list(rows[0])))
                for group, rows in grouped_mean_curves(o, s).items():
                    write_text(folder / f"{o.variant}__mean_{group}__seed{s.seed}.csv", _csv(rows))
    with atomic_dir(root / "plots" / "weights" / study) as folder:  # empty for studies without loss schemes
        for o in outcomes:
            for s in o.seeds:
                for t in filter(lambda t: shown(t.task), s.tasks):
                    rows = weight_rows(t.history, t.task)
                    if rows:
                        write_text(folder / f"{o.variant}__{t.task}__seed{s.seed}.csv", _csv(rows, ("epoch", "weight")))
    return report_md
