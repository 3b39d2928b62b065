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
    grad_clip: float | None = None

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

PROTOCOLS: dict[str, Protocol] = {KERAS_FAITHFUL.name: KERAS_FAITHFUL}
