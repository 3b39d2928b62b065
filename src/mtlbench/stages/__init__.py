"""Thin entry points, one per dvc.yaml stage: read params, call the library, write declared outs."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from mtlbench.config import ParamsError, load_params
from mtlbench.data.sources import DatasetError
from mtlbench.data.taskspec import TaskSpecError
from mtlbench.errors import ExpectedError
from mtlbench.fileio import is_unwritable, unwritable
from mtlbench.studies import STUDIES, Study


def study_arg(argv: list[str] | None, description: str) -> str:
    """The study a per-study stage runs: --study, or under `dvc repro` the name after "@" in the
    stage DVC runs (DVC_STAGE, e.g. train@mnist_fashion_mlp). dvc.yaml's commands carry no study
    name: a name from params.yaml never passes through a shell, whatever characters it holds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--study", help="a study name from SPEC.md section 4 (default: from DVC_STAGE)")
    name = parser.parse_args(argv).study
    if name is None:
        stage = os.environ.get("DVC_STAGE", "")
        if "@" not in stage:
            raise ParamsError("--study: no study given (outside `dvc repro`, name one: --study <name>)")
        name = stage.split("@", 1)[1]
    return name


def known_study(name: str) -> Study:
    if name not in STUDIES:
        raise ParamsError(f"--study: unknown study {name!r}; allowed values: {', '.join(STUDIES)}")
    return STUDIES[name]


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


__all__ = ["load_params", "study_arg", "known_study", "run_stage"]
