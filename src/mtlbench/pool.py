"""Pool the seeds of several study runs of one study into one answer.

`python -m mtlbench.pool --out bench/fashion_groups_modern_cpu bench/parts/<run seeds 0-5> bench/parts/<run seeds 6-16>`

Why: the number of seeds a comparison needs comes from power (`python -m mtlbench.power`), and on
two CPU cores it can take longer than one session, while a study run's scratch folder does not
outlive one. So extra seeds run as study runs of their own (`mtlbench.study_run`, other
`run.seeds`), each committed when it finishes, and this module puts them together: it reads each
part's per-seed numbers from its details.json, matches them by seed number and recomputes the
seed statistics, the paired comparisons with dedicated (Holm per variant) and delta-m with the
evaluate stage's own functions (evaluate.summarize, evaluate.compare_seeds). Pooling one study
run split in two gives back its own numbers exactly (tests/test_pool.py).

Parts pool only when they trained the same thing: the same study, variants and budgets, the same
resolved settings (protocol, training rows, data digests, numerics, ...), the same torch and the
same training code (the digest study_run records, as units.json keys units by it), and no seed
twice. Parts of different training code pool when `python -m mtlbench.recheck` showed that one
code gives the other's numbers bit for bit (a record in a part's code_checks.json). Confusion
matrices and per-run reports stay in each part (report.md); the pooled folder holds what the README
and docs read: details.json, metrics.json, context.json, epoch_times.json and
run.json, which names the parts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mtlbench.check import ROOT
from mtlbench.errors import ExpectedError
from mtlbench.evaluate import compare_seeds, summarize
from mtlbench.fileio import atomic_dir, read_json, write_json
from mtlbench.outputs import metrics_document
from mtlbench.studies import STUDIES

PART_FILES = ("details.json", "context.json", "run.json", "epoch_times.json")
CODE_CHECKS = "code_checks.json"  # a part's recheck records (mtlbench.recheck), when it has any
VOLATILE_CONTEXT = ("started_at", "ended_at")  # when a part ran, not what it trained
# produced_on's own keys; the rest of what a part trained (protocol, rows, numerics, device) is its context.json
SAME_IN_EVERY_PART = ("torch",)


class PoolError(ExpectedError):
    """Parts that cannot be pooled (said with the part, the key and what to do)."""


def read_part(folder: Path) -> dict[str, dict]:
    """A study run's files, by name; a missing or unreadable one is a PoolError naming it."""
    files = {}
    for name in PART_FILES:
        try:
            files[name] = read_json(folder / name)
        except (OSError, ValueError) as err:
            raise PoolError(f"{folder / name}: {type(err).__name__} ({err}); a part is a study run's --out folder "
                            f"(python -m mtlbench.study_run), which holds {', '.join(PART_FILES)}") from None
    return files


def seed_numbers(details: dict, variant: str) -> list[int]:
    """A variant's seed numbers, in the order of its "values" lists (summarize sorts by seed): the keys
    of its per-seed curves."""
    by_task = details["curves"].get(variant) or {}
    if not by_task:
        raise PoolError(f"study {details['study']}: variant {variant} has no per-seed curves in its details.json, "
                        "so its seed numbers are unknown; rerun that part with study_run")
    return sorted(int(seed) for seed in next(iter(by_task.values())))


def part_seeds(details: dict) -> list[int]:
    """Every seed a details document holds, over all its variants."""
    return sorted({s for variant in details["variants"] for s in seed_numbers(details, variant)})


def per_seed_metrics(details: dict) -> dict[str, dict[str, dict[int, dict[str, float]]]]:
    """{variant: {task: {seed: {metric: value}}}} from a details document's seed statistics."""
    out: dict = {}
    for variant, tasks in details["variants"].items():
        seeds = seed_numbers(details, variant)
        out[variant] = {task: {seed: {metric: stats["values"][i] for metric, stats in by_metric.items()}
                               for i, seed in enumerate(seeds)} for task, by_metric in tasks.items()}
    return out


def _differs(name: str, key: str, first: Path, other: Path, a, b) -> PoolError:
    return PoolError(f"{other}: its {name} {key} is {b!r}, {first}'s is {a!r}: parts pool only when they trained the "
                     "same thing; rerun that part with the settings and code of the others (its run.json has the command)")


def read_code_checks(folder: Path) -> list[dict]:
    """A part's recheck records (none when it has no code_checks.json)."""
    path = folder / CODE_CHECKS
    if not path.exists():
        return []
    try:
        checks = read_json(path)
        if not all(isinstance(c, dict) and {"from", "to", "seed", "cpu"} <= set(c) for c in checks):
            raise ValueError("expected a list of records with from, to, seed and cpu")
    except (OSError, ValueError) as err:
        raise PoolError(f"{path}: {type(err).__name__} ({err}); it is written by python -m mtlbench.recheck: "
                        "restore it from git, or remove it and run the recheck again") from None
    return checks


