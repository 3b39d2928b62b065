"""Pack a trained RSN2 network into one dense tensor per layer plus a per-position owner id.

Owner ids index the layer's slices (its tasks, in order; a stem layer holds only its group's tasks).

Masks are disjoint, so summing the masked task slices loses nothing: every position holds the
value of the one task that owns it (or 0, owner NO_TASK). Unpacking rebuilds each slice as
`packed * (owner == t)`, bit-for-bit the trained masked weights, hence identical predictions.
"""

from __future__ import annotations

import torch

from mtlbench.models.rsn2 import RSN2Net

NO_TASK = 255  # owner id of positions no task kept


def _owner(masks: torch.Tensor) -> torch.Tensor:
    if masks.shape[0] >= NO_TASK:
        raise ValueError(f"at most {NO_TASK - 1} tasks can be packed with uint8 owner ids")
    owner = torch.full(masks.shape[1:], NO_TASK, dtype=torch.uint8)
    for t in range(masks.shape[0]):
        owner[masks[t].cpu()] = t
    return owner


def pack(model: RSN2Net) -> dict:
    layers = []
    for layer in model.masked_layers():
        weight, bias = (w.detach().cpu() for w in layer.masked())
        layers.append({
            "weight": weight.sum(0), "weight_owner": _owner(layer.weight_mask),
            "bias": bias.sum(0), "bias_owner": _owner(layer.bias_mask),
        })
    spec = {"kind": "rsn2", "architecture": model.architecture, "in_shapes": [list(s) for s in model.in_shapes],
            "n_classes": list(model.n_classes)}
    return {"spec": spec, "layers": layers}


def unpack(packed: dict) -> RSN2Net:
    spec = packed["spec"]
    model = RSN2Net(spec["architecture"], tuple(map(tuple, spec["in_shapes"])), tuple(spec["n_classes"]))
    for layer, saved in zip(model.masked_layers(), packed["layers"]):
        slices = torch.arange(layer.n_tasks)
        weight_mask = saved["weight_owner"].unsqueeze(0) == slices.view(-1, *[1] * saved["weight"].dim())
        bias_mask = saved["bias_owner"].unsqueeze(0) == slices.view(-1, 1)
        with torch.no_grad():
            layer.weight.copy_(saved["weight"].unsqueeze(0) * weight_mask)
            layer.bias.copy_(saved["bias"].unsqueeze(0) * bias_mask)
        layer.set_masks(weight_mask, bias_mask)
    return model.eval()


def packed_counts(packed: dict) -> dict[str, int]:
    """Dense entries of the packed tensors (the budget of one dedicated model) and owned positions."""
    total = sum(saved[k].numel() for saved in packed["layers"] for k in ("weight", "bias"))
    owned = sum(int((saved[k] != NO_TASK).sum()) for saved in packed["layers"] for k in ("weight_owner", "bias_owner"))
    return {"params_packed": total, "params_owned": owned}
