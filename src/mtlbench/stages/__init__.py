"""Thin entry points, one per dvc.yaml stage: read params, call the library, write declared outs."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from mtlbench.config import Params, ParamsError, load_params
from mtlbench.data.sources import DatasetError
from mtlbench.data.taskspec import TaskSpecError
from mtlbench.errors import ExpectedError
from mtlbench.fileio import is_unwritable, unwritable
from mtlbench.studies import STUDIES, Study


def run_arg(argv: list[str] | None, description: str) -> str:
    """The run a per-run stage runs: --run, or under `dvc repro` the name after "@" in the stage DVC
    runs (DVC_STAGE, e.g. train@mnist_fashion_mlp). dvc.yaml's commands carry no run name: a name
    from params.yaml never passes through a shell, whatever characters it holds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--run", "--study", dest="run",
                        help="a run listed in run.studies: a catalogue study, or a run declared under runs: "
                             "(default: from DVC_STAGE)")
    name = parser.parse_args(argv).run
    if name is None:
        stage = os.environ.get("DVC_STAGE", "")
        if "@" not in stage:
            raise ParamsError("--run: no run given (outside `dvc repro`, name one: --run <name>)")
        name = stage.split("@", 1)[1]
    return name


def known_run(params: Params, name: str) -> tuple[Study, Params]:
    """A run's study and the params it trains under (Params.for_run)."""
    if name not in params.runs:
        raise ParamsError(f"--run: unknown run {name!r}; allowed values: the catalogue studies "
                          f"({', '.join(STUDIES)}) and the runs declared under runs: in params.yaml")
    return STUDIES[params.study_of(name)], params.for_run(name)


def run_stage(body: Callable[[], None]) -> None:
    """Run a stage body; expected failures (bad params, bad data, an output folder that cannot be
    written) end with one clear line, exit 2."""
    try:
        body()
    except (ParamsError, DatasetError, TaskSpecError, ExpectedError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as err:
        if not is_unwritable(err):
            raise
        print(f"error: {unwritable(err)}", file=sys.stderr)
        raise SystemExit(2) from None


__all__ = ["load_params", "run_arg", "known_run", "run_stage"]
