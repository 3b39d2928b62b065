"""Does a multitask variant beat the dedicated models on a task? A paired answer over seeds and
test items.

Seed k of a multitask variant and seed k of the dedicated models share the initial draw (RSN2's
matched init) and the data order, so each seed gives one paired difference d_k = multitask - dedicated
(signed so that positive is better: an MSE that falls counts as a gain). Over the n seeds:

- the mean difference with its 95% t-interval and the paired t-test over seeds (scipy's
  `ttest_rel` on the pairs is the one-sample t-test of the d_k): the test set held fixed;
- the same difference with the test items as a second source of uncertainty (`crossed_test`): each
  seed's difference is the mean of per-item differences D[k, i] over the m test items, and items are
  a sample too. The crossed random-effects model D = mu + a_k + b_i + e has
  Var(mean) = s_a^2 / n + s_b^2 / m + s_e^2 / (n m), estimated without bias by the two-way ANOVA
  mean squares, (MS_seed + MS_item - MS_resid) / (n m), with Satterthwaite's degrees of freedom. Its
  first and last terms are exactly the seed-only t-test's variance (MS_seed / (n m)); the item
  component (MS_item - MS_resid) / (n m) is what that test leaves out. The verdict uses this test
  where per-item results exist; each verdict line states both components;
- the exact two-sided sign-flip permutation test over seeds: under "no difference" each d_k is as
  likely positive as negative; p is the share of the 2^n sign patterns whose |mean| is at least the
  observed one, counted exactly (meet in the middle) up to EXACT_SIGN_FLIP seeds and by a seeded
  Monte Carlo with its standard error beyond. Its smallest possible p is 2 / 2^n (0.25 at n=3):
  below n=6 it can never reach 0.05, which the verdict text says;
- equivalence (TOST, two one-sided tests at ALPHA, i.e. the 90% interval inside +-margin): the
  margin is a run parameter (`analysis.margin`, 0.5 pt of accuracy by default; an MSE's is relative
  to the dedicated mean, `analysis.mse_margin`);
- four verdicts, each p Holm-adjusted within its family (one variant's real tasks; or the methods
  against the reference method): better / worse where the difference test's adjusted p < ALPHA,
  else equivalent where the TOST's adjusted p < ALPHA, else undecided;
- the smallest difference the seeds could detect: the true mean difference that a two-sided
  t-test at ALPHA would find with POWER at this n and the observed SD of the differences, from the
  exact noncentral-t power (the usual (t_{1-ALPHA/2} + t_{POWER}) sd / sqrt(n) approximation gives
  only 0.77 power at n = 3).

Random-label tasks (chance accuracy by construction) keep their differences but no verdict and no
place in the Holm family.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

ALPHA = 0.05
POWER = 0.8
BETTER, WORSE, EQUIVALENT, UNDECIDED, NO_TEST, RANDOM = (
    "better", "worse", "equivalent", "undecided", "no test possible", "random labels")
MARGIN, MSE_MARGIN = 0.005, 0.05  # analysis.margin (accuracy-like, absolute), analysis.mse_margin (relative)
EXACT_SIGN_FLIP = 40  # seeds up to which the sign-flip p is counted exactly (2 x 2^20 half sums at 40)
MONTE_CARLO_DRAWS, MONTE_CARLO_SEED = 200_000, 0


def _signed_sums(values: np.ndarray) -> np.ndarray:
    """The 2^len(values) sums of +-values, one per sign pattern."""
    sums = np.zeros(1)
    for v in values:
        sums = np.concatenate([sums + v, sums - v])
    return sums


def sign_flip_p(differences: Sequence[float]) -> tuple[float, float]:
    """Two-sided sign-flip permutation p-value of the mean of `differences` and its standard error
    (0 when exact). Exact up to EXACT_SIGN_FLIP values: the 2^n pattern sums split into two halves'
    sums, and for each sum of the first half the second half's sums that reach |total| >= observed
    are counted in the sorted second half (2 x 2^(n/2) sums instead of 2^n). Beyond, a Monte Carlo
    of MONTE_CARLO_DRAWS random patterns with a fixed seed, the observed pattern counted once."""
    d = np.asarray(differences, dtype=np.float64)
    observed = abs(d.sum())
    threshold = observed - 1e-12 * max(1.0, observed)  # ties in floating point count as ties
    if len(d) <= EXACT_SIGN_FLIP:
        half = len(d) // 2
        first, second = _signed_sums(d[:half]), np.sort(_signed_sums(d[half:]))
        # |f + s| >= t  <=>  s >= t - f  or  s <= -t - f
        high = len(second) - np.searchsorted(second, threshold - first, side="left")
        low = np.searchsorted(second, -threshold - first, side="right")
        both = np.maximum(0, low + high - len(second))  # t <= 0: every pattern counted twice
        count = int((high + low - both).sum())
        return count / 2.0 ** len(d), 0.0
    rng = np.random.default_rng(MONTE_CARLO_SEED)
    hits = 1  # the observed pattern itself (a valid p-value: never 0)
    for start in range(0, MONTE_CARLO_DRAWS, 20_000):
        signs = rng.integers(0, 2, size=(min(20_000, MONTE_CARLO_DRAWS - start), len(d)), dtype=np.int8) * 2 - 1
        hits += int((np.abs(signs @ d) >= threshold).sum())
    p = hits / (MONTE_CARLO_DRAWS + 1)
    return p, math.sqrt(p * (1 - p) / MONTE_CARLO_DRAWS)


def paired_t_p(differences: Sequence[float]) -> float:
    """Two-sided paired t-test p-value. Differences all equal: 1.0 when they are all zero (nothing
    to detect), 0.0 otherwise (no spread, every seed moved the same way: the t statistic is infinite)."""
    d = np.asarray(differences, dtype=np.float64)
    if np.all(d == d[0]):
        return 1.0 if d[0] == 0 else 0.0
    return float(scipy_stats.ttest_1samp(d, 0.0).pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def t_test_power(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided one-sample t-test at `alpha` for a true mean of `effect` SDs, n pairs:
    P(|T| > t_crit) with T noncentral t (df n - 1, noncentrality effect sqrt(n))."""
    df, nc = n - 1, effect * math.sqrt(n)
    crit = scipy_stats.t.ppf(1 - alpha / 2, df)
    # scipy's noncentral t returns NaN where a tail underflows (far below 1e-30): that tail is 0
    upper, lower = (float(np.nan_to_num(p, nan=0.0)) for p in (scipy_stats.nct.sf(crit, df, nc),
                                                                scipy_stats.nct.cdf(-crit, df, nc)))
    return upper + lower