def check_same_code(parts: dict[Path, dict[str, dict]], checks: list[dict]) -> list[dict]:
    """Refuse parts of training code that no recheck links to the others' (`checks`: every part's
    records); returns the records that link them (none when every part ran one code)."""
    codes = {folder: files["run.json"].get("train_code") for folder, files in parts.items()}
    for folder, code in codes.items():
        if not code:
            raise PoolError(f"{folder / 'run.json'}: no train_code (the digest of the training code it ran, which "
                            "study_run records): without it seeds of different code could be pooled; rerun that part")
    if len(set(codes.values())) == 1:
        return []
    # each code's representative: codes that rechecks link (directly or through a third code) share one
    group = {code: code for code in [*codes.values(), *(c[end] for c in checks for end in ("from", "to"))]}
    used = []
    for check in checks:
        if group[check["from"]] != group[check["to"]]:
            old, new = group[check["from"]], group[check["to"]]
            group = {code: new if rep == old else rep for code, rep in group.items()}
            used.append(check)
    (first, base), *others = codes.items()
    for folder, code in others:
        if group[code] != group[base]:
            raise PoolError(f"{folder}: its run.json train_code is {code[:12]}..., {first}'s is {base[:12]}...: "
                            "parts pool only when they trained the same thing. If the change between the two codes "
                            "moves no result, show it: with the newer code checked out, `python -m mtlbench.recheck "
                            "<a part of the older code>` retrains one of its seeds and records the match when every "
                            "number is identical; otherwise rerun the older part under the newer code")
    return used


def check_compatible(parts: dict[Path, dict[str, dict]]) -> list[int]:
    """Refuse parts that did not train the same thing (the code apart: check_same_code), or that
    share a seed; returns their seeds."""
    (first, base), *others = parts.items()
    base_context = {k: v for k, v in base["context.json"].items() if k not in VOLATILE_CONTEXT}
    for folder, files in others:
        details, context = files["details.json"], files["context.json"]
        checks = [("study", "name", base["details.json"]["study"], details["study"]),
                  ("variants", "and budgets", base["details.json"]["methods"], details["methods"]),
                  ("headline", "tasks", base["details.json"]["headline"], details["headline"])]
        checks += [("produced_on", key, base["details.json"]["produced_on"].get(key), details["produced_on"].get(key))
                   for key in SAME_IN_EVERY_PART]
        checks += [("context.json", key, base_context.get(key), context.get(key))
                   for key in sorted((set(base_context) | set(context)) - set(VOLATILE_CONTEXT))]
        for name, key, a, b in checks:
            if a != b:
                raise _differs(name, key, first, folder, a, b)
    seen: dict[int, Path] = {}
    for folder, files in parts.items():
        details = files["details.json"]
        for seed in part_seeds(details):
            if seed in seen:
                raise PoolError(f"{folder}: seed {seed} is also in {seen[seed]}; pool parts with disjoint run.seeds")
            seen[seed] = folder
    return sorted(seen)


def pooled_details(parts: list[dict]) -> dict:
    """One details document from several (compatible) ones: seed statistics and comparisons
    recomputed over every seed, curves of every seed; produced_on counts the seeds and lists the CPUs."""
    first = parts[0]
    per_seed: dict = {}
    curves: dict = {}
    for details in parts:
        for variant, tasks in per_seed_metrics(details).items():
            for task, by_seed in tasks.items():
                per_seed.setdefault(variant, {}).setdefault(task, {}).update(by_seed)
        for variant, tasks in details["curves"].items():
            for task, by_seed in tasks.items():
                curves.setdefault(variant, {}).setdefault(task, {}).update(by_seed)
    curves = {v: {t: dict(sorted(s.items(), key=lambda kv: int(kv[0]))) for t, s in tasks.items()} for v, tasks in curves.items()}
    summaries = summarize(per_seed)  # in seed order, as compare_seeds pairs them
    study = STUDIES[first["study"]]
    baseline = study.baseline_variant if study.baseline_variant in summaries else None
    random_tasks = frozenset(name for name, spec in study.specs(ROOT).items() if spec.is_random)
    cpus = list(dict.fromkeys(d["produced_on"].get("cpu") for d in parts))
    seeds = sorted({s for tasks in per_seed.values() for by_seed in tasks.values() for s in by_seed})
    document = {"study": first["study"],
                "produced_on": {**first["produced_on"], "cpu": " + ".join(map(str, cpus)), "seeds": len(seeds)},
                "headline": first["headline"], "variants": summaries,
                "comparisons": compare_seeds(per_seed, summaries, baseline, random_tasks) if baseline else {},
                "methods": first["methods"], "curves": curves}
    warnings = list(dict.fromkeys(w for d in parts for w in d.get("warnings", [])))
    return {**document, **({"warnings": warnings} if warnings else {})}


