"""What a task's output is scored against: class labels (cross-entropy, accuracy) or an image to
reconstruct (mean squared error). The target tensor says which (integer labels or float pixels),
so models, the epoch loop and evaluation need no separate list of task kinds."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def is_classification(target: torch.Tensor) -> bool:
    return not target.is_floating_point()


def task_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits against labels, or mean squared error over every pixel (Keras'
    `mse` on images: mean over values, then over the batch, which is the same number)."""
    output = output.float()  # losses in fp32 whatever precision the forward pass ran in
    if is_classification(target):
        return F.cross_entropy(output, target)
    return F.mse_loss(output, target)


def _one_shape(outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> bool:
    """Classification tasks with logits of one shape: their losses can run as one kernel."""
    return (all(is_classification(y) for y in targets)
            and len({tuple(o.shape) for o in outputs}) == 1 and outputs[0].dim() == 2)


def task_scores(outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every task's mean loss and its count of correct predictions (0 for a reconstruction), each
    as one [K] tensor. Classification tasks whose logits share a shape (a hundred binary heads, a
    stack of seeds) go through one cross-entropy over all their rows, then a mean per task: a few
    kernels instead of K small ones, and each task's value is computed exactly as it would be alone
    (row-wise losses, then a contiguous mean), so one seed trained alone and the same seed in a
    stack give bit-identical losses on the CPU."""
    if _one_shape(outputs, targets):
        logits, labels = torch.cat(outputs), torch.cat(targets)
        per_row = F.cross_entropy(logits.float(), labels, reduction="none")
        correct = (logits.argmax(1) == labels).view(len(outputs), -1).sum(1)
        return per_row.view(len(outputs), -1).mean(1), correct
    losses = torch.stack([task_loss(out, y) for out, y in zip(outputs, targets)])
    return losses, torch.stack([correct_count(out, y) for out, y in zip(outputs, targets)])


def correct_count(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Correct predictions in the batch; 0 for reconstruction, which has no accuracy."""
    if is_classification(target):
        return (output.argmax(1) == target).sum()
    return torch.zeros((), dtype=torch.int64, device=target.device)


def per_image_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each reconstructed image's mean squared error (what PSNR is computed from)."""
    return (output.float() - target).square().flatten(1).mean(1)
