"""A study's training as resumable units: one (variant, seed), or one dedicated group of stacked
seeds, which trains in one grouped network and so is one unit.

Each finished unit's folders (`<variant>/seed<k>/`) land atomically in the study's results folder
as soon as it finishes, and `units.json` there records the key it was trained under: a hash of the
code the unit runs (the engine, its kind's and its method's files: code_digest), the unit's resolved settings and the
content digests of its data, and the SHA-256 of every file the unit wrote. The next run keeps a unit
only when its key matches and every file still has its recorded digest (no file missing or added);
a unit whose files do not verify is retrained, with a line naming it and why. Kept ones are left as
they are (same files). `context.json`, written last, marks the folder complete; it is removed first,
so a killed run never looks finished.

The ledger (`ledger/<run>/`, committed to git) holds a copy of every finished unit without its
weights, and the same index: a run longer than one sitting goes on on another machine from a fresh
clone, where the train stage restores the ledger's units whose key matches instead of training
them again. Weights are left out (the bulk of the bytes; only MLflow's model logging reads them).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from mtlbench.codebase import PACKAGE, digest, import_closure
from mtlbench.fileio import atomic_dir, read_json, write_json
from mtlbench.studies import Study

UNITS_FILE = "units.json"
CONTEXT_FILE = "context.json"
SCRATCH = ".units"  # where units train before they are moved into place; removed at every start



@dataclass(frozen=True)
class Unit:
    variant: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"{self.variant}/seed{self.seeds[0]}" if len(self.seeds) == 1 else \
            f"{self.variant}/seeds {', '.join(map(str, self.seeds))}"

    @property
    def folders(self) -> list[str]:
        return [f"{self.variant}/seed{s}" for s in self.seeds]


# Modules left out of a unit's code digest. Data, not code: every value of theirs a unit uses is in its key already, resolved
# (the protocol's fields in the settings, the variant's spec, the tasks' definitions), so editing one
# study or one protocol re-keys the units that use it, not every unit of every study. Likewise the
# plumbing between params.yaml and training (every value it hands on is in the settings), the
# plan's time estimates, and this bookkeeping of keys, folders and the ledger (no number depends on
# it: editing it must not make a long run's finished units stale).
NOT_IN_UNIT_KEY = ("studies.py", "train/protocols.py", "config.py", "stages/__init__.py", "stages/train.py",
                   "train/plan.py", "train/units.py")
# The plug-in registries import every kind and every method: a unit's key holds its own kind's and
# method's files instead (VariantKind.code), so a new or edited method re-keys only its units.
REGISTRIES = ("mtlbench.train.kinds", "mtlbench.train.methods")


def _files(module: str) -> list[Path]:
    return [p for p in import_closure(module, skip=REGISTRIES) if p.relative_to(PACKAGE).as_posix() not in NOT_IN_UNIT_KEY]


def code_digest(modules: tuple[str, ...] = (), texts: tuple[str, ...] = ()) -> str:
    """SHA-256 over the code one unit runs: the train stage's engine (its import closure without
    the registries, NOT_IN_UNIT_KEY left out), the closures of `modules` (its kind's and method's),
    and `texts` (a factory defined inside a registry, as source)."""
    files = sorted({p for module in ("mtlbench.stages.train", *modules) for p in _files(module)})
    return hashlib.sha256((digest(files) + "".join(texts)).encode()).hexdigest()


def unit_key(study: Study, unit: Unit, settings: dict, code: str, tasks: dict[str, str]) -> str:
    """What a unit's result depends on: code, the study's definition of its variant, the definition
    of each of its tasks (`tasks`: name -> data.tasks.task_identities, label column digest included),
    the resolved settings (protocol, limits, devices, accel, rsn2 and hs options, data digests)."""
    spec = study.variant(unit.variant)
    document = {"code": code, "study": study.name, "architecture": study.architecture, "protocol": study.protocol,
                "variant": repr(spec), "tasks": {t: tasks[t] for t in unit.tasks}, "seeds": list(unit.seeds),
                "settings": settings}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under a unit's folder, by its path inside it."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def damage(folder: Path, recorded: dict[str, str] | None) -> str | None:
    """Why a finished unit's folder cannot be trusted (a file changed, missing or added since it was
    written, or no digests recorded), or None where it verifies."""
    if not recorded:
        return "no file digests recorded"
    if not isinstance(recorded, dict):
        return f"its file digests are recorded as {type(recorded).__name__}, not a mapping of file to digest"
    found = file_digests(folder) if folder.is_dir() else {}
    for name, expected in recorded.items():
        if name not in found:
            return f"{name} is missing"
        if found[name] != expected:
            return f"{name} has changed since it was written (content digest differs)"
    extra = sorted(set(found) - set(recorded))
    return f"{extra[0]} was not written by training" if extra else None


def read_index(out_dir: Path) -> dict[str, dict]:
    """units.json: folder -> {key, seconds, files}; an unreadable index counts as empty (retrain)."""
    path = out_dir / UNITS_FILE
    try:
        index = read_json(path)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        print(f"warning: {path}: unreadable ({type(err).__name__}); every unit of this study trains again", file=sys.stderr)
        return {}
    if not isinstance(index, dict):
        print(f"warning: {path}: expected a mapping of unit folders, got {type(index).__name__}; every unit of "
              "this study trains again", file=sys.stderr)
        return {}
    return index


def start_folder(out_dir: Path, units: list[Unit], keys: dict[Unit, str]) -> tuple[dict[str, dict], list[Unit]]:
    """Make `out_dir` consistent before training: no completion marker, no leftover scratch of a
    killed run, no folders the plan does not hold (a dropped seed or variant), no index entry
    without its folder. Returns the kept index and the units still to train (missing or stale)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CONTEXT_FILE).unlink(missing_ok=True)
    shutil.rmtree(out_dir / SCRATCH, ignore_errors=True)
    for leftover in out_dir.glob(".*"):  # a killed run's temp files (fileio.atomic_path) and folders
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
    wanted = {folder for unit in units for folder in unit.folders}
    for variant_dir in (p for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for seed_dir in [p for p in variant_dir.iterdir()]:
            if f"{variant_dir.name}/{seed_dir.name}" not in wanted:
                shutil.rmtree(seed_dir) if seed_dir.is_dir() else seed_dir.unlink()
        if not any(variant_dir.iterdir()):
            variant_dir.rmdir()
    index = {f: e for f, e in read_index(out_dir).items() if f in wanted and isinstance(e, dict)}
    for unit in units:  # files are verified only where the key would keep the unit
        for folder in unit.folders:
            if folder in index and index[folder].get("key") == keys[unit]:
                problem = damage(out_dir / folder, index[folder].get("files"))
                if problem is not None:
                    print(f"[{out_dir.name}] unit {folder}: {problem}; retraining it", file=sys.stderr, flush=True)
                    del index[folder]
    todo = [u for u in units if any(index.get(f, {}).get("key") != keys[u] for f in u.folders)]
    write_json(out_dir / UNITS_FILE, index)
    return index, todo


def place_unit(out_dir: Path, scratch: Path, unit: Unit, key: str, seconds: float, index: dict[str, dict]) -> None:
    """Move a finished unit's folders from `scratch` into place (each replacing its stale copy in
    one rename) and record them in the index, which is rewritten atomically."""
    for folder in unit.folders:
        dest = out_dir / folder
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            stale = out_dir / SCRATCH / f"stale-{folder.replace('/', '-')}"
            shutil.rmtree(stale, ignore_errors=True)
            dest.rename(stale)
        files = file_digests(scratch / folder)
        (scratch / folder).rename(dest)
        index[folder] = {"key": key, "seconds": round(seconds, 3), "files": files}
    write_json(out_dir / UNITS_FILE, dict(sorted(index.items())))


WEIGHTS = "model_*.pt"  # left out of the ledger


def _small(files: dict[str, str]) -> dict[str, str]:
    return {name: d for name, d in files.items() if not fnmatch.fnmatch(Path(name).name, WEIGHTS)}


def record_in_ledger(ledger: Path, out_dir: Path, unit: Unit, index: dict[str, dict]) -> None:
    """Copy a finished unit's folders, without weights, into the ledger and record them in its
    index (each folder replaced whole; the index rewritten atomically after them)."""
    entries = read_index(ledger)
    for folder in unit.folders:
        with atomic_dir(ledger / folder) as tmp:  # beside it: a killed copy leaves a .name folder (open_ledger)
            for name in _small(index[folder]["files"]):
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(out_dir / folder / name, tmp / name)
        entries[folder] = {**index[folder], "files": _small(index[folder]["files"])}
    write_json(ledger / UNITS_FILE, dict(sorted(entries.items())))


def open_ledger(ledger: Path, out_dir: Path, index: dict[str, dict], keys: dict[Unit, str]) -> None:
    """Make the ledger ready: no leftovers of a copy cut off by a kill (.folders), an index, and
    every unit kept in `out_dir` with its weights recorded (results from before the ledger, or from
    a ledger that was not committed)."""
    ledger.mkdir(parents=True, exist_ok=True)
    for leftover in sorted(ledger.rglob(".*"), reverse=True):
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    entries = read_index(ledger)
    if not (ledger / UNITS_FILE).is_file():
        write_json(ledger / UNITS_FILE, {})
    for unit, key in keys.items():
        kept = [f for f in unit.folders if index.get(f, {}).get("key") == key and "weights" not in index[f]]
        if kept == unit.folders and any(entries.get(f, {}).get("key") != key for f in kept):
            record_in_ledger(ledger, out_dir, unit, index)


def restore_from_ledger(ledger: Path, out_dir: Path, todo: list[Unit], keys: dict[Unit, str],
                        index: dict[str, dict]) -> list[Unit]:
    """The units of `todo` missing from `out_dir` (trained elsewhere) that the ledger holds under
    the same key, every file verified, copied into `out_dir` (without weights) and recorded in the
    index; returns them. A unit that is here but stale or damaged retrains, weights and all."""
    entries = read_index(ledger)
    restored = []
    for unit in todo:
        if any((out_dir / f).exists() for f in unit.folders):
            continue
        found = [entries.get(f) for f in unit.folders]
        if not all(isinstance(e, dict) and e.get("key") == keys[unit] and damage(ledger / f, e.get("files")) is None
                   for f, e in zip(unit.folders, found)):
            continue
        for folder, entry in zip(unit.folders, found):
            shutil.rmtree(out_dir / folder, ignore_errors=True)
            shutil.copytree(ledger / folder, out_dir / folder)
            index[folder] = {**entry, "weights": "not kept (restored from the ledger)"}
        restored.append(unit)
    if restored:
        write_json(out_dir / UNITS_FILE, dict(sorted(index.items())))
    return restored
