"""The experiment catalogue of SPEC.md section 4, as data.

A study names its tasks, the architecture its models use, the protocol that trains them and its
model variants (typed `Variant`s: a kind and its options, under a name), so that the pipeline, the
metrics file and MLflow all agree on what a study contains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtlbench.data.classes import CIFAR10_NAMES, DIGIT_NAMES, FASHION_NAMES


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


DEDICATED, RSN2, HPS = "dedicated", "rsn2", "hps"  # the variant kinds of train/kinds/
# The kind every other variant is compared with: one network per task. Its variant may have any
# name; evaluation, the summary and the README find it by this kind.
BASELINE_KIND = DEDICATED


@dataclass(frozen=True)
class Variant:
    """One model variant of a study: its kind (how it is built and trained) and the kind's options;
    `name` is only its label. Several variants may share a kind (two RSN2 sparsities, HPS with
    every method). `tasks`: None for every task of the study. An `rsn2` variant carries its mask
    spec; an `hps` variant names its multitask method (train/methods) and that method's options."""

    name: str
    kind: str
    tasks: tuple[str, ...] | None = None
    rsn2: RSN2Spec | None = None
    method: str | None = None
    options: tuple[tuple[str, object], ...] = ()  # (option, value) pairs: hashable and ordered

    @property
    def method_options(self) -> dict:
        return dict(self.options)


def dedicated(tasks: tuple[str, ...] | None = None) -> Variant:
    return Variant(DEDICATED, DEDICATED, tasks)


def rsn2(spec: RSN2Spec, name: str = RSN2) -> Variant:
    return Variant(name, RSN2, rsn2=spec)


def hps(name: str, method: str, tasks: tuple[str, ...] | None = None, **options) -> Variant:
    return Variant(name, HPS, tasks, method=method, options=tuple(options.items()))


@dataclass(frozen=True)
class Study:
    name: str
    tasks: tuple[str, ...]
    architecture: str
    protocol: str
    variant_specs: tuple[Variant, ...]
    task_file: str | None = None  # a task-spec file (tasks/<study>.yaml) defining the tasks
    task_dataset: str = "cifar100"  # the dataset a task file cuts its tasks from (named in the file too)
    headline: tuple[str, ...] | None = None  # tasks shown one by one in reports and plots; None: all
    # The original code's test accuracies (SPEC.md section 4, reference/ beside it): (variant, task,
    # accuracy) as printed, to 2 decimals; single runs of the Keras code unless the source says so.
    reference: tuple[tuple[str, str, float], ...] = ()
    reference_source: str = ""

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants' names, in catalogue order."""
        return tuple(v.name for v in self.variant_specs)

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variant_specs if v.name == name)

    def variant_kind(self, variant: str) -> str:
        return self.variant(variant).kind

    @property
    def baseline_variant(self) -> str | None:
        """The variant every other is compared with (the first of BASELINE_KIND), None if none."""
        return next((v.name for v in self.variant_specs if v.kind == BASELINE_KIND), None)

    def tasks_of(self, variant: str) -> tuple[str, ...]:
        return self.variant(variant).tasks or self.tasks

    @property
    def datasets(self) -> tuple[str, ...]:
        if self.task_file is not None:
            return (self.task_dataset,)
        return tuple(dict.fromkeys(TASKS[t].dataset for t in self.tasks))

    @property
    def needs_prepared_labels(self) -> bool:
        """Label matrices from the prepare stage (CIFAR-100 task files), not labels mapped on load."""
        return self.task_file is not None and self.task_dataset == "cifar100"

    def task_file_contents(self, root: Path = Path(".")):
        """The task file, read and validated; it must name the dataset the study declares."""
        from mtlbench.data.taskspec import TaskSpecError, load_task_file

        contents = load_task_file(root / self.task_file)
        if contents.dataset != self.task_dataset:
            raise TaskSpecError(f"{self.task_file}: dataset {contents.dataset} but study {self.name} reads "
                                f"{self.task_dataset}; name the study's dataset in the file")
        return contents

    def task_definitions(self, root: Path = Path(".")) -> dict:
        """The study's tasks as its task-spec file defines them (name -> taskspec.BinaryTask), read
        and validated; every task the study uses must be defined."""
        from mtlbench.data.taskspec import TaskSpecError

        defined = self.task_file_contents(root).tasks
        missing = [t for t in self.tasks if t not in defined]
        if missing:
            raise TaskSpecError(f"{self.task_file}: task {missing[0]} is used by study {self.name} but not defined")
        unused = [t for t in defined if t not in self.tasks]
        if unused:  # a task added to the file would otherwise never train, and nothing would say so
            raise TaskSpecError(f"{self.task_file}: task {unused[0]} is defined but study {self.name} does not train "
                                f"it; add it to the study's tasks (src/mtlbench/studies.py) or remove it from the file")
        return {t: defined[t] for t in self.tasks}

    def specs(self, root: Path = Path(".")) -> dict[str, TaskSpec]:
        """Every task of the study by name; a study with a task-spec file reads (and validates) it."""
        if self.task_file is None:
            return {t: TASKS[t] for t in self.tasks}
        contents = self.task_file_contents(root)
        if not contents.labels_prepared:  # class groups: the dataset's labels mapped as they load
            return {name: TaskSpec(name, contents.dataset, len(task.class_names), task.class_names,
                                   class_map=task.class_map)
                    for name, task in self.task_definitions(root).items()}
        return {name: TaskSpec(name, "cifar100", 2, task.class_names, labels=self.name,
                               random_seed=task.seed if task.is_random else None)
                for name, task in self.task_definitions(root).items()}