def pooled_epoch_times(parts: list[dict]) -> dict[str, dict[str, float]]:
    """Each variant's mean seconds per epoch over every part's epochs (weighted by their count)."""
    out = {}
    for variant in parts[0]:
        epochs = sum(p[variant]["epochs"] for p in parts)
        out[variant] = {"seconds_per_epoch": sum(p[variant]["seconds_per_epoch"] * p[variant]["epochs"] for p in parts) / epochs,
                        "epochs": epochs}
    return out


def pool(folders: list[Path], out: Path, command: str) -> dict:
    """Pool the study runs in `folders` into `out` (replaced whole, or left as it was on a fault)."""
    parts = {folder: read_part(folder) for folder in folders}
    first = next(iter(parts.values()))
    study = first["details.json"]["study"]
    if study not in STUDIES:
        raise PoolError(f"{folders[0] / 'details.json'}: study {study!r} is not one of {', '.join(STUDIES)}")
    code_checks = check_same_code(parts, [c for folder in parts for c in read_code_checks(folder)])
    seeds = check_compatible(parts)
    details = pooled_details([p["details.json"] for p in parts.values()])
    runs = [p["run.json"] for p in parts.values()]
    context = {**{k: v for k, v in first["context.json"].items() if k not in VOLATILE_CONTEXT},
               "started_at": min(p["context.json"].get("started_at", 0) for p in parts.values()),
               "ended_at": max(p["context.json"].get("ended_at", 0) for p in parts.values())}
    run = {"study": study, "command": command, "cpu": details["produced_on"]["cpu"],
           "wall_s": round(sum(r["wall_s"] for r in runs), 1), "seeds": seeds,
           **({"code_checks": code_checks} if code_checks else {"train_code": runs[0]["train_code"]}),
           "parts": [{"folder": folder.as_posix(), "command": r["command"], "cpu": r["cpu"], "wall_s": r["wall_s"],
                      **({"train_code": r["train_code"]} if code_checks else {})}
                     for folder, r in zip(parts, runs)]}
    with atomic_dir(out) as folder:
        write_json(folder / "details.json", details)
        write_json(folder / "metrics.json", metrics_document(details))
        write_json(folder / "context.json", context)
        write_json(folder / "epoch_times.json", pooled_epoch_times([p["epoch_times.json"] for p in parts.values()]))
        write_json(folder / "run.json", run)
    return run


def out_problem(parts: list[Path], out: Path) -> str | None:
    """Why `out` must not be replaced (None where it may): --out replaces its folder whole, so it
    must not be a part, hold one, sit inside one, or be any folder that a pool did not write."""
    resolved = [p.resolve() for p in parts]
    if len(set(resolved)) != len(resolved):
        twice = next(p for p in parts if resolved.count(p.resolve()) > 1)
        return f"{twice} is given twice; pool each part once"
    target = out.resolve()
    for part, where in zip(parts, resolved):
        if target == where or where.is_relative_to(target) or target.is_relative_to(where):
            return f"--out {out} is, holds or lies inside the part {part}; give a folder of its own"
    if target.exists():
        run = target / "run.json"
        try:
            written_by_pool = read_json(run).get("command", "").startswith("python -m mtlbench.pool ")
        except (OSError, ValueError, AttributeError):
            written_by_pool = False
        if not written_by_pool:
            return (f"--out {out} exists and is not an earlier pool's output (its run.json does not say "
                    "`python -m mtlbench.pool`); it would be replaced whole: give a new folder, or remove it first")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="+", type=Path, help="study runs' --out folders (python -m mtlbench.study_run)")
    parser.add_argument("--out", required=True, type=Path, help="the pooled run's folder (replaced whole)")
    args = parser.parse_args(argv)
    if len(args.parts) < 2:
        parser.error("give at least two parts to pool")
    problem = out_problem(args.parts, args.out)
    if problem:
        print(f"pool: {problem}", file=sys.stderr)
        return 2
    try:
        run = pool(args.parts, args.out, "python -m mtlbench.pool " + " ".join(argv if argv is not None else sys.argv[1:]))
    except PoolError as err:
        print(f"pool: {err}", file=sys.stderr)
        return 2
    print(f"{run['study']}: {len(run['seeds'])} seeds from {len(args.parts)} parts in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
