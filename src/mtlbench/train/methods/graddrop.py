"""Gradient Sign Dropout (Chen et al., NeurIPS 2020, "Just pick a sign: optimizing deep multitask
models with gradient sign dropout"), on the shared parameters' gradients."""

from __future__ import annotations

import torch

from mtlbench.train.methods.base import GradientMethod, span_weights


class GradDrop(GradientMethod):
    """Per element, P = (1 + sum_k g_k / sum_k |g_k|) / 2 is the purity of the positive sign; with
    U ~ Uniform(0, 1), the positive gradients are kept where P > U and the negative ones where
    P < U; the update is the sum of what is kept. (The paper applies it at a layer's activations;
    on the parameters it needs no hook into the model.) U comes from torch's device generator."""

    paper = "Chen et al., NeurIPS 2020"
    reference = "LibMTL LibMTL/weighting/GradDrop.py (backward, leak 0)"
    deviations = "applied to the shared parameters' gradients, where the paper and LibMTL (rep_grad) apply it at the shared representation"

    def uniform(self, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(like.shape, device=like.device, dtype=like.dtype)

    def combine(self, grads, losses):
        purity = 0.5 * (1 + grads.sum(0) / grads.abs().sum(0).clamp(min=1e-30))
        u = self.uniform(purity)
        keep = ((purity > u) & (grads > 0)) | ((purity < u) & (grads < 0))
        update = (grads * keep).sum(0)
        return update, span_weights(grads, update)
