"""How many seeds a study needs: from a run's paired differences (a pilot, or the committed
baseline), per multitask variant and real task the SD of the differences, the smallest difference
its seeds could detect, and the seeds at which `--target` (accuracy points) becomes detectable at
80% power (at least 6, so that the sign-flip test can reach 5% too).

The plan is for the test the verdicts use: at the Holm family's first step, alpha / m (m: the
variant's real tasks, its family; Holm's later steps are easier, so this is conservative), and with
the pilot's SD replaced by its 80% upper confidence bound (`--sd-confidence`): a pilot's SD is
itself an estimate. It plans the seed-only t-test; where the test items add variance (docs/
verdicts.md) more seeds do not remove that part.

    python -m mtlbench.power reports/studies/mnist_fashion_mlp.json --target 0.5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mtlbench.fileio import read_json
from mtlbench.verdict import (ALPHA, MIN_SEEDS, RANDOM, format_amount, minimum_detectable, sd_upper_bound,
                              seeds_needed)


def power_rows(details: dict, target: float, sd_confidence: float = 0.8) -> list[dict]:
    """One row per multitask variant and real task of a details document (reports/studies/<run>.json)."""
    rows = []
    for variant, entry in details["comparisons"].items():
        judged = {task: diffs["paired"] for task, diffs in entry.items()
                  if isinstance(diffs, dict) and diffs.get("paired") and diffs["paired"]["verdict"] != RANDOM
                  and diffs["paired"]["sd"] is not None}
        alpha = ALPHA / max(1, len(judged))  # Holm's first step over the variant's family
        for task, c in judged.items():
            sd = sd_upper_bound(c["sd"], c["n"], sd_confidence)
            rows.append({"study": details["study"], "variant": variant, "task": task, "metric": c["metric"],
                         "n": c["n"], "sd": c["sd"], "sd_upper": sd, "alpha": alpha,
                         "min_detectable": minimum_detectable(c["sd"], c["n"], alpha),
                         "seeds_needed": seeds_needed(sd, target, alpha=alpha)})
    return rows


def fraction(low: float, high: float, name: str):
    """An argparse type: a number strictly between low and high, else one clear message."""
    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low < value < high:
            raise argparse.ArgumentTypeError(f"{name}: expected a number above {low:g} and below {high:g}, got {text!r}")
        return value
    return check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("details", nargs="+", type=Path, help="reports/studies/<run>.json or archive/<run>/details.json")
    parser.add_argument("--target", type=fraction(0.0, 100.0, "--target"), default=0.5,
                        help="the difference to detect, in accuracy points (above 0, below 100)")
    parser.add_argument("--sd-confidence", type=fraction(0.0, 1.0, "--sd-confidence"), default=0.8,
                        help="plan with this one-sided upper confidence bound of the pilot's SD (0.5: about the estimate)")
    args = parser.parse_args(argv)
    target = args.target / 100
    print(f"| file | study | protocol | variant | task | n | SD of differences | its {args.sd_confidence:.0%} upper bound "
          f"| alpha (Holm's first step) | detectable now | seeds for {args.target} pt |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in args.details:
        try:
            details = read_json(path)
        except (OSError, ValueError) as err:
            raise SystemExit(f"error: {path}: not a readable details file ({err})")
        try:
            rows = power_rows(details, target, args.sd_confidence)
        except (KeyError, TypeError, AttributeError) as err:
            raise SystemExit(f"error: {path}: not a details document with paired comparisons (no {err})")
        for r in rows:
            needed = r["seeds_needed"] or "over 1000"
            protocol = details.get("produced_on", {}).get("protocol", "?")
            print(f"| {path} | {r['study']} | {protocol} | {r['variant']} | {r['task']} | {r['n']} "
                  f"| {format_amount(r['sd'], r['metric'], False)} | {format_amount(r['sd_upper'], r['metric'], False)} "
                  f"| {r['alpha']:.3g} | {format_amount(r['min_detectable'], r['metric'], False)} | {needed} |")
    print(f"\n(at least {MIN_SEEDS}: below that the exact sign-flip test cannot reach 5%)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
