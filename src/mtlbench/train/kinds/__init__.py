"""Variant kinds (base.py says what a kind owns): `KINDS` maps each kind name a study's variant
may carry (studies.Variant.kind) to the object that checks, builds, trains and keys it.

Adding a kind: write `train/kinds/<name>.py` with a `VariantKind` subclass, add its line to
`KINDS` (or call `register` from a module of one's own), and give studies a variant of that kind
(`Variant(name, "<kind>", ...)` in studies.py). Evaluation compares every variant with the study's
dedicated one (studies.BASELINE_KIND), whatever its name.

This module is a registry only: it imports every kind, so a unit's key leaves it out and holds
its own kind's file instead (train/units.py), and a new kind re-keys no other unit.
"""

from __future__ import annotations

from mtlbench.train.kinds.base import VariantKind
from mtlbench.train.kinds.dedicated import Dedicated
from mtlbench.train.kinds.hps import HPSKind
from mtlbench.train.kinds.rsn2 import RSN2Kind

KINDS: dict[str, VariantKind] = {kind.name: kind for kind in (Dedicated(), RSN2Kind(), HPSKind())}


def register(kind: VariantKind) -> VariantKind:
    """Make a kind available under its name (a name that exists is an error)."""
    if kind.name in KINDS:
        raise ValueError(f"variant kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    return kind


__all__ = ["KINDS", "VariantKind", "register"]
