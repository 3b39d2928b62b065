"""What a task's output is scored against: class labels (cross-entropy, accuracy) or an image to
reconstruct (mean squared error). The target tensor says which (integer labels or float pixels),
so models, the epoch loop and evaluation need no separate list of task kinds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): the clip of probabilities in Keras' cross-entropy


@dataclass(frozen=True)
class Objective:
    """How a classification loss is computed from logits (train/protocols.Protocol says which)."""

    clip_probabilities: bool = False  # Keras on softmax outputs: -log(clip(p_true, 1e-7, 1 - 1e-7))
    label_smoothing: float = 0.0

    @classmethod
    def of(cls, protocol) -> "Objective":
        return cls(protocol.clip_probabilities, protocol.label_smoothing)


LOGITS = Objective()  # plain cross-entropy on logits


def row_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, objective: Objective = LOGITS) -> torch.Tensor:
    """Each row's cross-entropy. Clipped as Keras clips it: the softmax, its true-class probability
    clamped to [1e-7, 1 - 1e-7], then -log; outside that range the loss is constant and its gradient
    zero (a confidently wrong row teaches nothing, as in the original Keras runs)."""
    logits = logits.float()
    if objective.clip_probabilities:
        p_true = logits.softmax(1).gather(1, labels.unsqueeze(1)).squeeze(1)
        return -p_true.clamp(KERAS_EPSILON, 1 - KERAS_EPSILON).log()
    return F.cross_entropy(logits, labels, reduction="none", label_smoothing=objective.label_smoothing)


def is_classification(target: torch.Tensor) -> bool:
    return not target.is_floating_point()


def task_loss(output: torch.Tensor, target: torch.Tensor, objective: Objective = LOGITS) -> torch.Tensor:
    """Mean cross-entropy of logits against labels, or mean squared error over every pixel (Keras'
    `mse` on images: mean over values, then over the batch, which is the same number)."""
    output = output.float()  # losses in fp32 whatever precision the forward pass ran in
    if is_classification(target):
        if objective.clip_probabilities:
            return row_cross_entropy(output, target, objective).mean()
        # PyTorch's own mean reduction, not the mean of row_cross_entropy: they round differently,
        # and the hs studies' recorded numbers were made with this one
        return F.cross_entropy(output, target, label_smoothing=objective.label_smoothing)
    return F.mse_loss(output, target)


def _one_shape(outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> bool:
    """Classification tasks with logits of one shape: their losses can run as one kernel."""
    return (all(is_classification(y) for y in targets)
            and len({tuple(o.shape) for o in outputs}) == 1 and outputs[0].dim() == 2)


def task_scores(outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor],
                objective: Objective = LOGITS) -> tuple[torch.Tensor, torch.Tensor]:
    """Every task's mean loss and its count of correct predictions (0 for a reconstruction), each
    as one [K] tensor. Classification tasks whose logits share a shape (a hundred binary heads, a
    stack of seeds) go through one cross-entropy over all their rows, then a mean per task: a few
    kernels instead of K small ones, and each task's value is computed exactly as it would be alone
    (row-wise losses, then a contiguous mean), so one seed trained alone and the same seed in a
    stack give bit-identical losses on the CPU."""
    if _one_shape(outputs, targets):
        logits, labels = torch.cat(outputs), torch.cat(targets)
        per_row = row_cross_entropy(logits, labels, objective)
        correct = (logits.argmax(1) == labels).view(len(outputs), -1).sum(1)
        return per_row.view(len(outputs), -1).mean(1), correct
    losses = torch.stack([task_loss(out, y, objective) for out, y in zip(outputs, targets)])
    return losses, torch.stack([correct_count(out, y) for out, y in zip(outputs, targets)])


def correct_count(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Correct predictions in the batch; 0 for reconstruction, which has no accuracy."""
    if is_classification(target):
        return (output.argmax(1) == target).sum()
    return torch.zeros((), dtype=torch.int64, device=target.device)


def per_image_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each reconstructed image's mean squared error (what PSNR is computed from)."""
    return (output.float() - target).square().flatten(1).mean(1)