def minimum_detectable(sd: float, n: int, alpha: float = ALPHA) -> float:
    """The true mean difference a two-sided paired t-test at `alpha` detects with POWER (n >= 2),
    from the exact power (`t_test_power`); 0 when the differences have no spread."""
    if sd == 0:
        return 0.0
    # at 100 SDs even n = 2 has power 1 (and scipy's noncentral t turns NaN far beyond)
    effect = optimize.brentq(lambda e: t_test_power(e, n, alpha) - POWER, 1e-9, 100.0, xtol=1e-12)
    return float(effect * sd)


MIN_SEEDS = 6  # the fewest at which the exact sign-flip test can reach ALPHA (2 / 2^n < 0.05)


def seeds_needed(sd: float, target: float, most: int = 1000, alpha: float = ALPHA) -> int | None:
    """The fewest seeds (at least MIN_SEEDS) at which a difference of `target` is detectable
    (`minimum_detectable` at `alpha` <= target) when the paired differences have SD `sd`; None
    beyond `most`."""
    for n in range(MIN_SEEDS, most + 1):
        if minimum_detectable(sd, n, alpha) <= target:
            return n
    return None


def sd_upper_bound(sd: float, n: int, confidence: float = 0.8) -> float:
    """A one-sided upper confidence bound of a normal SD estimated from n values: a pilot's SD is an
    estimate, and planning with it as exact under-powers half the time. sd sqrt((n-1) / chi2_{1-c, n-1})."""
    return float(sd * math.sqrt((n - 1) / scipy_stats.chi2.ppf(1 - confidence, n - 1)))


# The range a metric's value can take, and so the largest possible difference of two values.
BOUNDED = {"accuracy": (0.0, 1.0), "macro_f1": (0.0, 1.0), "macro_precision": (0.0, 1.0),
           "macro_recall": (0.0, 1.0), "mse": (0.0, math.inf)}


def within(interval: Sequence[float] | None, bounds: tuple[float, float] | None) -> list[float] | None:
    """A t-interval cut to the values the metric can take (an accuracy's mean cannot pass 1)."""
    if interval is None or bounds is None:
        return None if interval is None else list(interval)
    return [max(interval[0], bounds[0]), min(interval[1], bounds[1])]


def difference_bounds(metric: str) -> tuple[float, float] | None:
    """The range of a difference of two values of `metric` (None where it is unbounded)."""
    low, high = BOUNDED.get(metric, (-math.inf, math.inf))
    span = high - low
    return None if math.isinf(span) else (-span, span)


