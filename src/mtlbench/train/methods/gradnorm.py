"""GradNorm (Chen et al., ICML 2018, "GradNorm: gradient normalization for adaptive loss balancing
in deep multitask networks")."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import Method, MethodError

OPTIMIZERS = ("adam", "sgd")
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


class GradNorm(Method):
    """Learned loss weights w (summing to K) train on |G_k - mean(G) r_k^alpha|, where
    G_k = w_k |grad_W L_k| at the last shared weight W and r_k = (L_k / L_k(0)) / mean_j(L_j / L_j(0))
    is task k's relative inverse training rate (L(0): the first step's losses). Since G_k is linear
    in w_k and the target is held constant, that gradient is sign(G_k - target_k) |grad_W L_k|.
    The paper applies it "via standard update rules": `optimizer="adam"` (default) takes one Adam
    step of rate `lr` on w per step, as LibMTL's trainer does with the model's Adam;
    `optimizer="sgd"` one plain step (a step of lr |grad_W L_k|, which can be large). Then w is
    renormalised to sum K. The model trains on sum_k w_k L_k with the weights before the update."""

    needs_shared = True
    min_tasks = 2
    paper = "Chen et al., ICML 2018"
    reference = "Chen et al. 2018, Algorithm 1; LibMTL LibMTL/weighting/GradNorm.py (backward)"
    deviations = ("L(0) is the first step's losses (the paper's; LibMTL trains epoch 0 unweighted and takes its mean "
                  "loss); G_k at the last shared weight matrix (the paper's; LibMTL uses every shared parameter); w "
                  "renormalised to sum K (the paper's; LibMTL uses K softmax(w)); w takes its own Adam step of rate "
                  "0.025 (LibMTL: the model's optimizer and learning rate); the target mean(G) r^alpha from the current "
                  "w, held constant (as LibMTL)")

    def __init__(self, n_tasks: int, alpha: float = 1.5, lr: float = 0.025, optimizer: str = "adam"):
        super().__init__(n_tasks)
        if optimizer not in OPTIMIZERS:
            raise MethodError(f"method gradnorm: optimizer {optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
        self.alpha, self.lr, self.optimizer = alpha, lr, optimizer
        self.register_buffer("weights", torch.ones(n_tasks))
        self.register_buffer("initial", torch.ones(n_tasks))
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))
        self.register_buffer("moments", torch.zeros(2, n_tasks))  # Adam's first and second moments
        self.register_buffer("step", torch.zeros(()))

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
        stepped = (self.weights - self.lr * self.direction(torch.sign(g - target) * norms)).clamp(min=1e-6)
        self.weights.copy_(stepped * self.n_tasks / stepped.sum())

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """The step on w for its gradient `grad`, before the rate: the gradient itself (sgd) or
        Adam's bias-corrected m / (sqrt(v) + eps)."""
        if self.optimizer == "sgd":
            return grad
        (b1, b2), m, v = ADAM_BETAS, self.moments[0], self.moments[1]
        self.step += 1
        m.mul_(b1).add_((1 - b1) * grad)
        v.mul_(b2).add_((1 - b2) * grad**2)
        return (m / (1 - b1**self.step)) / ((v / (1 - b2**self.step)).sqrt() + ADAM_EPS)

    def backward(self, losses):
        norms = self.grad_norms(losses)
        used = self.weights.clone()
        (used * losses).sum().backward()
        self.update_weights(norms, losses.detach())
        return losses.detach().sum(), used

    def total(self, losses):
        return losses.sum()
