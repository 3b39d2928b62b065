"""Small learnable data for multitask tests (the data-format writers are in formats.py)."""

import torch

from mtlbench.data.tasks import TensorSet


def two_task_images(rows: int, side: int, seed: int = 0) -> TensorSet:
    """RGB images in [0, 1] for two binary tasks on the same images: task a is a bright red
    channel, task b a bright top half in blue; inputs (x,), targets (y_a, y_b), on the CPU."""
    g = torch.Generator().manual_seed(seed)
    y1, y2 = torch.randint(0, 2, (rows,), generator=g), torch.randint(0, 2, (rows,), generator=g)
    x = torch.rand(rows, 3, side, side, generator=g) * 0.5
    x[:, 0] += 0.5 * y1.view(-1, 1, 1)
    x[:, 2, : side // 2] += 0.5 * y2.view(-1, 1, 1)
    return TensorSet((x,), (y1, y2))
