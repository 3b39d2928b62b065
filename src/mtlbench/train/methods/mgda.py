"""MGDA (Sener and Koltun, NeurIPS 2018, "Multi-task learning as multi-objective optimization"):
the update is the min-norm point of the convex hull of the task gradients, a common descent
direction. `MGDA` uses the gradients of the shared parameters; `MGDAUB` the paper's upper bound,
the gradients of the shared representation (one backward pass to the representation per task
instead of through the trunk), then one backward pass of the weighted loss."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import GradientMethod, Method
from mtlbench.train.methods.simplex import min_norm_weights


class MGDA(GradientMethod):
    """The min-norm point of the task gradients' hull, solved to convergence (simplex.py): exact
    for two tasks, interior-point Newton beyond (the authors' Frank-Wolfe stops after 250 steps)."""

    paper = "Sener and Koltun, NeurIPS 2018"
    reference = "LibMTL LibMTL/weighting/MGDA.py (MinNormSolver, backward)"
    deviations = ("min-norm point solved to convergence (closed form for K = 2, interior-point Newton with 30 barrier "
                  "rounds beyond: within 1e-4 of the exact point at gradient norm ratios to 1e4) where LibMTL stops "
                  "Frank-Wolfe after 250 steps; gradients not normalised (LibMTL's default mgda_gn='none')")

    def combine(self, grads, losses):
        weights = min_norm_weights(grads @ grads.T)
        return weights @ grads, weights


class MGDAUB(Method):
    """MGDA-UB: weights from the gradients of the shared representation z (the model stores it as
    `representation` in forward), then backward of sum_k a_k L_k through the whole model."""

    needs_representation = True
    min_tasks = 2
    paper = "Sener and Koltun, NeurIPS 2018"
    reference = "LibMTL LibMTL/weighting/MGDA.py with rep_grad=True (gradients of the shared representation)"
    deviations = "min-norm point solved to convergence, as `mgda`"

    def bind(self, model, trained):
        super().bind(model, trained)
        model.keep_representation = True

    def backward(self, losses):
        z = self.model[0].__dict__.pop("representation")
        rows = [torch.autograd.grad(losses[k], z, retain_graph=True)[0].reshape(-1) for k in range(len(losses))]
        grads = torch.stack(rows).float()
        weights = min_norm_weights(grads @ grads.T).detach()
        (weights * losses).sum().backward()
        return losses.detach().sum(), weights
