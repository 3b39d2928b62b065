"""The experiment catalogue of SPEC.md section 4, as data.

A study names its tasks, the architecture its models use and the protocol that trains them. Model
variants (`dedicated`, and the multitask ones added by later work) are listed per study so that the
pipeline, the metrics file and MLflow all agree on what a study contains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


CLASSIFICATION, RECONSTRUCTION = "classification", "reconstruction"


@dataclass(frozen=True)
class TaskSpec:
    """One task: which prepared dataset it reads and what it predicts.

    A classification task's labels come from, in this order: a label matrix under data/tasks
    (`labels`), a per-image draw independent of the image (`random_seed`), the dataset's labels
    mapped through `class_map`, or the dataset's own labels. A reconstruction task predicts its
    input image (n_classes 0; loss MSE, metrics MSE and PSNR).
    """

    name: str
    dataset: str
    n_classes: int
    class_names: tuple[str, ...]
    resize: int | None = None  # square side the images are resized to (bilinear), None: as stored
    labels: str | None = None  # a label matrix under data/tasks (column = task name)
    kind: str = CLASSIFICATION
    class_map: tuple[int, ...] | None = None  # task label of each dataset label
    random_seed: int | None = None  # set for random-label tasks (their labels say nothing about the image)

    @property
    def is_random(self) -> bool:
        return self.random_seed is not None

    @property
    def is_classification(self) -> bool:
        return self.kind == CLASSIFICATION


DIGIT_NAMES = tuple(str(i) for i in range(10))
FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_ANIMALS = ("bird", "cat", "deer", "dog", "frog", "horse")
CIFAR10_AUX_RANDOM_SEED = 7001  # the cifar10_aux random task's labels, the same in every run

TASKS: dict[str, TaskSpec] = {
    "digits": TaskSpec("digits", "digits", 10, DIGIT_NAMES),
    "fashion": TaskSpec("fashion", "fashion", 10, FASHION_NAMES),
    "cifar10_28": TaskSpec("cifar10_28", "cifar10", 10, CIFAR10_NAMES, resize=28),
    "cifar10": TaskSpec("cifar10", "cifar10", 10, CIFAR10_NAMES),
    "animal": TaskSpec("animal", "cifar10", 2, ("non-animal", "animal"),
                       class_map=tuple(int(name in CIFAR10_ANIMALS) for name in CIFAR10_NAMES)),
    "reconstruction": TaskSpec("reconstruction", "cifar10", 0, (), kind=RECONSTRUCTION),
    "random": TaskSpec("random", "cifar10", 2, ("0", "1"), random_seed=CIFAR10_AUX_RANDOM_SEED),
}


@dataclass(frozen=True)
class RSN2Spec:
    """How a study computes its RSN2 masks (SPEC.md section 4)."""

    prune_percent: int  # p: each task keeps (100 - p)% of every layer's positions
    mask_sample: int | None = None  # masks from the first N training rows of each task; None: all
    mask_loss_weights: tuple[float, ...] | None = None  # task loss weights for mask computation only
    # Training phases, each the task loss weights of one full keras-faithful fit with a fresh
    # optimizer; tasks weighted 0 in a phase see zero input. None: one joint phase, all weights 1.
    phases: tuple[tuple[float, ...], ...] | None = None


@dataclass(frozen=True)
class HPSVariant:
    """A hard-parameter-sharing model: its tasks and how their losses combine (train/weighting.py
    scheme; `weights` for the fixed scheme)."""

    tasks: tuple[str, ...]
    scheme: str
    weights: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Study:
    name: str
    tasks: tuple[str, ...]
    architecture: str
    protocol: str
    variants: tuple[str, ...]
    rsn2: RSN2Spec | None = None
    hps: dict[str, HPSVariant] = field(default_factory=dict)  # hard-parameter-sharing variants by name
    dedicated_tasks: tuple[str, ...] | None = None  # None: every task of the study
    task_file: str | None = None  # a task-spec file (tasks/<study>.yaml) defining the tasks
    headline: tuple[str, ...] | None = None  # tasks shown one by one in reports and plots; None: all

    def variant_kind(self, variant: str) -> str:
        return "hps" if variant in self.hps else variant

    def tasks_of(self, variant: str) -> tuple[str, ...]:
        if variant in self.hps:
            return self.hps[variant].tasks
        if variant == "dedicated" and self.dedicated_tasks is not None:
            return self.dedicated_tasks
        return self.tasks

    @property
    def datasets(self) -> tuple[str, ...]:
        if self.task_file is not None:
            return ("cifar100",)
        return tuple(dict.fromkeys(TASKS[t].dataset for t in self.tasks))

    def task_definitions(self, root: Path = Path(".")) -> dict:
        """The study's tasks as its task-spec file defines them (name -> taskspec.BinaryTask), read
        and validated; every task the study uses must be defined."""
        from mtlbench.data.taskspec import TaskSpecError, load_task_file

        defined = load_task_file(root / self.task_file).tasks
        missing = [t for t in self.tasks if t not in defined]
        if missing:
            raise TaskSpecError(f"{self.task_file}: task {missing[0]} is used by study {self.name} but not defined")
        return {t: defined[t] for t in self.tasks}

    def specs(self, root: Path = Path(".")) -> dict[str, TaskSpec]:
        """Every task of the study by name; a study with a task-spec file reads (and validates) it."""
        if self.task_file is None:
            return {t: TASKS[t] for t in self.tasks}
        return {name: TaskSpec(name, "cifar100", 2, task.class_names, labels=self.name,
                               random_seed=task.seed if task.is_random else None)
                for name, task in self.task_definitions(root).items()}


def _cifar100_binary() -> Study:
    """SPEC.md section 4: dedicated T1..T5, HPS over 3, 5 and 10 real tasks, and real+random mixes
    combined by the sum and by the mean of the task losses."""
    real = tuple(f"T{i}" for i in range(1, 91))
    rand = tuple(f"R{i}" for i in range(1, 51))
    hps = {f"hps{n}": HPSVariant(real[:n], "sum") for n in (3, 5, 10)}
    for n_real, n_random in ((10, 10), (20, 10), (40, 10), (90, 10), (80, 20), (60, 40), (50, 50)):
        for loss in ("sum", "mean"):
            hps[f"mix{n_real}_{n_random}_{loss}"] = HPSVariant(real[:n_real] + rand[:n_random], loss)
    return Study("cifar100_binary", real + rand, "cifar_shared", "hs", ("dedicated", *hps), hps=hps,
                 dedicated_tasks=real[:5], task_file="tasks/cifar100_binary.yaml", headline=real[:10])


def _cifar10_aux() -> Study:
    """SPEC.md sections 4 and 5: CIFAR-10 classification with auxiliary tasks, a dedicated
    cifar_small per task, and one HPS variant per loss-combination scheme over all four tasks."""
    tasks = ("cifar10", "animal", "reconstruction", "random")
    fixed = (0.5, 0.1, 1.0, 0.1)  # SPEC.md section 5's example weights
    hps = {f"hps_{scheme}": HPSVariant(tasks, scheme, fixed if scheme == "fixed" else None)
           for scheme in ("fixed", "sum", "mean", "geometric", "uncertainty", "dwa")}
    return Study("cifar10_aux", tasks, "cifar_small", "hs", ("dedicated", *hps), hps=hps)


STUDIES: dict[str, Study] = {
    "mnist_fashion_mlp": Study(
        "mnist_fashion_mlp", ("digits", "fashion"), "mlp", "keras_faithful", ("dedicated", "rsn2"),
        rsn2=RSN2Spec(prune_percent=90),
    ),
    "mnist_fashion_cnn": Study(
        "mnist_fashion_cnn", ("digits", "fashion"), "cnn28", "keras_faithful", ("dedicated", "rsn2"),
        rsn2=RSN2Spec(prune_percent=80, mask_sample=10000, mask_loss_weights=(0.25, 0.75)),
    ),
    "cifar_mnist_fashion_cnn": Study(
        "cifar_mnist_fashion_cnn", ("cifar10_28", "digits", "fashion"), "cnn28", "keras_faithful", ("dedicated", "rsn2"),
        rsn2=RSN2Spec(prune_percent=90, mask_sample=10000, phases=((1.0, 0.0, 0.0), (0.0, 1.0, 1.0))),
    ),
    "cifar100_binary": _cifar100_binary(),
    "cifar10_aux": _cifar10_aux(),
}


def datasets_for(study_names: tuple[str, ...]) -> tuple[str, ...]:
    """The datasets the enabled studies read, each once, in a stable order."""
    return tuple(dict.fromkeys(d for name in study_names for d in STUDIES[name].datasets))
