"""How many seeds a study needs: from a run's paired differences (a pilot, or the committed
baseline), per multitask variant and real task the SD of the differences, the smallest difference
its seeds could detect, and the seeds at which `--target` (accuracy points) becomes detectable at
80% power (at least 6, so that the sign-flip test can reach 5% too).

    python -m mtlbench.power reports/studies/mnist_fashion_mlp.json --target 0.5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mtlbench.fileio import read_json
from mtlbench.verdict import MIN_SEEDS, RANDOM, format_amount, minimum_detectable, seeds_needed


def power_rows(details: dict, target: float) -> list[dict]:
    """One row per multitask variant and real task of a details document (reports/studies/<study>.json)."""
    rows = []
    for variant, entry in details["comparisons"].items():
        for task, diffs in entry.items():
            c = diffs.get("paired") if isinstance(diffs, dict) else None
            if not c or c["verdict"] == RANDOM or c["sd"] is None:
                continue
            rows.append({"study": details["study"], "variant": variant, "task": task, "metric": c["metric"],
                         "n": c["n"], "sd": c["sd"], "min_detectable": minimum_detectable(c["sd"], c["n"]),
                         "seeds_needed": seeds_needed(c["sd"], target)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("details", nargs="+", type=Path, help="reports/studies/<study>.json or a study_run's details.json")
    parser.add_argument("--target", type=float, default=0.5, help="the difference to detect, in accuracy points")
    args = parser.parse_args(argv)
    target = args.target / 100
    print(f"| file | study | protocol | variant | task | n | SD of differences | detectable now | seeds for {args.target} pt |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in args.details:
        try:
            details = read_json(path)
        except (OSError, ValueError) as err:
            raise SystemExit(f"error: {path}: not a readable details file ({err})")
        for r in power_rows(details, target):
            needed = r["seeds_needed"] or "over 1000"
            protocol = details.get("produced_on", {}).get("protocol", "?")
            print(f"| {path} | {r['study']} | {protocol} | {r['variant']} | {r['task']} | {r['n']} | {format_amount(r['sd'], r['metric'], False)} "
                  f"| {format_amount(r['min_detectable'], r['metric'], False)} | {needed} |")
    print(f"\n(at least {MIN_SEEDS}: below that the exact sign-flip test cannot reach 5%)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
