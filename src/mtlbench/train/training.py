"""One unit's work, whatever its kind: the device, the unit's tasks on it, its kind's training.

Kept apart from the kinds' registry (train/kinds/__init__.py): this is code every unit runs, and
so part of every unit's key; the registry is not (train/units.py).
"""

from __future__ import annotations

from pathlib import Path

import torch

from mtlbench.config import Params, ParamsError
from mtlbench.data.tasks import TaskData, load_tasks, rows_for_seed
from mtlbench.studies import Study
from mtlbench.train.accel import configure_backends
from mtlbench.train.kinds import KINDS
from mtlbench.train.kinds.common import study_accel
from mtlbench.train.units import Unit


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise ParamsError("run.device: cuda was requested but torch sees no CUDA device; allowed here: auto, cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def load_unit_tasks(study: Study, units: list[Unit], params: Params, prepared_dir: Path, tasks_dir: Path,
                    root: Path = Path(".")) -> dict[str, TaskData]:
    """The tasks the units train on, on the run's device (backends configured for the study)."""
    device = resolve_device(params.run.device)
    configure_backends(study_accel(study, params, device))
    specs = study.specs(root)
    needed = list(dict.fromkeys(t for unit in units for t in unit.tasks))
    limit = None if params.run.rows_per_seed else params.run.train_limit  # per seed: cut in train_unit
    loaded = load_tasks([specs[t] for t in needed], prepared_dir, tasks_dir, limit, device)
    return {t.spec.name: t for t in loaded}


def train_unit(study: Study, unit: Unit, params: Params, tasks: dict[str, TaskData], out: Path) -> None:
    """Train one unit into `out/<variant>/seed<k>/` with its variant's kind."""
    kind = KINDS[study.variant_kind(unit.variant)]
    kind.train(study, unit.variant, unit_tasks(unit, params, tasks), unit.seeds, params, out / unit.variant)


def unit_tasks(unit: Unit, params: Params, tasks: dict[str, TaskData]) -> list[TaskData]:
    """The unit's tasks as it trains on them: cut to its seed's rows where the run draws them per
    seed (a unit has one seed then: kinds/common.stack_seeds does not stack)."""
    chosen = [tasks[t] for t in unit.tasks]
    if not params.run.rows_per_seed:
        return chosen
    (seed,) = unit.seeds
    return rows_for_seed(chosen, params.run.train_limit, seed)