def crossed_test(items: np.ndarray) -> dict:
    """The mean of per-item paired differences `items` [n seeds, m test items] with seeds and items
    both random (the module docstring): its standard error split into the seed component (the
    seed-only t-test's, MS_seed / (n m)) and the item component ((MS_item - MS_resid) / (n m), 0
    where negative), Satterthwaite's degrees of freedom, the 95% interval and the two-sided p."""
    d = np.asarray(items, dtype=np.float64)
    n, m = d.shape
    grand = d.mean()
    seed_means, item_means = d.mean(1), d.mean(0)
    ms_seed = m * float(((seed_means - grand) ** 2).sum()) / (n - 1)
    ms_item = n * float(((item_means - grand) ** 2).sum()) / (m - 1)
    residual = d - seed_means[:, None] - item_means[None, :] + grand
    ms_resid = float((residual**2).sum()) / ((n - 1) * (m - 1))
    var_seed, var_item = ms_seed / (n * m), max(ms_item - ms_resid, 0.0) / (n * m)
    variance = var_seed + var_item
    # Satterthwaite: the combination MS_seed + (MS_item - MS_resid), each term over its own df
    terms = [(ms_seed, n - 1)] + ([(ms_item, m - 1), (ms_resid, (n - 1) * (m - 1))] if var_item > 0 else [])
    denominator = sum(ms**2 / df for ms, df in terms)
    df = (variance * n * m) ** 2 / denominator if denominator > 0 else float(n - 1)
    se = math.sqrt(variance)
    return {"mean": float(grand), "se": se, "se_seed": math.sqrt(var_seed), "se_item": math.sqrt(var_item),
            "df": float(df), "items": m, **_t_inference(float(grand), se, df)}


def _t_inference(mean: float, se: float, df: float) -> dict:
    """The 95% interval, the two-sided p and the 90% interval (TOST's) of a mean with a t-distributed
    standard error `se` on `df` degrees of freedom (se 0: a point, p 1 at 0 and 0 elsewhere)."""
    if se == 0:
        return {"ci95": [mean, mean], "ci90": [mean, mean], "p": 1.0 if mean == 0 else 0.0}
    q95, q90 = (float(scipy_stats.t.ppf(q, df)) for q in (1 - ALPHA / 2, 1 - ALPHA))
    return {"ci95": [mean - q95 * se, mean + q95 * se], "ci90": [mean - q90 * se, mean + q90 * se],
            "p": float(2 * scipy_stats.t.sf(abs(mean) / se, df))}


def tost_p(mean: float, se: float, df: float, margin: float) -> float:
    """Two one-sided tests of |true difference| < margin: the larger of the two one-sided p-values
    (equivalent at ALPHA exactly when the 90% interval lies inside +-margin)."""
    if se == 0:
        return 0.0 if abs(mean) < margin else 1.0
    lower = scipy_stats.t.sf((mean + margin) / se, df)  # H0: difference <= -margin
    upper = scipy_stats.t.cdf((mean - margin) / se, df)  # H0: difference >= +margin
    return float(max(lower, upper))


def paired_comparison(differences: Sequence[float], metric: str | None = None, items: np.ndarray | None = None,
                      margin: float = MARGIN) -> dict:
    """Statistics of the paired differences (already signed: positive = multitask better). With one
    pair only the difference itself: no spread, no interval, no test. `items` [n, m], where given,
    are the per-item signed differences whose means over items are `differences`: the test then
    counts the test items as a sample too (crossed_test); `margin` is the equivalence margin in the
    metric's units. Intervals are cut to the range a difference of `metric` can take."""
    d = np.asarray(differences, dtype=np.float64)
    n = len(d)
    out = {"n": n, "mean": float(d.mean()), "values": [float(v) for v in d], "margin": margin}
    if n < 2:
        return {**out, "sd": None, "ci95": None, "p_t": None, "p_sign_flip": None, "p_sign_flip_se": None,
                "p_sign_flip_floor": None, "min_detectable": None, "crossed": None, "p": None, "p_tost": None}
    bounds = difference_bounds(metric) if metric else None
    sd = float(d.std(ddof=1))
    half = float(scipy_stats.t.ppf(1 - ALPHA / 2, n - 1)) * sd / math.sqrt(n)
    ci = within([out["mean"] - half, out["mean"] + half], bounds)
    p_t = paired_t_p(d)
    crossed, se, df, p = None, sd / math.sqrt(n), n - 1, p_t  # over seeds, unless the items count too
    if items is not None:
        crossed = crossed_test(items)
        if abs(crossed["mean"] - out["mean"]) > 1e-9 * max(1.0, abs(out["mean"])):
            raise ValueError(f"per-item differences average {crossed['mean']:.6g}, the seeds' {out['mean']:.6g}: "
                             "not the same comparison")
        crossed["ci95"], crossed["ci90"] = within(crossed["ci95"], bounds), within(crossed["ci90"], bounds)
        se, df, p = crossed["se"], crossed["df"], crossed["p"]
    p_flip, p_flip_se = sign_flip_p(d)
    return {**out, "sd": sd, "ci95": ci, "p_t": p_t, "p_sign_flip": p_flip, "p_sign_flip_se": p_flip_se,
            "p_sign_flip_floor": 2.0 / 2**n, "min_detectable": minimum_detectable(sd, n), "crossed": crossed,
            "p": p, "p_tost": tost_p(out["mean"], se, df, margin)}


