"""How a training step runs: on CUDA graphs, TF32, bf16 autocast, channels_last, compile; on CPU
channels_last only.

Each is a params.yaml option (`cuda.<option>`, `cpu.channels_last`: auto | true | false). `auto`
takes the setting that `python -m mtlbench.bench` measured faster for the architecture (AUTO: on
an H100 with --ablation; CPU_AUTO: on the 2-core CPU; the numbers are in README "Speed"). The CPU
path stays float32, eager and deterministic: NHWC only changes the order in which oneDNN sums.
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
EAGER = Accel()  # float32, eager, NCHW: the baseline of the ablation

# Measured on an H100 (bench --ablation, 2026-11-23); see README "Speed" for the table.
AUTO: dict[str, Accel] = {
    "mlp": Accel(graphs=True, tf32=True),
    "cnn28": Accel(graphs=True, tf32=True, bf16=True, channels_last=True),
}
AUTO_OTHER = Accel(graphs=True, tf32=True)
# On CPU, NHWC spares oneDNN a reorder to and from its blocked layout around every convolution and
# makes the stride-1 max pools 10x faster (2-core CPU: cnn28 1.2x, cifar_shared 1.2x, cifar_small
# 1.05x per step). RSN2's per-task channel slices gained nothing: it takes the dedicated setting.
CPU_AUTO: dict[str, Accel] = {arch: Accel(channels_last=True) for arch in ("cnn28", "cifar_shared", "cifar_small")}
# Whether run.stack_seeds=auto trains a dedicated model's seeds together on CUDA: only where the
# grouped network measured faster than one seed after another (grouped convolutions were not).
STACK_AUTO: dict[str, bool] = {"mlp": True, "cnn28": False}


def resolve_accel(cuda: Mapping[str, str], cpu: Mapping[str, str], architecture: str, device: torch.device) -> Accel:
    """The options for one architecture on `device`, from the `cuda` or the `cpu` params section."""
    settings, auto = (cuda, AUTO.get(architecture, AUTO_OTHER)) if device.type == "cuda" else \
        (cpu, CPU_AUTO.get(architecture, EAGER))
    return Accel(**{name: _chosen(settings.get(name), getattr(auto, name)) for name in OPTIONS})


def _chosen(setting: str | None, auto: bool) -> bool:
    """auto | true | false; an option the section does not have (graphs on CPU) is off."""
    return auto if setting == "auto" else setting == "true"


def configure_backends(accel: Accel) -> None:
    """Process-wide switches: TF32 as chosen, and cuDNN restricted to deterministic algorithms, so that
    the same seed on the same GPU gives the same metrics."""
    if not torch.cuda.is_available():
        return
    torch.backends.cuda.matmul.allow_tf32 = accel.tf32
    torch.backends.cudnn.allow_tf32 = accel.tf32
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
