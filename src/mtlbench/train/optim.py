"""The optimizer a protocol names, and what changes in it from step to step.

PyTorch's fused Adam/AdamW kernels do the update (one pass over each tensor). Two things vary
per step and are written into the optimizer before each one (`StepSchedule`):
- the learning rate of a warm-up + cosine schedule (protocol `schedule`, `warmup_epochs`);
- Keras' epsilon (protocol `epsilon_hat`). Keras adds eps to sqrt(v) and folds the bias
  corrections into the step size; PyTorch adds eps to sqrt(v / (1 - beta2^t)). The two updates are
  the same when PyTorch's eps at step t is eps / sqrt(1 - beta2^t) (3.2e-6 at step 1 for 1e-7).
Under CUDA graphs a float written into the optimizer would be frozen into the captured step, so
there the learning rate is a tensor filled before each replay, and Keras' Adam is `KerasAdam`,
whose step count is a tensor too.
"""

from __future__ import annotations

import math

import torch

from mtlbench.train.accel import EAGER, Accel
from mtlbench.train.protocols import Protocol

# 64 bytes of float32: a whole number of vectors on AVX2 (8 lanes) and AVX-512 (16 lanes)
FUSED_CPU_ALIGN = 16


def make_optimizer(params, protocol: Protocol, device: torch.device, accel: Accel = EAGER,
                   copies: int = 1) -> torch.optim.Optimizer:
    """Adam or AdamW as the protocol says, mostly as PyTorch's fused kernel: one pass over each
    tensor instead of a dozen (CPU mlp step: optimizer 19-21 -> 7-9 ms of ~160 ms); graph-safe on
    CUDA when the step is captured. `copies`: how many models each tensor stacks along its first
    dimension (seeds).

    On CPU the fused kernel updates whole vectors of elements, then the last few of a tensor one by
    one, and the two paths round differently. A tensor whose per-copy size is a multiple of
    FUSED_CPU_ALIGN has no such tail whether stacked or alone, so it is fused; the few others (small
    biases, heads) take the default kernel, and a seed trained alone or stacked updates identically."""
    params = list(params)
    kind = torch.optim.AdamW if protocol.optimizer == "adamw" else torch.optim.Adam
    settings = {"lr": protocol.lr, "betas": protocol.betas, "eps": protocol.eps, "weight_decay": protocol.weight_decay}
    if device.type == "cuda":
        if protocol.epsilon_hat:
            return KerasAdam(params, lr=protocol.lr, betas=protocol.betas, eps=protocol.eps)
        if accel.graphs:  # a tensor learning rate: StepSchedule fills it between replays
            settings["lr"] = torch.tensor(protocol.lr, device=device)
        return kind(params, **settings, fused=True, capturable=accel.graphs)
    untailed = lambda p: p.numel() // copies % FUSED_CPU_ALIGN == 0  # noqa: E731
    groups = [{"params": [p for p in params if untailed(p)], "fused": True},
              {"params": [p for p in params if not untailed(p)], "fused": False}]
    return kind([g for g in groups if g["params"]], **settings)


def learning_rate(protocol: Protocol, step: int, steps_per_epoch: int) -> float:
    """The learning rate of optimizer step `step` (1-based): linear warm-up over the first
    warmup_epochs, then constant or a half cosine down to 0 at the last step of max_epochs."""
    warmup = protocol.warmup_epochs * steps_per_epoch
    if step <= warmup:
        return protocol.lr * step / warmup
    if protocol.schedule == "constant":
        return protocol.lr
    total = protocol.max_epochs * steps_per_epoch
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return protocol.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def keras_epsilon(eps: float, beta2: float, step: int) -> float:
    """PyTorch's eps that makes its Adam step `step` equal Keras' with `eps` (see module doc)."""
    return eps / math.sqrt(1.0 - beta2 ** step)


class StepSchedule:
    """Writes the step's learning rate and (Keras) epsilon into the optimizer before each step.
    Counts steps itself (a host integer: no device sync), so a fresh optimizer (a new phase)
    takes a fresh schedule."""

    def __init__(self, optimizer: torch.optim.Optimizer, protocol: Protocol, steps_per_epoch: int):
        self.optimizer, self.protocol, self.steps_per_epoch = optimizer, protocol, steps_per_epoch
        self.step = 0
        self.varies_lr = protocol.warmup_epochs > 0 or protocol.schedule != "constant"
        self.keras_eps = protocol.epsilon_hat and not isinstance(optimizer, KerasAdam)

    def before_step(self) -> None:
        self.step += 1
        for group in self.optimizer.param_groups:
            if self.varies_lr:
                lr = learning_rate(self.protocol, self.step, self.steps_per_epoch)
                if torch.is_tensor(group["lr"]):
                    group["lr"].fill_(lr)
                else:
                    group["lr"] = lr
            if self.keras_eps:
                group["eps"] = keras_epsilon(self.protocol.eps, self.protocol.betas[1], self.step)


class KerasAdam(torch.optim.Optimizer):
    """Keras' Adam written out (keras.optimizers.Adam, amsgrad off): m and v as in Adam, then
    p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps). The step count is a tensor on the
    parameters' device, so the whole update can be captured in a CUDA graph; used on CUDA, where it
    is cheap. On CPU the fused PyTorch kernel with Keras' epsilon per step does the same update."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-7):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), device=p.device)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"].add_(1)
                t = state["step"]
                m, v, g = state["exp_avg"], state["exp_avg_sq"], p.grad
                m.mul_(b1).add_(g * (1 - b1))
                v.mul_(b2).add_(g * g * (1 - b2))
                size = group["lr"] * (1 - b2 ** t).sqrt() / (1 - b1 ** t)
                p.sub_(size * m / (v.sqrt() + group["eps"]))
        return None