def judge(comparisons: dict[str, dict], random_tasks: frozenset[str] = frozenset()) -> dict[str, dict]:
    """Add `p_holm`, `p_tost_holm` and `verdict` to each paired comparison, Holm across the family
    (the comparisons given, random-label tasks left out): better / worse where the difference's
    adjusted p < ALPHA, else equivalent where the TOST's adjusted p < ALPHA, else undecided."""
    family = [task for task, c in comparisons.items() if task not in random_tasks and c["p"] is not None]
    adjusted = dict(zip(family, holm([comparisons[t]["p"] for t in family])))
    equivalence = dict(zip(family, holm([comparisons[t]["p_tost"] for t in family])))
    judged = {}
    for task, c in comparisons.items():
        p = p_tost = None
        if task in random_tasks:
            verdict = RANDOM
        elif c["p"] is None:
            verdict = NO_TEST
        else:
            p, p_tost = adjusted[task], equivalence[task]
            verdict = (BETTER if c["mean"] > 0 else WORSE) if p < ALPHA else EQUIVALENT if p_tost < ALPHA else UNDECIDED
        judged[task] = {**c, "p_holm": p, "p_tost_holm": p_tost, "verdict": verdict}
    return judged


def format_amount(value: float, metric: str, signed: bool = True) -> str:
    """Accuracy-like metrics in percentage points, others (MSE, PSNR) as they are."""
    sign = "+" if signed else ""
    return f"{100 * value:{sign}.2f} pt" if metric in ("accuracy", "macro_f1") else f"{value:{sign}.4g}"


def format_interval(ci: Sequence[float] | None, scale: float = 1.0, unit: str = "") -> str:
    """A CI as "[+0.12%, +0.34%]" (signed, 2 decimals, times `scale`), "-" when there is none."""
    return "-" if ci is None else f"[{scale * ci[0]:+.2f}{unit}, {scale * ci[1]:+.2f}{unit}]"


def detectable_text(amount: float, metric: str, n: int) -> str:
    """"smallest detectable 0.72 pt", or, where that is beyond the metric's range, the plain fact."""
    bounds = difference_bounds(metric)
    if bounds is not None and amount > bounds[1]:
        return f"no difference within the metric's range is detectable with n = {n} seeds"
    return f"smallest detectable {format_amount(amount, metric, signed=False)}"


def verdict_text(task: str, variant: str, metric: str, c: dict) -> str:
    """One line a reader can quote, e.g. "fashion: rsn2 +0.53 pt accuracy, 95% CI [-0.40, +1.50]
    over seeds and test items (SE 0.31 pt: seeds 0.25, items 0.18), n=3: undecided (Holm p=0.31;
    equivalence within +-0.50 pt: Holm p=0.62; ...)"."""
    head = f"{task}: {variant} {format_amount(c['mean'], metric)} {metric}"
    if c["verdict"] == NO_TEST:
        return f"{head}, n={c['n']}: no test possible (one seed; run more seeds)"
    crossed = c.get("crossed")
    low, high = (crossed or c)["ci95"]
    if crossed:
        source = (f" over seeds and test items (SE {format_amount(crossed['se'], metric, False)}: seeds "
                  f"{format_amount(crossed['se_seed'], metric, False)}, {crossed['items']} items "
                  f"{format_amount(crossed['se_item'], metric, False)})")
    else:
        source = " over seeds (test set held fixed)"
    text = (f"{head}, 95% CI [{format_amount(low, metric)}, {format_amount(high, metric)}]{source}, "
            f"n={c['n']}: {c['verdict']}")
    if c["verdict"] == RANDOM:
        return text + " (chance by construction; no test)"
    notes = [f"Holm p={c['p_holm']:.3g}",
             f"equivalence within +-{format_amount(c['margin'], metric, False)}: Holm p={c['p_tost_holm']:.3g}"]
    flip = f"sign-flip p={c['p_sign_flip']:.3g}"
    if c.get("p_sign_flip_se"):
        flip += f" (Monte Carlo, SE {c['p_sign_flip_se']:.1g})"
    elif c["p_sign_flip_floor"] >= ALPHA:
        flip += f" (its floor at n={c['n']})" if c["p_sign_flip"] <= c["p_sign_flip_floor"] else \
            f" (cannot go below {c['p_sign_flip_floor']:.3g} at n={c['n']})"
    notes.append(flip)
    if c["verdict"] == UNDECIDED:
        notes.append(detectable_text(c["min_detectable"], metric, c["n"]))
    return f"{text} ({'; '.join(notes)})"
