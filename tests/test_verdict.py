"""Paired statistics and verdicts, against scipy and hand-worked cases."""

import itertools

import numpy as np
import pytest
from scipy import stats

from mtlbench import verdict
from mtlbench.verdict import (
    BETTER, EQUIVALENT, NO_TEST, RANDOM, UNDECIDED, WORSE, crossed_test, holm, judge, minimum_detectable,
    paired_comparison, paired_t_p, sign_flip_p, t_test_power, tost_p, verdict_text,
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
                               [0.01, 0.01, 0.01, 0.01], [0.0, 0.0, 0.0],
                               list(np.random.default_rng(3).normal(0.002, 0.01, 13)),
                               list(np.round(np.random.default_rng(4).normal(0, 0.01, 14), 3))])  # many ties
def test_sign_flip_is_the_enumerated_permutation_test(d):
    p, se = sign_flip_p(d)
    assert p == pytest.approx(_enumerated_sign_flip(d), abs=1e-15) and se == 0.0


def test_sign_flip_hand_cases():
    assert sign_flip_p([0.01, 0.02, 0.03])[0] == 0.25  # all positive: only itself and its mirror are as extreme
    assert sign_flip_p([0.01, -0.01])[0] == 1.0  # mean 0: every pattern is as extreme
    assert sign_flip_p([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])[0] == 2 / 64  # the floor at n=6 is below 0.05
    assert sign_flip_p(list(range(1, 41)))[0] == 2 / 2**40  # exact at 40 seeds: the floor, no Monte Carlo


def test_sign_flip_monte_carlo_agrees_with_the_exact_count_within_its_standard_error(monkeypatch):
    d = np.random.default_rng(5).normal(0.003, 0.01, 22)
    exact, _ = sign_flip_p(d)
    monkeypatch.setattr(verdict, "EXACT_SIGN_FLIP", 10)
    p, se = sign_flip_p(d)
    assert se > 0 and abs(p - exact) < 4 * se
    assert sign_flip_p(d) == (p, se)  # seeded: the same answer every time


# --- seeds and test items: the crossed random-effects test -----------------------------------------

def test_crossed_test_without_item_variation_is_the_paired_t_test():
    # each seed's difference the same on every item: the items add nothing, the t-test over seeds remains
    d = np.array([0.01, -0.004, 0.02, 0.006])
    c = crossed_test(np.repeat(d[:, None], 500, axis=1))
    assert c["se_item"] == 0.0 and c["df"] == pytest.approx(3)
    assert c["se"] == pytest.approx(np.std(d, ddof=1) / 2, rel=1e-12)
    assert c["p"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue, rel=1e-9)


def test_crossed_test_components_are_the_two_way_anova_expectations():
    """Under D = mu + a_seed + b_item + e the estimator of Var(mean) is unbiased: its average over
    many simulated studies matches the true variance s_a^2/n + s_b^2/m + s_e^2/(nm), and the 95%
    interval covers mu about 95% of the time (a test of the estimator, not of its code's reading)."""
    rng = np.random.default_rng(0)
    n, m, s_a, s_b, s_e, mu = 6, 400, 0.004, 0.3, 0.3, 0.01  # the items carry most of the variance
    truth = s_a**2 / n + s_b**2 / m + s_e**2 / (n * m)
    estimates, covered, seed_only_covered = [], 0, 0
    for _ in range(2000):
        d = mu + rng.normal(0, s_a, (n, 1)) + rng.normal(0, s_b, (1, m)) + rng.normal(0, s_e, (n, m))
        c = crossed_test(d)
        estimates.append(c["se"] ** 2)
        covered += c["ci95"][0] <= mu <= c["ci95"][1]
        low, high = paired_comparison(d.mean(1), "accuracy")["ci95"]
        seed_only_covered += low <= mu <= high
    assert np.mean(estimates) == pytest.approx(truth, rel=0.03)  # MC error of the mean ~1.5% here
    assert 0.935 <= covered / 2000 <= 0.965
    assert seed_only_covered / 2000 < 0.8  # the seed-only interval misses the items' share


def test_item_level_uncertainty_widens_a_seed_only_win():
    """Two models that differ on a handful of items the same way in every seed: the seed-only test
    calls it significant, the crossed test sees that a new test set could well reverse it."""
    rng = np.random.default_rng(1)
    items = np.zeros((10, 3000))
    items[:, :12] = 1.0  # multitask right where dedicated is wrong on 12 items
    items[:, 12:20] = -1.0  # and the reverse on 8
    items += rng.choice([0.0, 1.0, -1.0], p=[0.98, 0.01, 0.01], size=items.shape)  # seed noise
    c = paired_comparison(items.mean(1), "accuracy", items)
    assert c["p_t"] < 0.05 and c["crossed"]["p"] > 0.05
    assert c["crossed"]["se_item"] > c["crossed"]["se_seed"]