def _cifar100_binary() -> Study:
    """SPEC.md section 4: dedicated T1..T5, HPS over 3, 5 and 10 real tasks, and real+random mixes
    combined by the sum and by the mean of the task losses."""
    real = tuple(f"T{i}" for i in range(1, 91))
    rand = tuple(f"R{i}" for i in range(1, 51))
    variants = [hps(f"hps{n}", "sum", real[:n]) for n in (3, 5, 10)]
    for n_real, n_random in ((10, 10), (20, 10), (40, 10), (90, 10), (80, 20), (60, 40), (50, 50)):
        for loss in ("sum", "mean"):
            variants.append(hps(f"mix{n_real}_{n_random}_{loss}", loss, real[:n_real] + rand[:n_random]))
    return Study("cifar100_binary", real + rand, "cifar_shared", "hs", (dedicated(real[:5]), *variants),
                 task_file="tasks/cifar100_binary.yaml", headline=real[:10])


def _cifar10_aux() -> Study:
    """SPEC.md sections 4 and 5: CIFAR-10 classification with auxiliary tasks, a dedicated
    cifar_small per task, and one HPS variant per loss-combination scheme over all four tasks."""
    tasks = ("cifar10", "animal", "reconstruction", "random")
    fixed = (0.5, 0.1, 1.0, 0.1)  # SPEC.md section 5's example weights
    variants = [hps(f"hps_{scheme}", scheme, **({"weights": fixed} if scheme == "fixed" else {}))
                for scheme in ("fixed", "sum", "mean", "geometric", "uncertainty", "dwa")]
    return Study("cifar10_aux", tasks, "cifar_small", "hs", (dedicated(), *variants))


# Every method of train/methods on one multi-input HPS network (mnist_fashion_hps); `fixed` weighs
# fashion, the harder task, as mnist_fashion_cnn's masks do.
HPS_METHODS = ("sum", "mean", "fixed", "geometric", "uncertainty", "dwa", "rlw", "famo", "gradnorm", "mgda",
               "pcgrad", "gradvac", "imtl", "cagrad", "nash_mtl", "aligned_mtl", "db_mtl", "graddrop")


