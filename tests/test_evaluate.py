"""Seed statistics, metrics and reports against numpy, scipy and sklearn on the same values."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import classification_report, f1_score

from mtlbench.evaluate import (classification_metrics, confusion, format_confusion, report, seed_statistics,
                               statistics_table, summarize)


def test_seed_statistics_match_numpy_and_scipy():
    values = [0.842, 0.84, 0.853]
    s = seed_statistics(values)
    assert s["mean"] == pytest.approx(np.mean(values)) and s["sd"] == pytest.approx(np.std(values, ddof=1))
    assert (s["n"], s["min"], s["max"], s["values"]) == (3, 0.84, 0.853, values)
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert s["ci95"] == pytest.approx([low, high])
    assert round(s["sd"], 4) == 0.0070  # reference/003 printed SD = 0.0070 for these values


def test_single_seed_has_no_sd_or_interval():
    s = seed_statistics([0.9])
    assert s["sd"] is None and s["ci95"] is None and s["n"] == 1


def test_classification_metrics_and_report_agree_with_sklearn():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    m = classification_metrics(y_true, y_pred, 5)  # class 4 absent: still counted in macro averages
    assert m["accuracy"] == np.mean(y_true == y_pred)
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=range(5), average="macro", zero_division=0))
    assert report(y_true, y_pred, 5) == classification_report(y_true, y_pred, labels=range(5), zero_division=0)
    matrix = confusion(y_true, y_pred, 5)
    assert matrix.shape == (5, 5) and matrix.sum() == 200 and matrix[4].sum() == 0
    assert format_confusion(matrix) == str(matrix)


def test_summarize_and_table():
    per_seed = {"dedicated": {"digits": {0: {"accuracy": 0.9, "macro_f1": 0.8}, 1: {"accuracy": 0.8, "macro_f1": 0.7}}}}
    summary = summarize(per_seed)
    assert summary["dedicated"]["digits"]["accuracy"]["values"] == [0.9, 0.8]
    assert "| dedicated | digits | accuracy | 0.8500 | 0.0707 | 2 |" in statistics_table(summary)
