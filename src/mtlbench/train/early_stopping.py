"""Early stopping with Keras' semantics (monitor val_loss, mode min)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class EarlyStopping:
    """An epoch improves only if it beats the best so far by MORE than `min_delta`; training stops
    after `patience` epochs in a row without improvement. The "best" epoch, whose weights are
    restored, is the last one that improved, as in `keras.callbacks.EarlyStopping`."""

    patience: int | None
    min_delta: float
    best: float = math.inf
    best_epoch: int | None = None
    wait: int = 0

    def update(self, epoch: int, value: float) -> bool:
        """Record one epoch's monitored value; True when it is the new best."""
        if value + self.min_delta < self.best:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True
        self.wait += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.wait >= self.patience
