"""Thin entry points, one per dvc.yaml stage: read params, call the library, write declared outs."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from mtlbench.config import ParamsError, load_params
from mtlbench.data.sources import DatasetError
from mtlbench.data.taskspec import TaskSpecError
from mtlbench.errors import ExpectedError
from mtlbench.fileio import is_unwritable, unwritable
from mtlbench.studies import STUDIES, Study


def study_arg(argv: list[str] | None, description: str) -> str:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--study", required=True, help="a study name from SPEC.md section 4")
    return parser.parse_args(argv).study


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
