"""Seed statistics, metrics and reports against numpy, scipy and sklearn on the same values."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import classification_report, confusion_matrix, f1_score

from mtlbench.evaluate import (classification_metrics, confusion, format_confusion, report, report_data, seed_statistics,
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
    assert np.array_equal(matrix, confusion_matrix(y_true, y_pred, labels=range(5)))
    assert format_confusion(matrix) == str(matrix)


@pytest.mark.parametrize("n_classes, seed", [(2, 0), (2, 1), (5, 2), (10, 3)])
def test_report_data_equals_sklearns_report_dict(n_classes, seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes - (n_classes > 2), 300)  # the last class absent from y_true (n > 2)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, n_classes, 300))
    if n_classes == 2 and seed == 1:
        y_pred = np.zeros_like(y_pred)  # class 1 never predicted: zero_division
    ours = report_data(confusion(y_true, y_pred, n_classes))
    theirs = classification_report(y_true, y_pred, labels=range(n_classes), output_dict=True, zero_division=0)
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        if isinstance(value, dict):
            assert ours[key] == pytest.approx(value, abs=1e-12), key
        else:
            assert ours[key] == pytest.approx(value, abs=1e-12)


def test_summarize_and_table():
    per_seed = {"dedicated": {"digits": {0: {"accuracy": 0.9, "macro_f1": 0.8}, 1: {"accuracy": 0.8, "macro_f1": 0.7}}}}
    summary = summarize(per_seed)
    assert summary["dedicated"]["digits"]["accuracy"]["values"] == [0.9, 0.8]
    assert "| dedicated | digits | accuracy | 0.8500 | 0.0707 | 2 |" in statistics_table(summary)


def test_mean_curves_stop_where_the_shortest_seed_stopped():
    from mtlbench.figures import _mean_curve

    rows = lambda values: [{"epoch": i + 1, "val_accuracy": v} for i, v in enumerate(values)]  # noqa: E731
    epochs, means = _mean_curve({"0": rows([0.5, 0.7, 0.8]), "1": rows([0.6, 0.8, 0.9, 0.1, 0.1])}, "val_accuracy")
    assert epochs == [1, 2, 3] and means == pytest.approx([0.55, 0.75, 0.85])
