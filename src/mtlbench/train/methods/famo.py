"""Fast Adaptive Multitask Optimization (Liu et al., NeurIPS 2023, "FAMO: fast adaptive multitask
optimization"), as the authors' code runs it: one extra forward pass per step, no per-task
gradients."""

from __future__ import annotations

import torch

from mtlbench.train.methods.loss_level import LossLevel


class FAMO(LossLevel):
    """Task logits xi, z = softmax(xi). The step minimises sum_k z_k log(L_k) / c with
    c = sum_k z_k / L_k, so task k's weight is z_k / (c L_k) (the weights sum to 1). After the
    update the same batch's losses L' give delta_k = log L_k - log L'_k, and xi takes one Adam step
    (lr, weight decay `gamma`) along J_softmax(xi)^T delta: a task that improved less gains weight.
    The losses are floored at `floor` (the paper's min_losses, 0 for cross-entropy) plus 1e-8."""

    paper = "Liu et al., NeurIPS 2023"
    reference = "LibMTL LibMTL/weighting/FAMO.py (FAMO_w_lr 0.025, FAMO_w_gamma 1e-3)"
    deviations = ("LibMTL's FAMO step for step (tests/test_method_references.py, over several steps); against the "
                  "authors' famo.py: weight decay 1e-3 (LibMTL's) where theirs defaults to 0.01, and no clip of the shared "
                  "gradient where theirs clips it to norm 1.0 (max_norm)")

    wants_losses_after_step = True

    def __init__(self, n_tasks: int, lr: float = 0.025, gamma: float = 0.001, floor: float = 0.0):
        super().__init__(n_tasks)
        self.lr, self.gamma, self.floor = lr, gamma, floor
        for name in ("xi", "before", "adam_m", "adam_v"):
            self.register_buffer(name, torch.zeros(n_tasks))
        self.register_buffer("adam_t", torch.zeros(()))

    def _gaps(self, losses: torch.Tensor) -> torch.Tensor:
        return losses - self.floor + 1e-8

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        z = torch.softmax(self.xi, 0)
        gaps = self._gaps(losses)
        c = (z / gaps.detach()).sum()
        return (z * gaps.log()).sum() / c

    def effective_weights(self, losses: torch.Tensor) -> torch.Tensor:
        z = torch.softmax(self.xi, 0)
        gaps = self._gaps(losses)
        return z / ((z / gaps).sum() * gaps)

    def backward(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.before.copy_(losses.detach())
        _, weights = super().backward(losses)
        return losses.detach().sum(), weights  # recorded as the plain sum, comparable with validation

    def total(self, losses: torch.Tensor) -> torch.Tensor:
        return losses.sum()

    def after_step(self, losses: torch.Tensor) -> None:
        with torch.no_grad():
            delta = self._gaps(self.before).log() - self._gaps(losses).log()
            z = torch.softmax(self.xi, 0)
            grad = z * delta - z * (z * delta).sum() + self.gamma * self.xi  # J^T delta, J = diag(z) - z z^T
            self.adam_t += 1
            self.adam_m.mul_(0.9).add_(0.1 * grad)
            self.adam_v.mul_(0.999).add_(0.001 * grad * grad)
            m_hat = self.adam_m / (1 - 0.9 ** self.adam_t)
            v_hat = self.adam_v / (1 - 0.999 ** self.adam_t)
            self.xi.sub_(self.lr * m_hat / (v_hat.sqrt() + 1e-8))
