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
    from mtlbench.evaluate import seed_mean_curve

    rows = lambda values: [{"epoch": i + 1, "val_accuracy": v} for i, v in enumerate(values)]  # noqa: E731
    epochs, means = seed_mean_curve({"0": rows([0.5, 0.7, 0.8]), "1": rows([0.6, 0.8, 0.9, 0.1, 0.1])}, "val_accuracy")
    assert epochs == [1, 2, 3] and means == pytest.approx([0.55, 0.75, 0.85])


def test_overlay_curves_put_each_validation_metric_of_dedicated_and_a_variant_in_one_file():
    """Seed means on a hand-computed case; each mean ends with its variant's shortest seed."""
    from mtlbench.outputs import overlay_curves

    def rows(*values):
        return [{"epoch": e, "train_loss": 0.0, "val_loss": v, "train_accuracy": 0.0, "val_accuracy": 1 - v}
                for e, v in enumerate(values, start=1)]

    details = {"curves": {"dedicated": {"a": {"0": rows(1.0, 0.8, 0.6), "1": rows(0.8, 0.6, 0.4)}},
                          "rsn2": {"a": {"0": rows(0.9, 0.7), "1": rows(0.7, 0.5, 0.3)}}}}
    files = overlay_curves(details, "dedicated")
    assert {m: set(f) for m, f in files.items()} == {"val_loss": {"a__rsn2.json"}, "val_accuracy": {"a__rsn2.json"}}
    loss = files["val_loss"]["a__rsn2.json"]
    assert [r["epoch"] for r in loss] == [1, 2, 3]
    assert [r["dedicated"] for r in loss] == pytest.approx([0.9, 0.7, 0.5])
    # the variant's mean ends with its shortest seed: no value after it (never a blank that plots as 0)
    assert [r["multitask"] for r in loss[:2]] == pytest.approx([0.8, 0.6]) and "multitask" not in loss[2]
    assert overlay_curves(details, None) == {} and overlay_curves({"curves": {"dedicated": details["curves"]["dedicated"]}}, "dedicated") == {}


def test_methods_against_a_reference_method_paired_by_seed_with_holm_over_every_pair():
    """Hand-computed: method a beats the reference by exactly 1 pt on every seed of t (t-test p = 0,
    a verdict), b differs by +1, -1, +3 pt on t (mean +1, SD 2, p = 0.47 before Holm)."""
    from mtlbench.evaluate import compare_methods
    from scipy import stats

    def acc(*values):
        return {"accuracy": {"mean": sum(values) / len(values), "values": list(values)}}

    variants = {"ref": {"t": acc(0.50, 0.60, 0.70), "u": acc(0.5, 0.5, 0.5)},
                "a": {"t": acc(0.51, 0.61, 0.71), "u": acc(0.5, 0.5, 0.5)},
                "b": {"t": acc(0.51, 0.59, 0.73), "u": acc(0.4, 0.5, 0.6)}}
    got = compare_methods(variants, ["a", "b"], "ref")
    assert got["a"]["t"]["mean"] == pytest.approx(0.01) and got["a"]["t"]["verdict"] == "better"
    b = got["b"]["t"]
    assert b["mean"] == pytest.approx(0.01) and b["sd"] == pytest.approx(0.02)
    p = stats.ttest_1samp([0.01, -0.01, 0.03], 0.0).pvalue
    assert b["p_t"] == pytest.approx(p)
    # Holm over the 4 pairs: a/t (p 0) first, then b/t and b/u, a/u (all equal: p 1)
    assert b["p_holm"] == pytest.approx(min(1.0, 3 * p)) and b["verdict"] == "undecided"
    assert got["a"]["u"]["verdict"] == "equivalent"  # identical on every seed: inside any margin
    variants["b"]["t"] = acc(0.5, 0.6)
    with pytest.raises(ValueError, match="b has 2 seeds of t, ref 3: not paired"):
        compare_methods(variants, ["b"], "ref")


def test_ours_against_the_printed_reference():
    """The reference prints 2 decimals: inside our CI widened by 0.5 pt and a CI of at most +-1 pt
    is reproduced; a wider CI cannot say; outside, beaten or below by the difference of the means."""
    from mtlbench.readme import against_reference

    def acc(mean, low, high):
        return {"accuracy": {"mean": mean, "ci95": [low, high]}}

    assert against_reference(acc(0.9749, 0.9685, 0.9813), 0.97) == "reproduced"
    assert against_reference(acc(0.9865, 0.9848, 0.9882), 0.97) == "beaten, +1.65 pt"
    assert against_reference(acc(0.8500, 0.8400, 0.8600), 0.87) == "below, -2.00 pt"
    assert against_reference(acc(0.9425, 0.8057, 1.0), 0.98) == "undecided (95% CI +-9.72 pt)"
    assert against_reference(acc(0.9760, 0.9740, 0.9780), 0.98) == "reproduced"  # 0.98 printed: 0.975-0.985
    assert against_reference(None, 0.97) == "" and against_reference(acc(0.9, 0.89, 0.91), None) == ""


def test_outcomes_without_per_item_results_are_compared_over_seeds_only():
    """An outcome read back without its predictions (no y_true/y_pred, no per-image MSE) has no
    item scores: the paired test falls back to seeds, and says so by having no crossed part."""
    from mtlbench.evaluate import TaskOutcome

    bare = TaskOutcome("t", {"accuracy": 0.9}, [], np.eye(2, dtype=int), ["a", "b"])
    assert bare.item_scores is None
    with_items = TaskOutcome("t", {"accuracy": 0.5}, [], np.eye(2, dtype=int), ["a", "b"],
                             y_true=np.array([0, 1, 1, 0]), y_pred=np.array([0, 1, 0, 1]))
    assert with_items.item_scores.tolist() == [1.0, 1.0, 0.0, 0.0]
