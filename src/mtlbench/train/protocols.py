"""Training protocols of SPEC.md section 2, as data."""

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

    def capped(self, max_epochs: int | None) -> "Protocol":
        """The same protocol with at most `max_epochs` epochs (run.max_epochs)."""
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

PROTOCOLS: dict[str, Protocol] = {KERAS_FAITHFUL.name: KERAS_FAITHFUL, HS.name: HS}

HS_PATIENCE = 5


def hs_protocol(epochs: int, early_stopping: bool) -> Protocol:
    """The hs protocol as params.yaml sets it: a fixed number of epochs, or early stopping on the
    validation loss (patience 5, best weights restored) with `epochs` as the cap."""
    return replace(HS, max_epochs=epochs, patience=HS_PATIENCE if early_stopping else None, restore_best=early_stopping)
