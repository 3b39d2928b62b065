"""GradNorm (Chen et al., ICML 2018, "GradNorm: gradient normalization for adaptive loss balancing
in deep multitask networks")."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import Method


class GradNorm(Method):
    """Learned loss weights w (summing to K) train on |G_k - mean(G) r_k^alpha|, where
    G_k = w_k |grad_W L_k| at the last shared weight W and r_k = (L_k / L_k(0)) / mean_j(L_j / L_j(0))
    is task k's relative inverse training rate (L(0): the first step's losses). Since G_k is linear
    in w_k and the target is held constant, that gradient is sign(G_k - target_k) |grad_W L_k|;
    w takes one SGD step of rate `lr` per step and is renormalised to sum K. The model trains on
    sum_k w_k L_k with the weights before the update."""

    needs_shared = True
    min_tasks = 2

    def __init__(self, n_tasks: int, alpha: float = 1.5, lr: float = 0.025):
        super().__init__(n_tasks)
        self.alpha, self.lr = alpha, lr
        self.register_buffer("weights", torch.ones(n_tasks))
        self.register_buffer("initial", torch.ones(n_tasks))
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    def on_bind(self, n_shared: int) -> None:
        matrices = [p for p in self.shared if p.dim() >= 2]
        self.last = [matrices[-1] if matrices else self.shared[-1]]  # a list: not registered as the method's parameter

    def grad_norms(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.autograd.grad(losses[k], self.last[0], retain_graph=True)[0].norm()
                            for k in range(len(losses))]).float()

    def update_weights(self, norms: torch.Tensor, losses: torch.Tensor) -> None:
        self.initial.copy_(torch.where(self.started, self.initial, losses))
        self.started.fill_(True)
        ratio = losses / self.initial
        rate = ratio / ratio.mean()
        g = self.weights * norms
        target = g.mean() * rate**self.alpha
        stepped = (self.weights - self.lr * torch.sign(g - target) * norms).clamp(min=1e-6)
        self.weights.copy_(stepped * self.n_tasks / stepped.sum())

    def backward(self, losses):
        norms = self.grad_norms(losses)
        used = self.weights.clone()
        (used * losses).sum().backward()
        self.update_weights(norms, losses.detach())
        return losses.detach().sum(), used

    def total(self, losses):
        return losses.sum()
