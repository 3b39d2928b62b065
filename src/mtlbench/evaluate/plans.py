"""Confirmatory or exploratory: whether a run's verdicts answer an analysis plan fixed before
its seeds trained.

A plan is `plans/<run>.yaml` (a run of params.yaml: a study at its size, protocol and seeds),
committed before the first seed of the run it governs starts:

    run: hps_modern_3000
    estimand: paired difference in test accuracy, multitask minus dedicated, per task
    seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    margin: 0.005        # must equal analysis.margin when evaluated
    families: each variant's real tasks against dedicated (Holm); every method-task pair against hps_sum (Holm)

Evaluate calls the verdicts confirmatory only where all of this holds: the plan exists and is
committed, its last change was committed before the earliest training start recorded in the
results (run.json's started_at), the trained seeds are exactly the plan's and the margin is the
plan's. Anything else (no plan, a plan written or edited after training began, seeds added or
dropped after a look, another margin) makes them exploratory, and the report says which rule
failed. Reading verdicts, then adding seeds and reading again, is exactly what this refuses to
call confirmatory (docs/verdicts.md).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import yaml

from mtlbench.errors import ExpectedError

PLANS_DIR = "plans"
KEYS = {"run", "estimand", "seeds", "margin", "families"}


class PlanError(ExpectedError):
    """A plan file that cannot be read as one (named, with the key and what was expected)."""


def read_plan(path: Path, run: str) -> dict:
    """The plan at `path`, checked: every key of KEYS, the run's own name, seeds a list of
    distinct integers, margin a number in (0, 1)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise PlanError(f"{path}: not a readable YAML plan ({type(err).__name__})") from None
    if not isinstance(raw, dict):
        raise PlanError(f"{path}: expected a mapping with keys {', '.join(sorted(KEYS))}")
    missing, extra = sorted(KEYS - set(raw)), sorted(set(raw) - KEYS)
    if missing or extra:
        raise PlanError(f"{path}: {'missing key ' + repr(missing[0]) if missing else 'unknown key ' + repr(extra[0])}; "
                        f"a plan has exactly {', '.join(sorted(KEYS))}")
    if raw["run"] != run:
        raise PlanError(f"{path}: run is {raw['run']!r}, but the file plans {run!r} (plans/<run>.yaml)")
    seeds = raw["seeds"]
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
            and len(set(seeds)) == len(seeds)):
        raise PlanError(f"{path}: seeds: expected a non-empty list of distinct integers, got {seeds!r}")
    margin = raw["margin"]
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin < 1:
        raise PlanError(f"{path}: margin: expected a number above 0 and below 1, got {margin!r}")
    return raw


def last_commit_time(root: Path, path: Path) -> float | None:
    """Unix time of the last commit that changed `path` in the repository at `root`; None when the
    file is not committed as it is now (or git is not there to say)."""
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", str(path)], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
        stamp = subprocess.run(["git", "log", "-1", "--format=%ct", "--", str(path)], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return None if dirty or not stamp else float(stamp)


def plan_status(run: str, seeds: list[int], margin: float, training_started: float | None, root: Path) -> dict:
    """{"status": "confirmatory" | "exploratory", "why": ..., "plan": path or None}."""
    path = root / PLANS_DIR / f"{run}.yaml"
    relative = f"{PLANS_DIR}/{run}.yaml"
    if not path.is_file():
        return {"status": "exploratory", "plan": None, "why": f"no analysis plan ({relative})"}
    plan = read_plan(path, run)

    def exploratory(why: str) -> dict:
        return {"status": "exploratory", "plan": relative, "why": why}

    if sorted(plan["seeds"]) != sorted(seeds):
        return exploratory(f"trained seeds {sorted(seeds)} are not the plan's {sorted(plan['seeds'])}")
    if plan["margin"] != margin:
        return exploratory(f"analysis.margin {margin:g} is not the plan's {plan['margin']:g}")
    committed = last_commit_time(root, path)
    if committed is None:
        return exploratory(f"{relative} is not committed as it stands")
    if training_started is None:
        return exploratory("the results record no training start to set the plan against")
    if committed >= training_started:
        return exploratory(f"{relative} was last committed {_when(committed)}, after training began {_when(training_started)}")
    return {"status": "confirmatory", "plan": relative,
            "why": f"{relative} committed {_when(committed)}, before training began {_when(training_started)}; "
                   f"seeds and margin as planned"}


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))
