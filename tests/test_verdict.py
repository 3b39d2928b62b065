"""Paired statistics and verdicts, against scipy and hand-worked cases."""

import itertools

import numpy as np
import pytest
from scipy import stats

from mtlbench.verdict import (
    BETTER, NO_DIFFERENCE, NO_TEST, RANDOM, WORSE, holm, judge, minimum_detectable, paired_comparison, paired_t_p,
    sign_flip_p, t_test_power, verdict_text,
)


@pytest.mark.parametrize("mine, theirs", [
    ([0.90, 0.92, 0.91], [0.88, 0.90, 0.91]),
    ([0.5, 0.7], [0.4, 0.65]),  # n=2
    ([0.81, 0.83, 0.80, 0.85, 0.84], [0.80, 0.84, 0.80, 0.82, 0.86]),  # a tie (0.80 - 0.80) among them
])
def test_paired_t_is_scipys_ttest_rel(mine, theirs):
    d = np.subtract(mine, theirs)
    assert paired_t_p(d) == pytest.approx(stats.ttest_rel(mine, theirs).pvalue, rel=1e-12)
    c = paired_comparison(d)
    half = stats.t.ppf(0.975, len(d) - 1) * np.std(d, ddof=1) / np.sqrt(len(d))
    assert c["ci95"] == pytest.approx([d.mean() - half, d.mean() + half])


def _enumerated_sign_flip(d):
    observed = abs(np.mean(d))
    flips = [abs(np.mean(np.multiply(signs, d))) for signs in itertools.product((1, -1), repeat=len(d))]
    return sum(f >= observed - 1e-12 for f in flips) / len(flips)


@pytest.mark.parametrize("d", [[0.02, 0.01, 0.03], [0.01, -0.01], [0.02, 0.0, 0.01, -0.005, 0.03, 0.01],
                               [0.01, 0.01, 0.01, 0.01]])
def test_sign_flip_is_the_enumerated_permutation_test(d):
    assert sign_flip_p(d) == pytest.approx(_enumerated_sign_flip(d))


def test_sign_flip_hand_cases():
    assert sign_flip_p([0.01, 0.02, 0.03]) == 0.25  # all positive: only itself and its mirror are as extreme
    assert sign_flip_p([0.01, -0.01]) == 1.0  # mean 0: every pattern is as extreme
    assert sign_flip_p([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == 2 / 64  # the floor at n=6 is below 0.05


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 -> 3 x 0.01 = 0.03, 2 x 0.02 = 0.04, 1 x 0.04 = 0.04 (monotone)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([0.6, 0.6]) == [1.0, 1.0]


@pytest.mark.parametrize("n", [2, 3, 4, 6, 10, 30])
def test_minimum_detectable_has_exactly_80_percent_power_as_statsmodels_solves_it(n):
    power = pytest.importorskip("statsmodels.stats.power")
    effect = power.TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8, alternative="two-sided")
    assert minimum_detectable(0.01, n) == pytest.approx(effect * 0.01, rel=1e-6)
    assert t_test_power(minimum_detectable(1.0, n), n) == pytest.approx(0.8, abs=1e-9)


def test_the_textbook_approximation_falls_short_of_80_percent_at_three_seeds():
    # (t_.975,2 + t_.8,2) / sqrt(3) SDs: the approximation the verdicts used before, 0.77 power
    approx = (stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)) / np.sqrt(3)
    assert t_test_power(approx, 3) == pytest.approx(0.77, abs=0.005)
    assert minimum_detectable(1.0, 3) > approx


def test_accuracy_intervals_stay_inside_the_metric_s_range():
    from mtlbench.evaluate.comparisons import seed_statistics

    # the committed baseline's rsn2 digits seeds: the plain t-interval is [0.806, 1.079]
    s = seed_statistics([0.9742, 0.9744, 0.8789], (0.0, 1.0))
    assert s["ci95"][1] == 1.0 and s["ci95"][0] == pytest.approx(0.806, abs=1e-3)
    assert seed_statistics([0.9742, 0.9744, 0.8789])["ci95"][1] == pytest.approx(1.079, abs=1e-3)
    c = paired_comparison([-0.9, 0.9, 0.95], "accuracy")  # a difference of accuracies lies in [-1, 1]
    assert c["ci95"][0] == -1.0 and c["ci95"][1] == 1.0


