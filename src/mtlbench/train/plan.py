"""The plan a train run prints before it trains: per variant its seeds, the units kept from an
earlier run and those to train, and an estimated wall time for the whole study, so that a run of
hours says so in its first seconds (and names the quick path) instead of after the first unit.

A timing probe of each planned network on this machine (a few optimizer steps on a batch of zero
images at the protocol's batch size, or of an epoch's rows where a run has fewer: probe_batch; on
the run's device) times the steps an epoch takes times the epochs: those the study's last
evaluated results trained (reports/studies/<run>.json; early stopping), and every epoch the
protocol allows for the upper bound. A unit that ran before (its seconds are in units.json) is
estimated by what it took.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from mtlbench.config import Params
from mtlbench.data.prepared import load_provenance
from mtlbench.fileio import read_json
from mtlbench.studies import Study
from mtlbench.train.kinds import KINDS
from mtlbench.train.kinds.common import study_protocol, tiny_shapes
from mtlbench.train.units import Unit

LONG_RUN_S = 30 * 60  # a plan longer than this names the quick path
QUICK_PATH = ("for a first result in minutes: `make smoke` (mnist_fashion_mlp, 2000 rows, 3 epochs, 2 seeds, "
              "as a DVC experiment outside the workspace)")
PROBE_STEPS = 3
DETAILS_DIR = Path("reports/studies")  # the evaluated results whose epochs the likely estimate uses


def step_seconds(study: Study, variant: str, specs: dict, batch: int, device: torch.device) -> float:
    """Seconds of one optimizer step of the variant's network on `batch` zero images per task."""
    tasks, shapes = tiny_shapes(study, variant, specs)
    kind = KINDS[study.variant_kind(variant)]
    with torch.random.fork_rng(devices=[]):
        built = kind.build_tiny(study, variant, tasks, shapes)
    models = built if isinstance(built, list) else [built]
    inputs = [torch.zeros(batch, *shape, device=device) for shape in shapes]
    total = 0.0
    for i, model in enumerate(models):
        model.to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-9)
        x = [inputs[i]] if isinstance(built, list) else inputs
        for step in range(PROBE_STEPS + 1):  # the first step warms up (allocations, kernels)
            started = time.perf_counter()
            out = model(x[0]) if getattr(model, "shared_representation", False) else model(*x)
            outs = out if isinstance(out, (tuple, list)) else (out,)
            optimizer.zero_grad()
            torch.stack([o.float().square().mean() for o in outs]).sum().backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step:
                total += (time.perf_counter() - started) / PROBE_STEPS
    return total


def probe_batch(batch_size: int, epoch_rows: list[int]) -> int:
    """The batch a step of this run takes: the protocol's, or every training row of an epoch where
    there are fewer (a test's or `make check`'s tiny run, where probing a full batch cost more than
    training did)."""
    return max(1, min(batch_size, max(epoch_rows)))


def train_rows(study: Study, tasks: tuple[str, ...], params: Params, prepared_dir) -> int | None:
    """Training rows a fit of these tasks sees per epoch (paired tasks: the shortest), None where
    the prepared data has no recorded shapes (arrays written by hand)."""
    specs = study.specs()
    rows = []
    for task in tasks:
        try:
            shapes = load_provenance(prepared_dir, specs[task].dataset)["shapes"]
        except (OSError, ValueError, KeyError):
            return None
        n = next((v[0] for k, v in shapes.items() if "train" in k), None)
        if n is None:
            return None
        rows.append(min(n, params.run.train_limit or n))
    return min(rows)


def last_details(run: str) -> dict:
    """The run's last evaluated results (reports/studies/<run>.json), {} where there are none."""
    try:
        return read_json(DETAILS_DIR / f"{run}.json")
    except (OSError, ValueError):
        return {}


def recorded_epochs(details: dict, variant: str, task: str, cap: int) -> float | None:
    """The mean epochs this variant trained on this task in a study's details document, within the
    run's epoch cap; None where it has none."""
    try:
        return min(float(details["variants"][variant][task]["epochs"]["mean"]), cap)
    except (KeyError, TypeError, ValueError):
        return None


