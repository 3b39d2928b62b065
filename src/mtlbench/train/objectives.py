"""What a task's output is scored against: class labels (cross-entropy, accuracy) or an image to
reconstruct (mean squared error). The target tensor says which (integer labels or float pixels),
so models, the epoch loop and evaluation need no separate list of task kinds."""

from __future__ import annotations

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


def correct_count(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Correct predictions in the batch; 0 for reconstruction, which has no accuracy."""
    if is_classification(target):
        return (output.argmax(1) == target).sum()
    return torch.zeros((), dtype=torch.int64, device=target.device)


def per_image_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each reconstructed image's mean squared error (what PSNR is computed from)."""
    return (output.float() - target).square().flatten(1).mean(1)
