"""Tasks defined by versioned task-spec files (tasks/*.yaml), validated once, here.

Two forms. A CIFAR-100 file (`superclasses` and `tasks`, tasks/cifar100_binary.yaml) cuts binary
tasks from the 100 fine classes by superclass, by a seeded equal split, or draws random labels;
every class-based task must be a true partition (both sides non-empty, every listed superclass
known and listed once), and `label_matrix` turns it into one label column per task (the prepare
stage). A class-group file (`dataset` and `tasks`, e.g. tasks/fashion_groups.yaml) cuts binary or
k-way tasks from the classes of any dataset (mnist digits, fashion, cifar10, cifar100): each task
lists its groups of class names, and task label k means "in group k"; these need no prepared labels
(the dataset's labels are mapped as they load). A fault names the file, the task and what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

KINDS = ("superclass", "equal_split", "random")
N_FINE, N_COARSE = 100, 20
# CIFAR-100's coarse labels in label order (the archive's `meta` file): a task file must list them so.
CIFAR100_SUPERCLASSES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables", "household_electrical_devices",
    "household_furniture", "insects", "large_carnivores", "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes", "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates",
    "people", "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (plain YAML
    keeps the last, which would silently redefine a task)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def load_yaml(text: str):
    return yaml.load(text, Loader=UniqueKeyLoader)


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
class ClassTask:
    """A task of a class-group file: dataset label d has task label class_map[d]."""

    name: str
    class_names: tuple[str, ...]
    class_map: tuple[int, ...]
    is_random = False


@dataclass(frozen=True)
class TaskFile:
    path: str
    superclasses: tuple[str, ...]
    tasks: dict[str, BinaryTask | ClassTask]
    dataset: str = "cifar100"
    labels_prepared: bool = True  # CIFAR-100 form: label matrices from the prepare stage


def _group_task(path, name: str, raw: Any, classes: tuple[str, ...]) -> ClassTask:
    """`groups: [[class, ...], ...]` (k groups: a k-way task) or `ones: [class, ...]` (binary: the
    listed classes against the rest); every class of the dataset in exactly one group."""
    if not isinstance(raw, Mapping) or not ({"groups", "ones"} & set(raw)) or {"groups", "ones"} <= set(raw):
        raise _fault(path, f"task {name}", "expected a mapping with `groups` (a list of class-name lists) or `ones` "
                                           "(a list of class names), and optionally `class_names`")
    extra = sorted(set(raw) - {"groups", "ones", "class_names"})
    if extra:
        raise _fault(path, f"task {name}", f"unknown key {extra[0]!r}; allowed keys: class_names, groups, ones")
    if "ones" in raw:
        ones = raw["ones"] if isinstance(raw["ones"], list) else None
        groups = None if ones is None else [[c for c in classes if c not in ones], ones]
        if ones is not None:
            unknown = [c for c in ones if c not in classes]
            if unknown:
                raise _fault(path, f"task {name}", f"unknown class {unknown[0]!r}; known: {', '.join(classes)}")
    else:
        groups = raw["groups"]
    if not (isinstance(groups, list) and len(groups) >= 2 and all(isinstance(g, list) and g for g in groups)):
        raise _fault(path, f"task {name}", "needs at least two non-empty groups of class names")
    listed = [c for g in groups for c in g]
    unknown = [c for c in listed if c not in classes]
    if unknown:
        raise _fault(path, f"task {name}", f"unknown class {unknown[0]!r}; known: {', '.join(classes)}")
    twice = [c for c in classes if listed.count(c) > 1]
    missing = [c for c in classes if c not in listed]
    if twice or missing:
        what = f"lists class {twice[0]!r} twice" if twice else f"leaves out class {missing[0]!r}"
        raise _fault(path, f"task {name}", f"{what}: the groups must partition the dataset's classes")
    names = raw.get("class_names", [", ".join(g) if len(g) < 3 else f"group {i}" for i, g in enumerate(groups)])
    if not (isinstance(names, list) and len(names) == len(groups) and all(isinstance(n, str) for n in names)):
        raise _fault(path, f"task {name}", f"class_names must be {len(groups)} strings (one per group), got {names!r}")
    _distinct(names, path, name)
    class_map = tuple(next(i for i, g in enumerate(groups) if c in g) for c in classes)
    return ClassTask(name, tuple(names), class_map)


def _load_group_file(path: Path, raw: Mapping) -> TaskFile:
    from mtlbench.data.classes import DATASET_CLASSES

    if set(raw) != {"dataset", "tasks"}:
        raise TaskSpecError(f"{path}: a class-group file has exactly the keys `dataset` and `tasks`")
    dataset = raw["dataset"]
    if dataset not in DATASET_CLASSES:
        raise _fault(path, "dataset", f"{dataset!r} is not known; allowed values: {', '.join(DATASET_CLASSES)}")
    if not isinstance(raw["tasks"], Mapping) or not raw["tasks"]:
        raise _fault(path, "tasks", "expected a mapping of task names to task definitions")
    tasks = {str(n): _group_task(path, str(n), spec, DATASET_CLASSES[dataset]) for n, spec in raw["tasks"].items()}
    _no_two_alike(path, tasks)
    return TaskFile(str(path), (), tasks, dataset=dataset, labels_prepared=False)


def _fault(path: Path | str, where: str, message: str) -> TaskSpecError:
    return TaskSpecError(f"{path}: {where}: {message}")


def _distinct(names: list[str], path, task: str) -> None:
    """Class names label the confusion matrices and reports: two classes of one name would merge there."""
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise _fault(path, f"task {task}", f"class_names lists {twice[0]!r} twice; give each class its own name")


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
    _distinct(names, path, name)
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
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise TaskSpecError(f"{path}: not valid YAML: {err}") from err
    if isinstance(raw, Mapping) and "dataset" in raw:
        return _load_group_file(path, raw)
    if not isinstance(raw, Mapping) or set(raw) != {"superclasses", "tasks"}:
        raise TaskSpecError(f"{path}: expected the keys `superclasses` and `tasks` (CIFAR-100 binary tasks) "
                            "or `dataset` and `tasks` (class groups of any dataset)")
    superclasses = raw["superclasses"]
    if not (isinstance(superclasses, list) and len(superclasses) == N_COARSE and len(set(superclasses)) == N_COARSE):
        raise _fault(path, "superclasses", f"expected the {N_COARSE} distinct CIFAR-100 superclass names in label order")
    moved = next((i for i, (a, b) in enumerate(zip(superclasses, CIFAR100_SUPERCLASSES)) if a != b), None)
    if moved is not None:
        raise _fault(path, "superclasses", f"not CIFAR-100's label order: position {moved} is "
                                           f"{CIFAR100_SUPERCLASSES[moved]!r}, the file has {superclasses[moved]!r} "
                                           "(superclass ids are read by position)")
    if not isinstance(raw["tasks"], Mapping) or not raw["tasks"]:
        raise _fault(path, "tasks", "expected a mapping of task names to task definitions")
    tasks = {str(name): _task(path, str(name), spec, tuple(superclasses)) for name, spec in raw["tasks"].items()}
    _no_two_alike(path, tasks)
    return TaskFile(str(path), tuple(superclasses), tasks)


def _partition(task: BinaryTask | ClassTask) -> tuple:
    """What makes two tasks the same, labels renamed or flipped or not."""
    if isinstance(task, ClassTask):
        first: dict[int, int] = {}
        return ("groups", tuple(first.setdefault(k, len(first)) for k in task.class_map))
    if task.kind == "superclass":
        other = tuple(i for i in range(N_COARSE) if i not in task.ones)
        return ("superclass", min(task.ones, other))
    return (task.kind, task.seed)


def _no_two_alike(path, tasks: dict) -> None:
    seen: dict[tuple, str] = {}
    for name, task in tasks.items():
        key = _partition(task)
        if key in seen:
            raise _fault(path, f"task {name}", f"defines the same task as {seen[key]} (the same partition"
                                               f"{' or seed' if key[0] in ('equal_split', 'random') else ''}); "
                                               "two copies would count one task twice")
        seen[key] = name


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