def estimate_unit(study: Study, unit: Unit, params: Params, prepared_dir, device: torch.device,
                  probes: dict[str, float], details: dict) -> tuple[float | None, float | None]:
    """A unit's seconds (module docstring) as (upper bound: every epoch the protocol allows, likely:
    the epochs the study's last results trained, from `details`); None where the rows, or for the
    likely one the recorded epochs, are unknown."""
    protocol = study_protocol(study, params)
    kind = KINDS[study.variant_kind(unit.variant)]
    planned = kind.fits(study, unit)
    fits = [tasks for tasks, _ in planned]
    rows_per_fit = [train_rows(study, tasks, params, prepared_dir) for tasks in fits]
    if None in rows_per_fit:
        return None, None
    epoch_rows = [int(rows * (1 - protocol.val_fraction)) for rows in rows_per_fit]
    if unit.variant not in probes:
        batch = probe_batch(protocol.batch_size, epoch_rows)
        probes[unit.variant] = step_seconds(study, unit.variant, study.specs(), batch, device)
    per_step = probes[unit.variant] / len(fits) * kind.backward_passes(study, unit.variant, len(unit.tasks))
    upper, likely = 0.0, 0.0
    for (tasks, phases), rows in zip(planned, epoch_rows):
        steps = -(-rows // protocol.batch_size) * phases
        upper += steps * protocol.max_epochs
        epochs = recorded_epochs(details, unit.variant, tasks[0], protocol.max_epochs)
        likely = None if likely is None or epochs is None else likely + steps * epochs
    seeds = len(unit.seeds)
    return upper * per_step * seeds, None if likely is None else likely * per_step * seeds


def plan_lines(study: Study, units: list[Unit], todo: list[Unit], estimates: dict[Unit, float | None],
               device: torch.device, likely: float | None = None) -> list[str]:
    """The plan as the lines the train stage prints; `likely`: the whole run's estimate with the
    epochs the study's last results trained (early stopping), where known."""
    variants = list(dict.fromkeys(u.variant for u in units))
    known = [estimates[u] for u in todo if estimates.get(u) is not None]
    total = sum(known)
    head = (f"[{study.name}] plan on {device.type}: {len(units)} unit{'s' if len(units) != 1 else ''}, "
            f"{len(units) - len(todo)} kept, {len(todo)} to train")
    if todo and len(known) == len(todo):
        if likely is not None:
            head += (f"; estimated {_duration(likely)} with the epochs its last results trained (reports/studies/), "
                     f"at most {_duration(total)}")
            total = likely
        else:
            head += f"; estimated at most {_duration(total)} (early stopping usually ends sooner)"
    lines = [head]
    for variant in variants:
        mine = [u for u in units if u.variant == variant]
        train = [u for u in mine if u in todo]
        seeds = sorted(s for u in mine for s in u.seeds)
        each = [estimates[u] for u in train if estimates.get(u) is not None]
        cost = f", up to {_duration(max(each))} a unit" if each else ""
        lines.append(f"  {variant:<24} seeds {', '.join(map(str, seeds))}: {len(mine) - len(train)} kept, "
                     f"{len(train)} to train{cost}")
    if total > LONG_RUN_S:
        lines.append(f"  this is a long run; {QUICK_PATH}")
    return lines


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def print_plan(study: Study, units: list[Unit], todo: list[Unit], params: Params, prepared_dir,
               device: torch.device, recorded: dict[str, dict], run: str | None = None) -> dict[Unit, float | None]:
    """Estimate the units to train (recorded seconds where a unit ran before, else the probe) and
    print the plan; returns the estimates (the progress lines' first ETA)."""
    probes: dict[str, float] = {}
    estimates: dict[Unit, float | None] = {}
    likely: list[float | None] = []
    details = last_details(run or study.name)
    for unit in todo:
        before = recorded.get(unit.folders[0], {}).get("seconds")  # every folder of a unit records its time
        if isinstance(before, (int, float)):
            estimates[unit] = before
            likely.append(before)
        else:
            estimates[unit], most_likely = estimate_unit(study, unit, params, prepared_dir, device, probes, details)
            likely.append(most_likely)
    whole = sum(likely) if likely and all(v is not None for v in likely) else None
    for line in plan_lines(study, units, todo, estimates, device, whole):
        print(line, file=sys.stderr, flush=True)
    return estimates
