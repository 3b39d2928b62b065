"""Trained weights on disk, with what rebuilds the model (no pickled classes)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mtlbench.fileio import atomic_path
from mtlbench.models.dedicated import build_dedicated


def save_model(path: Path, model: nn.Module, spec: dict) -> None:
    """`spec` holds build_dedicated's arguments: architecture, in_shape, n_classes."""
    with atomic_path(path) as tmp:
        torch.save({"spec": spec, "state_dict": model.state_dict()}, tmp)


def load_model(path: Path) -> nn.Module:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    spec = saved["spec"]
    model = build_dedicated(spec["architecture"], tuple(spec["in_shape"]), spec["n_classes"], seed=0)
    model.load_state_dict(saved["state_dict"])
    return model.eval()
