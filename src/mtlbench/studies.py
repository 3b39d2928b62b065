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


DIGIT_NAMES = tuple(str(i) for i in range(10))
FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

TASKS: dict[str, TaskSpec] = {
    "digits": TaskSpec("digits", "digits", 10, DIGIT_NAMES),
    "fashion": TaskSpec("fashion", "fashion", 10, FASHION_NAMES),
}


@dataclass(frozen=True)
class Study:
    name: str
    tasks: tuple[str, ...]
    architecture: str
    protocol: str
    variants: tuple[str, ...]
    implemented: bool = True

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(TASKS[t].dataset for t in self.tasks))

    @property
    def task_specs(self) -> tuple[TaskSpec, ...]:
        return tuple(TASKS[t] for t in self.tasks)


STUDIES: dict[str, Study] = {
    "mnist_fashion_mlp": Study("mnist_fashion_mlp", ("digits", "fashion"), "mlp", "keras_faithful", ("dedicated",)),
    "mnist_fashion_cnn": Study("mnist_fashion_cnn", ("digits", "fashion"), "cnn28", "keras_faithful", ("dedicated",)),
    # Catalogued in SPEC.md, built by later issues; params.yaml rejects them until then.
    "cifar_mnist_fashion_cnn": Study("cifar_mnist_fashion_cnn", (), "cnn28", "keras_faithful", (), implemented=False),
    "cifar100_binary": Study("cifar100_binary", (), "cifar_shared", "hs", (), implemented=False),
    "cifar10_aux": Study("cifar10_aux", (), "cifar_small", "hs", (), implemented=False),
}


def datasets_for(study_names: tuple[str, ...]) -> tuple[str, ...]:
    """The datasets the enabled studies read, each once, in a stable order."""
    return tuple(dict.fromkeys(d for name in study_names for d in STUDIES[name].datasets))
