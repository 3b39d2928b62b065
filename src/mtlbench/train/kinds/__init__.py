"""Variant kinds (base.py says what a kind owns): `KINDS` maps each kind name a study's variant
may carry (studies.Variant.kind) to the object that checks, builds, trains and keys it.

Adding a kind: write `train/kinds/<name>.py` with a `VariantKind` subclass, add its line to
`KINDS` (or call `register` from a module of one's own), and give studies a variant of that kind
(`Variant(name, "<kind>", ...)` in studies.py). Evaluation compares every variant with the study's
dedicated one (studies.BASELINE_KIND), whatever its name.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mtlbench.config import Params, ParamsError
from mtlbench.data.tasks import TaskData, load_tasks
from mtlbench.studies import Study
from mtlbench.train.accel import configure_backends
from mtlbench.train.kinds.base import VariantKind
from mtlbench.train.kinds.common import study_accel
from mtlbench.train.kinds.dedicated import Dedicated
from mtlbench.train.kinds.hps import HPSKind
from mtlbench.train.kinds.rsn2 import RSN2Kind
from mtlbench.train.units import Unit

KINDS: dict[str, VariantKind] = {kind.name: kind for kind in (Dedicated(), RSN2Kind(), HPSKind())}


def register(kind: VariantKind) -> VariantKind:
    """Make a kind available under its name (a name that exists is an error)."""
    if kind.name in KINDS:
        raise ValueError(f"variant kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    return kind


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
    loaded = load_tasks([specs[t] for t in needed], prepared_dir, tasks_dir, params.run.train_limit, device)
    return {t.spec.name: t for t in loaded}


def train_unit(study: Study, unit: Unit, params: Params, tasks: dict[str, TaskData], out: Path) -> None:
    """Train one unit into `out/<variant>/seed<k>/` with its variant's kind."""
    kind = KINDS[study.variant_kind(unit.variant)]
    kind.train(study, unit.variant, [tasks[t] for t in unit.tasks], unit.seeds, params, out / unit.variant)


__all__ = ["KINDS", "VariantKind", "load_unit_tasks", "register", "resolve_device", "train_unit"]
