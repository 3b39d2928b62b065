"""Trained weights on disk, with what rebuilds the model (no pickled classes).

Dedicated models are saved as state dicts; RSN2 models in their packed form (one dense tensor per
layer plus owner ids), which is what a user would ship and what proves the parameter budget.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch
from torch import nn

from mtlbench.errors import ExpectedError
from mtlbench.fileio import atomic_path
from mtlbench.models.dedicated import build_dedicated, build_shared
from mtlbench.models.packing import pack, unpack
from mtlbench.models.rsn2 import RSN2Net

# 2: conv networks flatten in (h, w, c) order (models/layout.FlattenHWC); format-1 files hold Dense
# weights for (c, h, w) order, which would load without complaint and compute something else.
FORMAT = 2


def save_model(path: Path, model: nn.Module, spec: dict | None = None) -> int:
    """Write the model; `spec` holds the builder's arguments (dedicated: build_dedicated's; with
    "kind": "hps", build_shared's). Returns bytes written."""
    if isinstance(model, RSN2Net):
        payload = pack(model)
    else:
        payload = {"spec": {"kind": "dedicated", **spec}, "state_dict": model.state_dict()}
    payload["format"] = FORMAT
    buffer = io.BytesIO()  # not to the temporary path: torch.save names its archive after the file, so
    torch.save(payload, buffer)  # the random temp name would sit inside the file and differ every save
    with atomic_path(path, buffer.getbuffer().nbytes) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return buffer.getbuffer().nbytes


class ModelFileError(ExpectedError):
    """A weight file that cannot be read back (named, with what to do)."""


def load_model(path: Path) -> nn.Module:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise ModelFileError(f"{path}: not a readable mtlbench model file ({str(err).splitlines()[0]}); "
                             "`dvc repro train@<study>` retrains the units whose files no longer match their "
                             "recorded digests") from None
    if not isinstance(saved, dict) or "spec" not in saved:
        raise ModelFileError(f"{path}: a torch file, but not an mtlbench model file (no spec inside); "
                             "`dvc repro train@<study>` retrains the units whose files no longer match their "
                             "recorded digests")
    written_as = saved.get("format", 1)  # files from before the format number are format 1
    if written_as != FORMAT:
        raise ModelFileError(f"{path} is a format-{written_as} model file; this mtlbench reads format "
                             f"{FORMAT} (see models/store.py); retrain to rewrite it (dvc repro)")
    try:
        return _rebuild(saved)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ModelFileError(f"{path}: an mtlbench model file whose contents do not fit its spec "
                             f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else err!r}); "
                             "retrain it (`dvc repro train@<study>`)") from None


def _rebuild(saved: dict) -> nn.Module:
    spec = saved["spec"]
    if spec["kind"] == "rsn2":
        return unpack(saved)
    if spec["kind"] == "hps":
        model = build_shared(spec["architecture"], tuple(spec["in_shape"]), tuple(spec["n_classes"]), seed=0)
        model.load_state_dict(saved["state_dict"])
        return model.eval()
    model = build_dedicated(spec["architecture"], tuple(spec["in_shape"]), spec["n_classes"], seed=0)
    model.load_state_dict(saved["state_dict"])
    return model.eval()
