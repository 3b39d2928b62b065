"""Whether today's training code still gives a part's numbers, bit for bit: what lets
`mtlbench.pool` pool parts trained by different code.

`python -m mtlbench.recheck bench/parts/<part> [--seed S] [--scratch .scratch/recheck]`

Why: pool refuses parts trained by different code (the train_code study_run records), as a change
of the training code can change what a seed gives. Most changes do not (a faster timing estimate,
a clearer error message, a new method's file), and a study whose seeds take several sessions would
otherwise freeze the training code until its last seed. So this retrains one seed of the part (its
first, or --seed) with the part's own settings under the current code, on this machine, and
compares everything that seed gave, every variant's final metrics and per-epoch curves on every
task, with the part's. All identical: it appends {from, to, seed, cpu, numbers} to the part's
code_checks.json, and pool treats the two codes as one. Any difference: exit 1, the first
differences printed, nothing recorded; rerun the part under the current code instead.

Exact, not within a tolerance: training is deterministic on one machine kind and thread count, so
code that computes the same thing gives the same bits, and code that computes anything else differs
within an epoch. So it runs on the part's CPU kind only (run.json "cpu": rounding differs between
kinds) and with the part's thread count (context.json "threads": a reduction split over two threads
rounds differently than over one; measured: PCGrad's gradient dot products on fashion_groups).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path

from mtlbench import study_run
from mtlbench.fileio import write_json
from mtlbench.pool import CODE_CHECKS, PoolError, part_seeds, per_seed_metrics, read_code_checks, read_part
from mtlbench.runtime import cpu_model
from mtlbench.train.units import code_digest

SHOWN = 10  # differences printed before "and N more"


def seed_results(details: dict, seed: int) -> dict[str, object]:
    """Every number one seed gave in a details document, by variant/task/name: final metrics, and
    each per-epoch curve as one list."""
    out: dict[str, object] = {}
    for variant, tasks in per_seed_metrics(details).items():
        for task, by_seed in tasks.items():
            out.update({f"{variant}/{task}/{metric}": value for metric, value in by_seed.get(seed, {}).items()})
    for variant, tasks in details["curves"].items():
        for task, by_seed in tasks.items():
            if str(seed) in by_seed:
                out[f"{variant}/{task}/curve"] = by_seed[str(seed)]
    return out


def differences(old: dict[str, object], new: dict[str, object]) -> list[str]:
    """What one seed gave differently, as lines a person reads: 'variant/task/name: old -> new'; for
    a curve, its first differing epoch and value."""
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "(absent)"), new.get(key, "(absent)")
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            row_a, row_b = next((x, y) for x, y in zip(a, b) if x != y)
            name = next((k for k in sorted(set(row_a) | set(row_b)) if row_a.get(k) != row_b.get(k)))
            lines.append(f"{key}: from epoch {row_a.get('epoch')}, {name} {row_a.get(name)} -> {row_b.get(name)}")
        elif isinstance(a, list) and isinstance(b, list):
            lines.append(f"{key}: {len(a)} epochs -> {len(b)}")
        else:
            lines.append(f"{key}: {a} -> {b}")
    return lines


def count_numbers(results: dict[str, object]) -> int:
    """How many numbers were compared (a curve counts each epoch's values)."""
    return sum(sum(len(row) - 1 for row in value) if isinstance(value, list) else 1 for value in results.values())


def retrain_one_seed(run: dict, threads: int | None, seed: int, scratch: Path | None, into: Path) -> int:
    """study_run of the part's study with its own --sets but run.seeds=[seed], its units on
    `threads` threads (the train stage's thread count, executors.py; None: a GPU part), into `into`."""
    settings = [s for s in run["set"] if not s.startswith("run.seeds=")] + [f"run.seeds=[{seed}]"]
    argv = ["--study", run["study"], *(a for s in settings for a in ("--set", s)), "--out", str(into)]
    if threads:  # study_run's dvc repro inherits them
        os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return study_run.main(argv + (["--scratch", str(scratch)] if scratch else []))


def recheck(part: Path, seed: int | None, scratch: Path | None) -> int:
    files = read_part(part)
    run, details = files["run.json"], files["details.json"]
    current = code_digest()
    if run.get("train_code") == current:
        print(f"recheck: {part} was trained by the current code ({current[:12]}...); nothing to check", file=sys.stderr)
        return 0
    if "set" not in run or "study" not in run:
        raise PoolError(f"{part / 'run.json'}: no 'study' or 'set' (what study_run records), so its settings are "
                        "unknown; rerun that part with study_run")
    here = cpu_model()
    if run.get("cpu") != here:
        raise PoolError(f"{part}: trained on {run.get('cpu')!r}, this machine is {here!r}; floating-point rounding "
                        "differs between CPU kinds, so run the recheck on a machine of the part's kind")
    threads = files["context.json"].get("threads")
    if files["context.json"].get("device") == "cpu" and not isinstance(threads, int):
        raise PoolError(f"{part / 'context.json'}: no \"threads\" (the thread count its units trained with, which the "
                        "train stage records since 2026-12-04), and results depend on it; add it from how that part "
                        "ran (the Makefile's study runs: OMP_NUM_THREADS=1, so 1) and say so in its run.json")
    seeds = part_seeds(details)
    seed = seeds[0] if seed is None else seed
    if seed not in seeds:
        raise PoolError(f"{part}: --seed {seed} is not one of its seeds ({', '.join(map(str, seeds))})")
    with tempfile.TemporaryDirectory(prefix="mtlbench-recheck-") as tmp:
        retrained = Path(tmp) / "run"
        code = retrain_one_seed(run, threads, seed, scratch, retrained)
        if code != 0:
            return code
        again = read_part(retrained)
    old, new = seed_results(details, seed), seed_results(again["details.json"], seed)
    found = differences(old, new)
    if found:
        more = f"\n  and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
        print(f"recheck: seed {seed} of {part} comes out differently under the current code ({len(found)} of its "
              f"{len(old)} final metrics and curves differ); nothing recorded: rerun that part under the current code to pool it "
              "with parts of this code\n  " + "\n  ".join(found[:SHOWN]) + more, file=sys.stderr)
        return 1
    record = {"from": run["train_code"], "to": again["run.json"]["train_code"], "seed": seed, "cpu": here,
              "threads": again["context.json"].get("threads"), "numbers": count_numbers(old),
              "checked_on": datetime.date.today().isoformat()}
    write_json(part / CODE_CHECKS, read_code_checks(part) + [record])
    print(f"recheck: seed {seed} of {part}: all {record['numbers']} numbers identical under the current code "
          f"({record['to'][:12]}...); recorded in {part / CODE_CHECKS}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", type=Path, help="a study run's --out folder (python -m mtlbench.study_run)")
    parser.add_argument("--seed", type=int, help="the seed to retrain (default: the part's first)")
    parser.add_argument("--scratch", type=Path, help="as study_run's: a folder the retraining resumes in")
    args = parser.parse_args(argv)
    try:
        return recheck(args.part, args.seed, args.scratch)
    except PoolError as err:
        print(f"recheck: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
