"""RSN2 mask computation, once, before training.

Per layer and per task, keep the top (100 - p)% of positions by a score: |gradient of that task's
loss| on a sample of training data (default) or |weight|. Tasks choose in order and never take a
position an earlier task took.

Selection is by count (a stable sort), not by a percentile threshold. The original thresholded at
np.percentile of the scores: when zero scores reach the percentile, the threshold becomes 0, every
position passes (including ones an earlier task owns) and disjointness breaks silently. Here every
task gets exactly round((100 - p)% of the positions), all of them free, whatever the scores.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from mtlbench.data.tasks import TensorSet
from mtlbench.models.rsn2 import RSN2Net

MASK_METHODS = ("gradient", "magnitude")


def select_disjoint(scores: torch.Tensor, keep_fraction: float) -> torch.Tensor:
    """scores [T, *shape] -> bool masks [T, *shape]: exactly k per task, pairwise disjoint."""
    n_tasks, shape = scores.shape[0], scores.shape[1:]
    flat = scores.reshape(n_tasks, -1).float()
    n = flat.shape[1]
    k = round(keep_fraction * n)
    if k * n_tasks > n:
        raise ValueError(f"{n_tasks} tasks keeping {keep_fraction:.0%} each need {k * n_tasks} of {n} positions")
    taken = torch.zeros(n, dtype=torch.bool, device=scores.device)
    masks = torch.zeros(n_tasks, n, dtype=torch.bool, device=scores.device)
    for t in range(n_tasks):
        candidates = flat[t].masked_fill(taken, float("-inf"))
        chosen = torch.sort(candidates, descending=True, stable=True).indices[:k]
        masks[t, chosen] = True
        taken |= masks[t]
    return masks.reshape(n_tasks, *shape)


def gradient_scores(model: RSN2Net, sample: TensorSet, loss_weights: Sequence[float], batch_size: int) -> None:
    """Leave in .grad the gradient of sum_t w_t * (mean loss of task t over the whole sample)."""
    model.zero_grad(set_to_none=True)
    model.train()
    n = len(sample)
    for start in range(0, n, batch_size):
        batch = sample.rows(slice(start, start + batch_size))
        outputs = model(*batch.inputs)
        loss = sum(w * F.cross_entropy(o, y, reduction="sum") / n for w, o, y in zip(loss_weights, outputs, batch.targets))
        loss.backward()


def compute_masks(
    model: RSN2Net,
    method: str,
    keep_fraction: float,
    sample: TensorSet | None = None,
    loss_weights: Sequence[float] | None = None,
    batch_size: int = 512,
) -> dict[str, list[int]]:
    """Set every masked layer's masks; returns the kept count per layer (per task) for the record."""
    if method not in MASK_METHODS:
        raise ValueError(f"mask method {method!r}; allowed: {', '.join(MASK_METHODS)}")
    layers = model.masked_layers()
    if method == "gradient":
        if sample is None:
            raise ValueError("gradient masks need a sample of training data")
        gradient_scores(model, sample, loss_weights or [1.0] * model.n_tasks, batch_size)
        scores = [(layer.weight.grad.abs(), layer.bias.grad.abs()) for layer in layers]
        model.zero_grad(set_to_none=True)
    else:
        scores = [(layer.weight.detach().abs(), layer.bias.detach().abs()) for layer in layers]
    kept = {}
    for i, (layer, (weight_scores, bias_scores)) in enumerate(zip(layers, scores)):
        layer.set_masks(select_disjoint(weight_scores, keep_fraction), select_disjoint(bias_scores, keep_fraction))
        kept[f"layer{i}"] = [int(m.sum()) for m in layer.weight_mask]
    return kept
