"""Tasks as device-resident tensors: images scaled to [0, 1] and integer labels (or, for a
reconstruction task, the images themselves as targets).

Training data is loaded once onto the training device; batches are index slices of these tensors,
never assembled per sample in Python.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mtlbench.data.prepared import load_arrays, load_provenance, prepared_paths
from mtlbench.data.sources import DatasetError
from mtlbench.data.taskspec import random_labels
from mtlbench.studies import TaskSpec


@dataclass(frozen=True)
class TensorSet:
    """Aligned inputs and targets: row i of every tensor belongs to the same training example.

    One input and one target for a dedicated model; one of each per task for a multitask model
    whose tasks are trained on aligned rows (as Keras' multi-input `fit` does).
    """

    inputs: tuple[torch.Tensor, ...]
    targets: tuple[torch.Tensor, ...]

    def __post_init__(self) -> None:
        sizes = {len(t) for t in (*self.inputs, *self.targets)}
        if len(sizes) != 1:
            raise ValueError(f"inputs and targets differ in length: {sorted(sizes)}")

    def __len__(self) -> int:
        return len(self.targets[0])

    def rows(self, index: torch.Tensor | slice) -> "TensorSet":
        return TensorSet(tuple(x[index] for x in self.inputs), tuple(y[index] for y in self.targets))

    def split_validation(self, fraction: float) -> tuple["TensorSet", "TensorSet"]:
        """Keras `validation_split`: the LAST `fraction` of the rows, taken before any shuffling."""
        n_train = int(math.floor(len(self) * (1.0 - fraction)))  # Keras' own arithmetic
        if n_train < 1 or n_train == len(self):
            raise ValueError(f"validation split of {fraction} leaves no rows on one side of {len(self)}")
        return self.rows(slice(0, n_train)), self.rows(slice(n_train, None))


@dataclass(frozen=True)
class TaskData:
    spec: TaskSpec
    train: TensorSet
    test: TensorSet
    official_data: bool | None = None  # the dataset's files matched the official checksums (None: unknown)


def to_unit_float(images: torch.Tensor, resize: int | None = None) -> torch.Tensor:
    """uint8 NCHW -> float32 in [0, 1], optionally resized as tf.image.resize does by default
    (bilinear, half-pixel centres, no antialiasing), in chunks to bound peak memory."""
    images = images.to(torch.float32).div_(255.0)
    if resize is None or images.shape[-2:] == (resize, resize):
        return images
    return torch.cat([
        F.interpolate(chunk, size=(resize, resize), mode="bilinear", align_corners=False, antialias=False)
        for chunk in images.split(4096)
    ])


def label_paths(tasks_dir: Path, name: str) -> tuple[Path, Path]:
    return tasks_dir / f"{name}.npz", tasks_dir / f"{name}.json"


def _label_columns(tasks_dir: Path, name: str) -> dict[str, np.ndarray]:
    npz_path, _ = label_paths(tasks_dir, name)
    if not npz_path.is_file():
        raise DatasetError(f"{npz_path}: no task labels; run the prepare stage first (`dvc repro prepare`)")
    with np.load(npz_path) as data:
        return {"names": data["names"], "y_train": data["y_train"], "y_test": data["y_test"]}


def task_identities(specs: dict[str, TaskSpec], tasks_dir: Path) -> dict[str, str]:
    """What each task's labels depend on beyond the dataset's digest: its definition, and for a task
    whose labels come from a label matrix, the SHA-256 of its column there. Units are keyed by them,
    so a changed task retrains exactly the units that train it."""
    matrices: dict[str, dict[str, np.ndarray]] = {}
    identities = {}
    for name, spec in specs.items():
        identities[name] = repr(spec)
        if spec.labels is None or not label_paths(tasks_dir, spec.labels)[0].is_file():
            continue
        if spec.labels not in matrices:
            matrices[spec.labels] = _label_columns(tasks_dir, spec.labels)
        matrix = matrices[spec.labels]
        names = matrix["names"].tolist()
        if name in names:
            digest = hashlib.sha256()
            for split in ("y_train", "y_test"):
                digest.update(np.ascontiguousarray(matrix[split][:, names.index(name)]).tobytes())
            identities[name] += f" labels:{digest.hexdigest()}"
    return identities


def load_tasks(specs: list[TaskSpec], prepared_dir: Path, tasks_dir: Path, train_limit: int | None,
               device: torch.device) -> list[TaskData]:
    """Each task's train (first `train_limit` rows when set) and test sets, on `device`. Tasks on the
    same images share one image tensor (a hundred CIFAR-100 tasks hold one copy of the images)."""
    arrays: dict[str, dict[str, np.ndarray]] = {}
    images: dict[tuple[str, int | None], tuple[torch.Tensor, torch.Tensor]] = {}
    labels: dict[str, dict[str, np.ndarray]] = {}
    official: dict[str, bool | None] = {}
    loaded = []
    for spec in specs:
        if spec.dataset not in arrays:  # (setdefault would load the arrays again for every task)
            arrays[spec.dataset] = load_arrays(prepared_dir, spec.dataset)
            official[spec.dataset] = official_files(prepared_dir, spec.dataset)
        data = arrays[spec.dataset]
        n = len(data["y_train"]) if train_limit is None else min(train_limit, len(data["y_train"]))
        key = (spec.dataset, spec.resize)
        if key not in images:
            images[key] = tuple(to_unit_float(torch.from_numpy(x).to(device), spec.resize)
                                for x in (data["x_train"][:n], data["x_test"]))
        x_train, x_test = images[key]
        if not spec.is_classification:  # reconstruction: the target is the input itself (no copy)
            loaded.append(TaskData(spec, TensorSet((x_train,), (x_train,)), TensorSet((x_test,), (x_test,)),
                                   official[spec.dataset]))
            continue
        y_train, y_test = _task_labels(spec, data, tasks_dir, labels)
        y_train, y_test = (torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)).to(device) for y in (y_train[:n], y_test))
        loaded.append(TaskData(spec, TensorSet((x_train,), (y_train,)), TensorSet((x_test,), (y_test,)),
                               official[spec.dataset]))
    return loaded


def seed_rows(dataset: str, available: int, limit: int, seed: int) -> torch.Tensor | None:
    """The training rows (ascending) a seed trains on where a run keeps `limit` of a dataset's
    `available` rows and draws them per seed (run.train_sample: per_seed), so that the seeds'
    spread holds the sampling of the training set, not only initialisation and order: the first
    `limit` of one permutation drawn from (dataset, seed). Every variant of a seed gets the same
    rows (the comparison stays paired), tasks on one dataset the same rows (aligned), and a smaller
    limit's rows are part of a larger one's (nested, as a learning curve wants). None where the
    limit keeps every row. Integer draws on the CPU generator: the same rows on every machine."""
    if limit >= available:
        return None
    key = int.from_bytes(hashlib.sha256(f"{dataset} seed {seed}".encode()).digest()[:8], "little") >> 1
    order = torch.randperm(available, generator=torch.Generator().manual_seed(key))
    return order[:limit].sort().values


def rows_for_seed(tasks: list[TaskData], limit: int, seed: int) -> list[TaskData]:
    """The tasks with their training sets cut to the rows `seed` draws (seed_rows), test sets whole.
    A tensor several tasks share (one image tensor, a reconstruction's input and target) is cut
    once and stays shared."""
    cuts: dict[int, torch.Tensor] = {}

    def cut(tensor: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        if id(tensor) not in cuts:
            cuts[id(tensor)] = tensor[rows.to(tensor.device)]
        return cuts[id(tensor)]

    chosen = []
    for task in tasks:
        rows = seed_rows(task.spec.dataset, len(task.train), limit, seed)
        if rows is None:
            chosen.append(task)
            continue
        train = TensorSet(tuple(cut(x, rows) for x in task.train.inputs), tuple(cut(y, rows) for y in task.train.targets))
        chosen.append(replace(task, train=train))
    return chosen


def official_files(prepared_dir: Path, dataset: str) -> bool | None:
    """Whether the prepared dataset came from files with the official checksums (its provenance
    record says; None where there is none, e.g. arrays written by a test)."""
    record = prepared_paths(prepared_dir, dataset)[1]
    if not record.is_file():
        return None
    return all(f["matches"] for f in load_provenance(prepared_dir, dataset)["files"].values())


def _task_labels(spec: TaskSpec, data: dict[str, np.ndarray], tasks_dir: Path,
                 matrices: dict[str, dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """A classification task's full train and test labels, by the rule TaskSpec documents."""
    if spec.labels is not None:
        if spec.labels not in matrices:
            matrices[spec.labels] = _label_columns(tasks_dir, spec.labels)
        matrix = matrices[spec.labels]
        names = matrix["names"].tolist()
        if spec.name not in names:
            raise DatasetError(f"{label_paths(tasks_dir, spec.labels)[0]}: no labels for task {spec.name}; "
                               "run the prepare stage again")
        column = names.index(spec.name)
        return matrix["y_train"][:, column], matrix["y_test"][:, column]
    if spec.random_seed is not None:
        return tuple(random_labels(spec.random_seed, len(data[f"y_{split}"]), split) for split in ("train", "test"))
    if spec.class_map is not None:
        mapping = np.asarray(spec.class_map, dtype=np.int64)
        return mapping[data["y_train"]], mapping[data["y_test"]]
    return data["y_train"], data["y_test"]
