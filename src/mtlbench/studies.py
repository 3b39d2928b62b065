"""The experiment catalogue of SPEC.md section 4, as data.

A study names its tasks, the architecture its models use and the protocol that trains them. Model
variants (`dedicated`, and the multitask ones added by later work) are listed per study so that the
pipeline, the metrics file and MLflow all agree on what a study contains.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    """One classification task: which prepared dataset it reads and how many classes it has."""

    name: str
    dataset: str
    n_classes: int
    class_names: tuple[str, ...]
    resize: int | None = None  # square side the images are resized to (bilinear), None: as stored


DIGIT_NAMES = tuple(str(i) for i in range(10))
FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

TASKS: dict[str, TaskSpec] = {
    "digits": TaskSpec("digits", "digits", 10, DIGIT_NAMES),
    "fashion": TaskSpec("fashion", "fashion", 10, FASHION_NAMES),
    "cifar10_28": TaskSpec("cifar10_28", "cifar10", 10, CIFAR10_NAMES, resize=28),
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
class Study:
    name: str
    tasks: tuple[str, ...]
    architecture: str
    protocol: str
    variants: tuple[str, ...]
    rsn2: RSN2Spec | None = None
    implemented: bool = True

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(TASKS[t].dataset for t in self.tasks))

    @property
    def task_specs(self) -> tuple[TaskSpec, ...]:
        return tuple(TASKS[t] for t in self.tasks)


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
    # Catalogued in SPEC.md, built by later issues; params.yaml rejects them until then.
    "cifar100_binary": Study("cifar100_binary", (), "cifar_shared", "hs", (), implemented=False),
    "cifar10_aux": Study("cifar10_aux", (), "cifar_small", "hs", (), implemented=False),
}


def datasets_for(study_names: tuple[str, ...]) -> tuple[str, ...]:
    """The datasets the enabled studies read, each once, in a stable order."""
    return tuple(dict.fromkeys(d for name in study_names for d in STUDIES[name].datasets))
