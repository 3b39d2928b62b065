"""What a variant kind is: how variants of one kind (dedicated, RSN2, HPS, ...) are checked,
built, trained, cut into resumable units and keyed. One file per kind, registered in KINDS
(train/kinds/__init__.py), as the multitask methods are; train/runner.py only plans and calls them.

A kind owns:
- `check(study, variant, tasks, params)` and `check_plan(study, variants, params)`: what it refuses
  before any data is loaded (ParamsError), one variant at a time and all of its variants together;
- `context(study, variants, params)`: its own resolved settings for the run context (RSN2's);
- `tiny_outputs(study, variant, specs, shapes, inputs)`: its network built as `train` builds it,
  run on a tiny input (check_builds steps it backward: a network that cannot be built or trained
  fails in check_params, not after minutes of training);
- `build_tiny(study, variant, specs, shapes)` and `store_spec(study, in_shape, n_classes)`: that
  network, and what models/store.py saves to rebuild it (tests/test_kinds.py builds, steps, saves
  and reloads every study x variant of the catalogue);
- `train(study, variant, tasks, seeds, params, out_dir)`: fit, predict the test sets and write
  `seed<k>/` (common.write_seed) for each seed;
- `units(variant, tasks, seeds, stacked)`: the resumable units its seeds train in;
- `settings(context)`: the part of the resolved run context its results depend on (with the
  variant's spec, task identities, data digests and the training code, the unit key), and
  `code(study, variant)`: the modules a unit of it runs beyond the engine (its own file; HPS adds
  its method's), so a new kind or method re-keys no other unit;
- `joint` and `budget(summaries)`: whether one fit trains all of a seed's tasks and how its
  parameters count, written into each seed's run.json (`facts`): evaluation reads them there and
  never decides by a kind's name;
- `fits(study, unit)` and `backward_passes(study, variant, n_tasks)`: the plan's cost model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mtlbench.config import Params
from mtlbench.data.tasks import TaskData
from mtlbench.studies import Study
from mtlbench.train.units import Unit

# run-context entries no unit depends on (the run's times; run.tasks: each unit's tasks are in its key)
NOT_RESULTS = frozenset({"started_at", "ended_at", "tasks"})
# run-context entries that belong to one kind: a unit of another kind leaves them out of its key
KIND_OWNED = frozenset({"rsn2", "stack_seeds"})


class VariantKind:
    name = ""
    owns: frozenset[str] = frozenset()  # the KIND_OWNED context entries this kind's results depend on

    def check(self, study: Study, variant: str, tasks: tuple[str, ...], params: Params) -> None:
        """Refuse (ParamsError) what cannot train, before any data is loaded."""

    def check_plan(self, study: Study, variants: list[str], params: Params) -> None:
        """Refuse what this kind's planned variants of a study cannot be together."""

    def context(self, study: Study, variants: list[str], params: Params) -> dict:
        """This kind's resolved settings for the run context (`variants`: the study's of this kind)."""
        return {}

    def build_tiny(self, study: Study, variant: str, specs: list, shapes: list) -> torch.nn.Module:
        raise NotImplementedError

    def tiny_outputs(self, study: Study, variant: str, specs: list, shapes: list, inputs: list[torch.Tensor]):
        raise NotImplementedError

    def store_spec(self, study: Study, in_shape: tuple, n_classes) -> dict | None:
        """What models/store.py saves beside the weights to rebuild the network (None: the file
        describes itself, as RSN2's packed form does)."""
        return None

    def train(self, study: Study, variant: str, tasks: list[TaskData], seeds: tuple[int, ...], params: Params,
              out_dir: Path) -> None:
        raise NotImplementedError

    def units(self, variant: str, tasks: tuple[str, ...], seeds: tuple[int, ...], stacked: bool) -> list[Unit]:
        """One unit per seed (a kind that trains seeds together overrides this)."""
        return [Unit(variant, tasks, (seed,)) for seed in seeds]

    joint = True  # one fit trains all of a unit's tasks (Dedicated: a network per task)

    def budget(self, summaries: dict[str, dict]) -> int:
        """The parameters of what a seed of this kind trained for its tasks (`summaries`: each task's
        fit summary): by default one network for all of them, counted as saved (RSN2: packed)."""
        return int(next(iter(summaries.values()))["params_packed"])

    def facts(self, study: Study, variant: str, summaries: dict[str, dict]) -> dict:
        """What a seed's run.json says of its kind, so that evaluation reads it rather than deciding by
        the kind's name: the kind, whether one fit trained every task, the parameter budget."""
        return {"name": self.name, "joint": self.joint, "budget": self.budget(summaries)}

    def fits(self, study: Study, unit: Unit) -> list[tuple[tuple[str, ...], int]]:
        """How a unit trains, for the plan's time estimate: (the tasks of each fit, its phases).
        By default one fit of all the unit's tasks in one phase."""
        return [(unit.tasks, 1)]

    def backward_passes(self, study: Study, variant: str, n_tasks: int) -> int:
        """Backward passes a training step takes through the network (the plan's estimate)."""
        return 1

    def code(self, study: Study, variant: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(modules, source texts) of the code a unit of `variant` runs beyond the engine, for its
        key (train/units.code_digest): this kind's own module, by default."""
        return (type(self).__module__,), ()

    def settings(self, context: dict) -> dict:
        """The resolved run context without what no result of this kind depends on."""
        dropped = NOT_RESULTS | (KIND_OWNED - self.owns)
        return {k: v for k, v in context.items() if k not in dropped}
