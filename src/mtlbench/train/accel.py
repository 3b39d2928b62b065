"""How a training step runs on a CUDA device: graphs, TF32, bf16 autocast, channels_last, compile.

Each is a params.yaml option (`cuda.<option>`: auto | true | false). `auto` takes the setting that
`python -m mtlbench.bench --ablation` measured faster for the architecture on an H100 (AUTO below;
the numbers are in README "Speed"). The CPU path ignores them all and stays float32, eager and
bit-reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping

import torch


@dataclass(frozen=True)
class Accel:
    graphs: bool = False  # capture the whole step (gather, forward, backward, Adam) as one CUDA graph
    tf32: bool = False  # TF32 tensor cores for float32 matmuls and convolutions
    bf16: bool = False  # bf16 autocast in the forward pass (weights, loss and Adam stay float32)
    channels_last: bool = False  # NHWC activations for convolutions
    compile: bool = False  # torch.compile the model (fused elementwise kernels)


OPTIONS = tuple(f.name for f in fields(Accel))
EAGER = Accel()  # the CPU path, and the baseline of the ablation

# Measured on an H100 (bench --ablation, 2026-11-23); see README "Speed" for the table.
AUTO: dict[str, Accel] = {
    "mlp": Accel(graphs=True, tf32=True),
    "cnn28": Accel(graphs=True, tf32=True, bf16=True, channels_last=True),
}
AUTO_OTHER = Accel(graphs=True, tf32=True)
# Whether run.stack_seeds=auto trains a dedicated model's seeds together on CUDA: only where the
# grouped network measured faster than one seed after another (grouped convolutions were not).
STACK_AUTO: dict[str, bool] = {"mlp": True, "cnn28": False}


def resolve_accel(settings: Mapping[str, str], architecture: str, device: torch.device) -> Accel:
    """The options for one architecture on `device` from the `cuda` params section."""
    if device.type != "cuda":
        return EAGER
    auto = AUTO.get(architecture, AUTO_OTHER)
    return Accel(**{name: getattr(auto, name) if settings[name] == "auto" else settings[name] == "true"
                    for name in OPTIONS})


def configure_backends(accel: Accel) -> None:
    """Process-wide switches: TF32 as chosen, and cuDNN restricted to deterministic algorithms, so that
    the same seed on the same GPU gives the same metrics."""
    if not torch.cuda.is_available():
        return
    torch.backends.cuda.matmul.allow_tf32 = accel.tf32
    torch.backends.cudnn.allow_tf32 = accel.tf32
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
