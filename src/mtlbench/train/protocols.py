"""Training protocols of SPEC.md section 2, as data.

`run.protocol: faithful` (the default) trains each study with its own protocol, which reproduces
the original code: keras_faithful for the MANN studies, hs for the CIFAR studies. `run.protocol:
modern` trains every study with MODERN, one budget and schedule for dedicated and multitask models
alike (README "Protocols" says how its hyperparameters were chosen).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Protocol:
    name: str
    lr: float
    betas: tuple[float, float]
    eps: float
    batch_size: int
    max_epochs: int
    val_fraction: float  # the LAST fraction of the training rows, Keras' validation_split
    patience: int | None  # None: no early stopping, train max_epochs
    min_delta: float
    restore_best: bool
    grad_clip: float | None = None  # Keras `clipnorm`: each gradient tensor scaled to at most this norm
    optimizer: str = "adam"  # adam | adamw (decoupled weight decay)
    # Keras' Adam adds eps to sqrt(v) before the bias correction ("epsilon hat"), PyTorch's after it:
    # Keras' eps equals PyTorch's eps / sqrt(1 - beta2^t) at step t (train/optim.py).
    epsilon_hat: bool = False
    # Keras' sparse categorical cross-entropy on softmax outputs: the true class's probability is
    # clipped to [1e-7, 1 - 1e-7] before the log, so a confidently wrong row costs 16.12 and has no
    # gradient (train/objectives.py).
    clip_probabilities: bool = False
    label_smoothing: float = 0.0
    weight_decay: float = 0.0
    warmup_epochs: int = 0  # linear warm-up of the learning rate from 0 over these epochs
    schedule: str = "constant"  # constant | cosine (decay to 0 at the last step of max_epochs)
    augment: bool = False  # random shifts (1 channel) or shifts and flips (3 channels), train/augment.py

    def capped(self, max_epochs: int | None) -> "Protocol":
        """The same protocol with at most `max_epochs` epochs (run.max_epochs); a cosine schedule
        then decays over the capped epochs."""
        return self if max_epochs is None else replace(self, max_epochs=min(self.max_epochs, max_epochs))


KERAS_FAITHFUL = Protocol(
    name="keras_faithful",
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-7,  # Keras' Adam epsilon, not PyTorch's 1e-8
    batch_size=512,
    max_epochs=100,
    val_fraction=0.2,
    patience=3,
    min_delta=0.01,
    restore_best=True,
    epsilon_hat=True,
    clip_probabilities=True,
)

HS = Protocol(
    name="hs",
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-7,
    batch_size=128,
    max_epochs=30,  # params hs.epochs
    val_fraction=0.1,  # held out from train (the original validated on the test set)
    patience=None,  # a fixed number of epochs unless hs.early_stopping
    min_delta=0.0,
    restore_best=False,
    grad_clip=1.0,
)

# One budget for every model of a study: the same epochs and batches for dedicated and multitask
# models, no early stopping, the epoch with the lowest validation loss restored (selection on the
# validation split only). Values chosen on validation accuracy (README "Protocols").
MODERN = Protocol(
    name="modern",
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    batch_size=256,
    max_epochs=15,
    val_fraction=0.1,
    patience=None,
    min_delta=0.0,
    restore_best=True,
    optimizer="adamw",
    label_smoothing=0.1,
    weight_decay=0.05,
    warmup_epochs=1,
    schedule="cosine",
    augment=True,
)

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (KERAS_FAITHFUL, HS, MODERN)}

HS_PATIENCE = 5


def hs_protocol(epochs: int, early_stopping: bool) -> Protocol:
    """The hs protocol as params.yaml sets it: a fixed number of epochs, or early stopping on the
    validation loss (patience 5, best weights restored) with `epochs` as the cap."""
    return replace(HS, max_epochs=epochs, patience=HS_PATIENCE if early_stopping else None, restore_best=early_stopping)


# Chosen on validation (bench/modern_pilot.json, `python -m mtlbench.bench.pilot`): shifted images
# cost the mlp 3.6 points of Fashion validation accuracy in 8 epochs and gained nothing on MNIST
# (a dense network has no translation invariance to learn from them); conv nets keep them.
MODERN_BY_ARCHITECTURE: dict[str, dict] = {"mlp": {"augment": False}}


def modern_protocol(architecture: str, **overrides) -> Protocol:
    """MODERN as it trains `architecture`, with the params' `modern` section's non-null values put in."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(MODERN, **{**MODERN_BY_ARCHITECTURE.get(architecture, {}), **given})
