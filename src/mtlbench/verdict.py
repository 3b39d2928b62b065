"""Does a multitask variant beat the dedicated models on a task? A paired answer over seeds.

Seed k of a multitask variant and seed k of the dedicated models share the initial draw (RSN2's
matched init) and the data order, so each seed gives one paired difference d_k = multitask - dedicated
(signed so that positive is better: an MSE that falls counts as a gain). Over the n seeds:

- the mean difference with its 95% t-interval and the paired t-test (scipy's `ttest_rel` on the
  pairs is the one-sample t-test of the d_k);
- the exact two-sided sign-flip permutation test: under "no difference" each d_k is as likely
  positive as negative, so all 2^n sign patterns are enumerated and p is the share whose |mean| is at
  least the observed one. It assumes no normality, but its smallest possible p is 2 / 2^n
  (0.25 at n=3): below n=6 it can never reach 0.05, which the verdict text says;
- Holm's step-down adjustment of the t-test p-values across the study's real tasks (one family
  per variant), and the verdict: better / worse where the adjusted p < ALPHA, else "no detectable
  difference";
- the smallest difference the study could detect: the true mean difference that a two-sided
  t-test at ALPHA would find with POWER at this n and the observed SD of the differences, from the
  exact noncentral-t power (the usual (t_{1-ALPHA/2} + t_{POWER}) sd / sqrt(n) approximation gives
  only 0.77 power at n = 3). A "no detectable difference" with a large one means too few seeds, not
  equal methods; where it exceeds the metric's whole range, the text says that no difference is
  detectable at this n.

Random-label tasks (chance accuracy by construction) keep their differences but no verdict and no
place in the Holm family.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

ALPHA = 0.05
POWER = 0.8
BETTER, WORSE, NO_DIFFERENCE, NO_TEST, RANDOM = (
    "better", "worse", "no detectable difference", "no test possible", "random labels")


def sign_flip_p(differences: Sequence[float]) -> float:
    """Exact two-sided sign-flip permutation p-value of the mean of `differences` (2^n patterns)."""
    d = np.asarray(differences, dtype=np.float64)
    observed = abs(d.mean())
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    flipped = np.abs(signs @ d) / len(d)
    return float(np.mean(flipped >= observed - 1e-12 * max(1.0, observed)))


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


def t_test_power(effect: float, n: int) -> float:
    """Power of the two-sided one-sample t-test at ALPHA for a true mean of `effect` SDs, n pairs:
    P(|T| > t_crit) with T noncentral t (df n - 1, noncentrality effect sqrt(n))."""
    df, nc = n - 1, effect * math.sqrt(n)
    crit = scipy_stats.t.ppf(1 - ALPHA / 2, df)
    # scipy's noncentral t returns NaN where a tail underflows (far below 1e-30): that tail is 0
    upper, lower = (float(np.nan_to_num(p, nan=0.0)) for p in (scipy_stats.nct.sf(crit, df, nc),
                                                                scipy_stats.nct.cdf(-crit, df, nc)))
    return upper + lower


def minimum_detectable(sd: float, n: int) -> float:
    """The true mean difference a two-sided paired t-test at ALPHA detects with POWER (n >= 2), from
    the exact power (`t_test_power`); 0 when the differences have no spread."""
    if sd == 0:
        return 0.0
    # at 100 SDs even n = 2 has power 1 (and scipy's noncentral t turns NaN far beyond)
    effect = optimize.brentq(lambda e: t_test_power(e, n) - POWER, 1e-9, 100.0, xtol=1e-12)
    return float(effect * sd)


MIN_SEEDS = 6  # the fewest at which the exact sign-flip test can reach ALPHA (2 / 2^n < 0.05)


def seeds_needed(sd: float, target: float, most: int = 1000) -> int | None:
    """The fewest seeds (at least MIN_SEEDS) at which a difference of `target` is detectable
    (`minimum_detectable` <= target) when the paired differences have SD `sd`; None beyond `most`."""
    for n in range(MIN_SEEDS, most + 1):
        if minimum_detectable(sd, n) <= target:
            return n
    return None


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


def paired_comparison(differences: Sequence[float], metric: str | None = None) -> dict:
    """Statistics of the paired differences (already signed: positive = multitask better). With one
    pair only the difference itself: no spread, no interval, no test. The interval is cut to the
    range a difference of `metric` can take."""
    d = np.asarray(differences, dtype=np.float64)
    n = len(d)
    out = {"n": n, "mean": float(d.mean()), "values": [float(v) for v in d]}
    if n < 2:
        return {**out, "sd": None, "ci95": None, "p_t": None, "p_sign_flip": None, "p_sign_flip_floor": None,
                "min_detectable": None}
    sd = float(d.std(ddof=1))
    half = float(scipy_stats.t.ppf(1 - ALPHA / 2, n - 1)) * sd / math.sqrt(n)
    ci = within([out["mean"] - half, out["mean"] + half], difference_bounds(metric) if metric else None)
    return {**out, "sd": sd, "ci95": ci, "p_t": paired_t_p(d),
            "p_sign_flip": sign_flip_p(d), "p_sign_flip_floor": 2.0 / 2**n, "min_detectable": minimum_detectable(sd, n)}


def judge(comparisons: dict[str, dict], random_tasks: frozenset[str] = frozenset()) -> dict[str, dict]:
    """Add `p_holm` and `verdict` to each task's paired comparison (Holm across the real tasks)."""
    family = [task for task, c in comparisons.items() if task not in random_tasks and c["p_t"] is not None]
    adjusted = dict(zip(family, holm([comparisons[t]["p_t"] for t in family])))
    judged = {}
    for task, c in comparisons.items():
        if task in random_tasks:
            verdict, p = RANDOM, None
        elif c["p_t"] is None:
            verdict, p = NO_TEST, None
        else:
            p = adjusted[task]
            verdict = NO_DIFFERENCE if p >= ALPHA else (BETTER if c["mean"] > 0 else WORSE)
        judged[task] = {**c, "p_holm": p, "verdict": verdict}
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
    """One line a reader can quote, e.g. "fashion: rsn2 +0.53 pt accuracy, 95% CI [-0.40, +1.50],
    n=3: no detectable difference (Holm p=0.31; smallest detectable +2.1 pt)"."""
    head = f"{task}: {variant} {format_amount(c['mean'], metric)} {metric}"
    if c["verdict"] == NO_TEST:
        return f"{head}, n={c['n']}: no test possible (one seed; run more seeds)"
    low, high = c["ci95"]
    text = f"{head}, 95% CI [{format_amount(low, metric)}, {format_amount(high, metric)}], n={c['n']}: {c['verdict']}"
    if c["verdict"] == RANDOM:
        return text + " (chance by construction; no test)"
    notes = [f"Holm p={c['p_holm']:.3g}", f"sign-flip p={c['p_sign_flip']:.3g}"]
    if c["p_sign_flip_floor"] >= ALPHA:
        notes[-1] += f" (its floor at n={c['n']})" if c["p_sign_flip"] <= c["p_sign_flip_floor"] else \
            f" (cannot go below {c['p_sign_flip_floor']:.3g} at n={c['n']})"
    if c["verdict"] == NO_DIFFERENCE:
        notes.append(detectable_text(c["min_detectable"], metric, c["n"]))
    return f"{text} ({'; '.join(notes)})"
