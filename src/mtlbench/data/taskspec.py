"""Binary tasks cut from CIFAR-100, defined by a versioned task-spec file (tasks/cifar100_binary.yaml).

The file is validated once, here: every class-based task must be a true partition of the 100 fine
classes (both sides non-empty, every listed superclass known and listed once); a fault names the
task and what is wrong. `label_matrix` turns the spec into one label column per task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

KINDS = ("superclass", "equal_split", "random")
N_FINE, N_COARSE = 100, 20


class TaskSpecError(ValueError):
    """A task-spec file the pipeline cannot accept."""


@dataclass(frozen=True)
class BinaryTask:
    name: str
    kind: str
    class_names: tuple[str, str]
    ones: tuple[int, ...] = ()  # superclass ids labelled 1 (kind superclass)
    seed: int | None = None  # equal_split and random

    @property
    def is_random(self) -> bool:
        return self.kind == "random"


@dataclass(frozen=True)
class TaskFile:
    path: str
    superclasses: tuple[str, ...]
    tasks: dict[str, BinaryTask]


def _fault(path: Path | str, where: str, message: str) -> TaskSpecError:
    return TaskSpecError(f"{path}: {where}: {message}")


def _task(path, name: str, raw: Any, superclasses: tuple[str, ...]) -> BinaryTask:
    if not isinstance(raw, Mapping):
        raise _fault(path, f"task {name}", "expected a mapping with `kind`")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise _fault(path, f"task {name}", f"kind {kind!r} is not allowed; allowed values: {', '.join(KINDS)}")
    allowed = {"kind", "class_names"} | ({"ones"} if kind == "superclass" else {"seed"})
    extra = sorted(set(raw) - allowed)
    if extra:
        raise _fault(path, f"task {name}", f"unknown key {extra[0]!r} for kind {kind}; allowed keys: {', '.join(sorted(allowed))}")
    names = raw.get("class_names", ["0", "1"])
    if not (isinstance(names, list) and len(names) == 2 and all(isinstance(n, str) for n in names)):
        raise _fault(path, f"task {name}", f"class_names must be two strings, got {names!r}")
    if kind == "superclass":
        ones = raw.get("ones")
        if not isinstance(ones, list) or not ones:
            raise _fault(path, f"task {name}", "a superclass task needs a non-empty list `ones`")
        unknown = [s for s in ones if s not in superclasses]
        if unknown:
            raise _fault(path, f"task {name}", f"unknown superclass {unknown[0]!r}; known: {', '.join(superclasses)}")
        if len(set(ones)) != len(ones):
            raise _fault(path, f"task {name}", "lists a superclass twice, so it is not a partition")
        if len(ones) == len(superclasses):
            raise _fault(path, f"task {name}", "puts every superclass on side 1, so it is not a partition")
        return BinaryTask(name, kind, tuple(names), ones=tuple(sorted(superclasses.index(s) for s in ones)))
    seed = raw.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _fault(path, f"task {name}", f"a {kind} task needs a non-negative integer `seed`, got {seed!r}")
    return BinaryTask(name, kind, tuple(names), seed=seed)


def load_task_file(path: Path | str) -> TaskFile:
    path = Path(path)
    if not path.is_file():
        raise TaskSpecError(f"{path}: task-spec file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise TaskSpecError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, Mapping) or set(raw) != {"superclasses", "tasks"}:
        raise TaskSpecError(f"{path}: expected exactly the keys `superclasses` and `tasks`")
    superclasses = raw["superclasses"]
    if not (isinstance(superclasses, list) and len(superclasses) == N_COARSE and len(set(superclasses)) == N_COARSE):
        raise _fault(path, "superclasses", f"expected the {N_COARSE} distinct CIFAR-100 superclass names in label order")
    if not isinstance(raw["tasks"], Mapping) or not raw["tasks"]:
        raise _fault(path, "tasks", "expected a mapping of task names to task definitions")
    tasks = {str(name): _task(path, str(name), spec, tuple(superclasses)) for name, spec in raw["tasks"].items()}
    return TaskFile(str(path), tuple(superclasses), tasks)


def fine_partition(task: BinaryTask, fine_to_coarse: np.ndarray) -> np.ndarray:
    """Label (0/1) of each of the 100 fine classes for a class-based task."""
    if task.kind == "superclass":
        return np.isin(fine_to_coarse, task.ones).astype(np.uint8)
    order = np.random.default_rng(task.seed).permutation(N_FINE)
    labels = np.zeros(N_FINE, dtype=np.uint8)
    labels[order[N_FINE // 2 :]] = 1
    return labels


def fine_to_coarse_map(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Each fine class's superclass, read off the data (CIFAR-100 nests them: one superclass each)."""
    mapping = np.full(N_FINE, -1, dtype=np.int64)
    for f, c in zip(fine.tolist(), coarse.tolist()):
        if mapping[f] not in (-1, c):
            raise TaskSpecError(f"fine class {f} appears under superclasses {mapping[f]} and {c}; not CIFAR-100 labels")
        mapping[f] = c
    return mapping


def random_labels(seed: int, n: int, split: str) -> np.ndarray:
    """Binary labels drawn per image, independent of the image, with the split's name folded into
    the stream so train and test labels are independent."""
    stream = np.random.default_rng([seed, {"train": 0, "test": 1}[split]])
    return stream.integers(0, 2, size=n, dtype=np.uint8)


def label_matrix(tasks: list[BinaryTask], fine: np.ndarray, fine_to_coarse: np.ndarray, split: str) -> np.ndarray:
    """[images, tasks] uint8 labels (random tasks: `random_labels`)."""
    columns = []
    for task in tasks:
        if task.is_random:
            columns.append(random_labels(task.seed, len(fine), split))
        else:
            partition = fine_partition(task, fine_to_coarse)
            if partition.min() == partition.max():
                raise TaskSpecError(f"task {task.name}: every fine class has label {partition[0]}; not a partition")
            columns.append(partition[fine])
    return np.stack(columns, axis=1) if columns else np.zeros((len(fine), 0), dtype=np.uint8)


def prepare_task_labels(study_name: str, tasks: list[BinaryTask], prepared_dir: Path, out_dir: Path,
                        spec_path: str) -> dict:
    """data/tasks/<study>.npz (names, y_train, y_test: one uint8 column per task) and a .json
    record (kind, seed and label balance per task); returns the record."""
    from mtlbench.data.prepared import load_arrays
    from mtlbench.fileio import atomic_path, write_json

    data = load_arrays(prepared_dir, "cifar100")
    mapping = fine_to_coarse_map(np.concatenate([data["y_train"], data["y_test"]]),
                                 np.concatenate([data["y_train_coarse"], data["y_test_coarse"]]))
    unseen = np.flatnonzero(mapping < 0)
    if len(unseen):  # only in tiny test archives: such a class has no image, any side will do
        mapping[unseen] = 0
    y_train = label_matrix(tasks, data["y_train"], mapping, "train")
    y_test = label_matrix(tasks, data["y_test"], mapping, "test")
    with atomic_path(out_dir / f"{study_name}.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, names=np.array([t.name for t in tasks]), y_train=y_train, y_test=y_test)
    record = {
        "study": study_name,
        "task_file": spec_path,
        "tasks": {
            t.name: {"kind": t.kind, "seed": t.seed, "class_names": list(t.class_names),
                     "ones_fraction_train": float(y_train[:, i].mean()), "ones_fraction_test": float(y_test[:, i].mean())}
            for i, t in enumerate(tasks)
        },
    }
    write_json(out_dir / f"{study_name}.json", record)
    return record