def test_a_detectable_difference_beyond_the_range_is_said_in_words():
    text = verdict_text("digits", "rsn2", "accuracy", judge({"digits": paired_comparison([-0.5, 0.4], "accuracy")})["digits"])
    assert "no difference within the metric's range is detectable with n = 2 seeds" in text and " pt)" not in text
    text = verdict_text("digits", "rsn2", "accuracy", judge({"digits": paired_comparison([0.01, -0.005, 0.002], "accuracy")})["digits"])
    assert "smallest detectable" in text


def test_ties_and_constant_differences():
    assert paired_t_p([0.0, 0.0, 0.0]) == 1.0
    assert paired_t_p([0.01, 0.01, 0.01]) == 0.0  # every seed gained the same: no spread
    zero = paired_comparison([0.0, 0.0, 0.0])
    assert zero["sd"] == 0.0 and zero["min_detectable"] == 0.0


def test_verdicts_are_holm_adjusted_across_real_tasks():
    comparisons = {
        "a": paired_comparison([0.030, 0.031, 0.029, 0.030, 0.032]),  # clearly better
        "b": paired_comparison([-0.020, -0.021, -0.019, -0.022, -0.020]),  # clearly worse
        "c": paired_comparison([0.01, -0.02, 0.015, -0.01, 0.0]),
        "r": paired_comparison([0.3, 0.2, 0.25, 0.3, 0.2]),  # random labels: no verdict
    }
    judged = judge(comparisons, frozenset({"r"}))
    assert [judged[t]["verdict"] for t in "abcr"] == [BETTER, WORSE, NO_DIFFERENCE, RANDOM]
    raw = [comparisons[t]["p_t"] for t in "abc"]
    assert [judged[t]["p_holm"] for t in "abc"] == pytest.approx(holm(raw))
    assert judged["r"]["p_holm"] is None


def test_one_seed_gets_no_test():
    judged = judge({"t": paired_comparison([0.01])})
    assert judged["t"]["verdict"] == NO_TEST and judged["t"]["p_holm"] is None
    assert verdict_text("t", "rsn2", "accuracy", judged["t"]) == \
        "t: rsn2 +1.00 pt accuracy, n=1: no test possible (one seed; run more seeds)"


def test_verdict_wording():
    c = judge({"fashion": paired_comparison([0.0053 + e for e in (-0.004, 0.0, 0.004)])})["fashion"]
    text = verdict_text("fashion", "rsn2", "accuracy", c)
    low, high = c["ci95"]
    assert text.startswith(f"fashion: rsn2 +0.53 pt accuracy, 95% CI [{100 * low:+.2f} pt, {100 * high:+.2f} pt], "
                           "n=3: no detectable difference (Holm p=")
    assert "sign-flip p=0.25 (its floor at n=3)" in text and "smallest detectable" in text
    mse = judge({"recon": paired_comparison([0.002, 0.0021, 0.0019])})["recon"]
    assert verdict_text("recon", "hps", "mse", mse).startswith("recon: hps +0.002 mse") and mse["verdict"] == BETTER


@pytest.mark.parametrize("sd, target", [(0.005, 0.005), (0.01, 0.005), (0.002, 0.005), (0.0237, 0.005)])
def test_seeds_needed_is_statsmodels_sample_size_rounded_up_and_at_least_six(sd, target):
    from mtlbench.verdict import seeds_needed

    power = pytest.importorskip("statsmodels.stats.power")
    n = power.TTestPower().solve_power(effect_size=target / sd, alpha=0.05, power=0.8, alternative="two-sided")
    assert seeds_needed(sd, target) == max(6, int(np.ceil(n)))


def test_the_power_table_reads_a_details_file(tmp_path, capsys):
    from mtlbench.fileio import write_json
    from mtlbench.power import main as power_main

    comparison = judge({"t": paired_comparison([0.004, 0.006, 0.005], "accuracy")})["t"]
    write_json(tmp_path / "d.json", {"study": "s", "produced_on": {"protocol": "modern"},
                                     "comparisons": {"mt": {"t": {"paired": {**comparison, "metric": "accuracy"}}}}})
    assert power_main([str(tmp_path / "d.json"), "--target", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "| s | modern | mt | t | 3 | 0.10 pt |" in out and out.rstrip().endswith("| 6 |")