def _mnist_fashion_hps() -> Study:
    """Digits and fashion, each with its own images and batches, on one shared mlp trunk (the six
    hidden layers) with a head per task, under every method; dedicated mlps and RSN2 (p=90) beside
    them, all keras-faithful. (MGDA-UB needs one representation shared by the tasks; with two
    inputs there are two, so its exact form `mgda` runs here.)"""
    variants = [hps(f"hps_{m}", m, **({"weights": (0.25, 0.75)} if m == "fixed" else {})) for m in HPS_METHODS]
    return Study("mnist_fashion_hps", ("digits", "fashion"), "mlp", "keras_faithful",
                 (dedicated(), rsn2(RSN2Spec(prune_percent=90)), *variants))


def _fashion_groups() -> Study:
    """Three binary tasks cut from Fashion-MNIST's classes by a class-group task file
    (tasks/fashion_groups.yaml), on one multi-input mlp: dedicated, RSN2 and HPS under the sum and
    PCGrad. An example of tasks defined by a file for a dataset other than CIFAR-100."""
    return Study("fashion_groups", ("footwear", "upper_body", "warm"), "mlp", "keras_faithful",
                 (dedicated(), rsn2(RSN2Spec(prune_percent=90)), hps("hps_sum", "sum"), hps("hps_pcgrad", "pcgrad")),
                 task_file="tasks/fashion_groups.yaml", task_dataset="fashion")


def _digit_groups() -> Study:
    """Two binary tasks of every MNIST digit, its parity and whether it is 5 or above
    (tasks/digit_groups.yaml), on one multi-input mlp: closely related tasks (both functions of the
    digit on one image), the far end of the map over relatedness from digits + fashion."""
    return Study("digit_groups", ("parity", "high"), "mlp", "keras_faithful",
                 (dedicated(), rsn2(RSN2Spec(prune_percent=90)), hps("hps_sum", "sum")),
                 task_file="tasks/digit_groups.yaml", task_dataset="digits")


STUDIES: dict[str, Study] = {
    "mnist_fashion_mlp": Study(
        "mnist_fashion_mlp", ("digits", "fashion"), "mlp", "keras_faithful",
        (dedicated(), rsn2(RSN2Spec(prune_percent=90))),
        reference=(("dedicated", "digits", 0.97), ("dedicated", "fashion", 0.88),
                   ("rsn2", "digits", 0.98), ("rsn2", "fashion", 0.87)),
        reference_source="reference/002, one run of the original Keras code",
    ),
    "mnist_fashion_cnn": Study(
        "mnist_fashion_cnn", ("digits", "fashion"), "cnn28", "keras_faithful",
        (dedicated(), rsn2(RSN2Spec(prune_percent=80, mask_sample=10000, mask_loss_weights=(0.25, 0.75)))),
        reference=(("dedicated", "digits", 0.99), ("dedicated", "fashion", 0.92),
                   ("rsn2", "digits", 0.99), ("rsn2", "fashion", 0.90)),
        reference_source="reference/001, one run of the original Keras code",
    ),
    "cifar_mnist_fashion_cnn": Study(
        "cifar_mnist_fashion_cnn", ("cifar10_28", "digits", "fashion"), "cnn28", "keras_faithful",
        (dedicated(), rsn2(RSN2Spec(prune_percent=90, mask_sample=10000, phases=((1.0, 0.0, 0.0), (0.0, 1.0, 1.0))))),
        reference=(("dedicated", "cifar10_28", 0.54), ("rsn2", "cifar10_28", 0.56), ("rsn2", "digits", 0.98),
                   ("rsn2", "fashion", 0.90)),
        reference_source="reference/000, one run of the original Keras code",
    ),
    "cifar100_binary": _cifar100_binary(),
    "cifar10_aux": _cifar10_aux(),
    "mnist_fashion_hps": _mnist_fashion_hps(),
    "fashion_groups": _fashion_groups(),
    "digit_groups": _digit_groups(),
}


def datasets_for(study_names: tuple[str, ...]) -> tuple[str, ...]:
    """The datasets the enabled studies read, each once, in a stable order."""
    return tuple(dict.fromkeys(d for name in study_names for d in STUDIES[name].datasets))
