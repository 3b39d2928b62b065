"""Augmentation on device tensors, a whole batch at once, each image with its own draw.

One-channel images (MNIST, Fashion) are shifted by up to MAX_SHIFT_1CH pixels in each direction
(zero fill); three-channel images (CIFAR) are randomly cropped from a zero-padded copy (the same
thing: a shift by up to MAX_SHIFT_3CH) and flipped left-right with probability 1/2. The draws come
from the run's seeded CPU generator, so CPU and GPU runs see the same augmentations and a seed
trained alone or in a stack of seeds sees the same ones; the images move by gathers (exact copies),
so the CPU path stays bit-reproducible.

Why not torchvision.transforms.v2: on a batch tensor its random transforms draw ONE set of
parameters for the whole batch (every image shifted alike), which is not augmentation per image.
"""

from __future__ import annotations

import torch

MAX_SHIFT_1CH = 2  # pixels, 28x28 digits and clothes
MAX_SHIFT_3CH = 4  # pixels, the usual CIFAR crop from a 4-pixel pad


def augments(x: torch.Tensor) -> bool:
    """Images are augmented; flat inputs and reconstruction targets are not."""
    return x.dim() == 4 and x.shape[1] in (1, 3)


def draw(generator: torch.Generator, rows: int, channels: int) -> torch.Tensor:
    """[rows, 3] int64 on the CPU: each image's vertical and horizontal shift, and 1 to flip it."""
    limit = MAX_SHIFT_3CH if channels == 3 else MAX_SHIFT_1CH
    shifts = torch.randint(-limit, limit + 1, (rows, 2), generator=generator)
    flips = torch.randint(0, 2, (rows, 1), generator=generator) if channels == 3 else torch.zeros(rows, 1, dtype=torch.int64)
    return torch.cat([shifts, flips], 1)


def apply(x: torch.Tensor, moves: torch.Tensor) -> torch.Tensor:
    """`x` [N, C, H, W] moved as `moves` [N, 3] (draw) says: out[n, :, i, j] = x[n, :, i - dy, j - dx]
    where that pixel exists, else 0; then flipped left-right where the flip is 1. Pure tensor ops
    with no host sync (graph-capturable)."""
    n, c, h, w = x.shape
    limit = max(MAX_SHIFT_1CH, MAX_SHIFT_3CH)
    padded = torch.nn.functional.pad(x, (limit, limit, limit, limit))
    dy, dx, flip = moves[:, 0:1], moves[:, 1:2], moves[:, 2:3]
    rows = torch.arange(h, device=x.device).unsqueeze(0) + limit - dy  # [N, H]
    cols = torch.arange(w, device=x.device).unsqueeze(0) + limit - dx  # [N, W]
    cols = torch.where(flip.bool(), cols.flip(1), cols)  # a flip reads the columns backwards
    picked = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2 * limit))
    return picked.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))
