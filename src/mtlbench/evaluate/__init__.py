"""Evaluation, by concern: per-run metrics of test predictions (metrics.py), the train stage's
results read back as outcomes (results.py), seed statistics and the comparisons with dedicated
models (comparisons.py), and the study's markdown report (rendering.py). Pure functions of the
saved predictions; what other modules use is importable from here."""

from mtlbench.evaluate.comparisons import (
    SUMMARY_METRICS, UNITARY, compare_methods, compare_seeds, compare_to_dedicated, compare_to_unitary, seed_statistics,
    summarize, task_comparisons,
)
from mtlbench.evaluate.metrics import (
    LOWER_IS_BETTER, TEST_METRICS, classification_metrics, confusion, format_confusion, primary_metric,
    reconstruction_metrics, report, report_data,
)
from mtlbench.evaluate.rendering import (
    comparison_table, delta_m_text, markdown_report, statistics_table, variant_table, verdict_lines,
)
from mtlbench.evaluate.results import (
    CURVE_COLUMNS, FIT_RECORDS, JOINT_RECORDS, VOLATILE_RECORDS, SeedOutcome, TaskOutcome, VariantOutcome,
    curve_rows, evaluate_study, fit_records, grouped_mean_curves, mean_curves, model_tasks, results_hash,
    seed_mean_curve, task_groups, weight_rows,
)

__all__ = [
    "CURVE_COLUMNS", "FIT_RECORDS", "JOINT_RECORDS", "LOWER_IS_BETTER", "SUMMARY_METRICS", "TEST_METRICS", "UNITARY",
    "VOLATILE_RECORDS", "SeedOutcome", "TaskOutcome", "VariantOutcome", "classification_metrics",
    "compare_methods", "compare_seeds", "compare_to_dedicated", "compare_to_unitary", "comparison_table", "confusion", "curve_rows", "delta_m_text", "evaluate_study",
    "fit_records", "format_confusion", "grouped_mean_curves", "markdown_report", "mean_curves", "model_tasks",
    "primary_metric", "reconstruction_metrics", "report", "report_data", "results_hash", "seed_statistics",
    "seed_mean_curve", "statistics_table", "summarize", "task_comparisons", "task_groups", "variant_table",
    "verdict_lines", "weight_rows",
]