def test_per_item_differences_must_average_to_the_seed_differences():
    items = np.random.default_rng(2).choice([0.0, 1.0], size=(3, 50))
    with pytest.raises(ValueError, match="not the same comparison"):
        paired_comparison(items.mean(1) + 0.01, "accuracy", items)


# --- equivalence -----------------------------------------------------------------------------------

def test_tost_is_the_ninety_percent_interval_inside_the_margin():
    d = np.array([0.001, -0.002, 0.0015, 0.0, 0.0005, -0.001])
    se, df = np.std(d, ddof=1) / np.sqrt(6), 5
    half90 = stats.t.ppf(0.95, df) * se
    for margin in (0.5 * half90 + abs(d.mean()), abs(d.mean()) + half90 * 1.0001, abs(d.mean()) + 2 * half90):
        p = tost_p(d.mean(), se, df, margin)
        inside = abs(d.mean()) + half90 < margin
        assert (p < 0.05) == inside
    # the two one-sided t-tests of scipy, shifted by the margin
    margin = 0.004
    lower = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, margin, alternative="less").pvalue
    assert tost_p(d.mean(), se, df, margin) == pytest.approx(max(lower, upper), rel=1e-9)


def test_four_verdicts():
    tight = [0.0002, -0.0001, 0.0001, 0.0, -0.0002, 0.0001]
    judged = judge({
        "better": paired_comparison([0.030, 0.031, 0.029, 0.030, 0.032]),
        "equivalent": paired_comparison(tight),
        "undecided": paired_comparison([0.02, -0.03, 0.015, -0.01, 0.0]),
    })
    assert [judged[t]["verdict"] for t in ("better", "equivalent", "undecided")] == [BETTER, EQUIVALENT, UNDECIDED]
    wide = judge({"t": paired_comparison(tight, margin=0.0001)})["t"]  # a margin below the noise: undecided
    assert wide["verdict"] == UNDECIDED


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
    assert [judged[t]["verdict"] for t in "abcr"] == [BETTER, WORSE, UNDECIDED, RANDOM]
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
    assert text.startswith(f"fashion: rsn2 +0.53 pt accuracy, 95% CI [{100 * low:+.2f} pt, {100 * high:+.2f} pt] "
                           "over seeds (test set held fixed), n=3: undecided (Holm p=")
    assert "equivalence within +-0.50 pt: Holm p=" in text
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
    assert "| s | modern | mt | t | 3 | 0.10 pt | 0.21 pt | 0.05 |" in out and out.rstrip().endswith("| 6 |")


def test_power_plans_the_adjusted_test_with_an_upper_bound_of_the_pilot_sd():
    from scipy import stats as st

    from mtlbench.power import power_rows
    from mtlbench.verdict import sd_upper_bound, seeds_needed

    power = pytest.importorskip("statsmodels.stats.power")
    n = power.TTestPower().solve_power(effect_size=0.5, alpha=0.025, power=0.8, alternative="two-sided")
    assert seeds_needed(0.01, 0.005, alpha=0.025) == int(np.ceil(n))  # Holm's first step over two tasks
    # the 80% one-sided upper bound: P(chi2_{n-1} <= (n-1) s^2 / sigma^2) at sigma = the bound is 0.2
    bound = sd_upper_bound(0.01, 7)
    assert st.chi2.cdf(6 * 0.01**2 / bound**2, 6) == pytest.approx(0.2, abs=1e-12)
    pairs = {t: {"paired": {**judge({t: paired_comparison(d, "accuracy")})[t], "metric": "accuracy"}}
             for t, d in (("a", [0.01, 0.0, 0.02, 0.005]), ("b", [0.0, -0.01, 0.01, 0.004]))}
    rows = power_rows({"study": "s", "comparisons": {"mt": pairs}}, target=0.005)
    assert [r["alpha"] for r in rows] == [0.025, 0.025]
    assert rows[0]["seeds_needed"] == seeds_needed(sd_upper_bound(rows[0]["sd"], 4), 0.005, alpha=0.025)
    assert rows[0]["seeds_needed"] > seeds_needed(rows[0]["sd"], 0.005)  # the unadjusted point plan under-powers


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "abc", "100"])
def test_power_refuses_a_target_outside_its_range_in_one_line(tmp_path, capsys, bad):
    from mtlbench.power import main as power_main

    with pytest.raises(SystemExit) as stop:
        power_main([str(tmp_path / "d.json"), "--target", bad])
    assert stop.value.code == 2
    assert f"--target: expected a number above 0 and below 100, got '{bad}'" in capsys.readouterr().err
