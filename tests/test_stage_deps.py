"""Every dvc.yaml stage declares the whole import closure of its entry module as dependencies, so
a change to any file a stage runs makes DVC rerun it (nothing stale is trusted)."""

import re
from pathlib import Path

import yaml

from mtlbench.codebase import import_closure

ROOT = Path(__file__).resolve().parents[1]


def stages():
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        body = stage.get("do", stage)
        module = re.search(r"python -m (\S+)", body["cmd"]).group(1)
        yield name, module, [d for d in body["deps"] if d.startswith("src/")]


def test_every_stage_depends_on_every_file_it_imports():
    missing = {}
    for name, module, deps in stages():
        for path in import_closure(module):
            relative = path.relative_to(ROOT).as_posix()
            if not any(relative == d or relative.startswith(d.rstrip("/") + "/") for d in deps):
                missing.setdefault(name, []).append(relative)
    assert not missing, f"stages whose deps miss files they import: {missing}"


def test_the_closure_follows_lazy_and_submodule_imports():
    files = {p.relative_to(ROOT / "src" / "mtlbench").as_posix() for p in import_closure("mtlbench.stages.train")}
    assert {"train/methods/pcgrad.py", "train/executors.py", "data/taskspec.py", "config.py", "__init__.py"} <= files
    assert "tracking.py" not in files and "evaluate/__init__.py" not in files


def test_the_train_stage_depends_on_every_run_key_that_changes_what_trains():
    """A run key the train stage does not list would change the units (their keys hold it) without
    DVC seeing the stage as changed: `dvc repro` would say up to date over stale results."""
    from mtlbench.config import RUN_DECLARED, SCHEMA

    train = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]["do"]
    listed = {p.split(".", 1)[1] for p in train["params"] if p.startswith("run.")}
    how_and_where = {"studies", "progress", "executor", "ray_address", "ray_gpus_per_unit"}  # not in a result
    assert set(RUN_DECLARED) <= listed and set(SCHEMA["run"]) - how_and_where <= listed, \
        f"run keys the train stage does not list: {sorted(set(SCHEMA['run']) - how_and_where - listed)}"
