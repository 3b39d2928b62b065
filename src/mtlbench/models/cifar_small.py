"""`cifar_small` (SPEC.md section 3): a small shared encoder with a classification head per label
task and a decoder head for reconstructing the input image.

Encoder: 3 x [Conv(k3, stride 2, same, ReLU) -> Dropout(0.2) -> BatchNorm] with 8/16/32 filters,
then global max pooling (32 features for a 32x32 image). A classification head is Dense(256, ReLU)
-> Dense(n_classes). The reconstruction head is Dense(32) latent -> Dense(512, ReLU) -> reshape
4x4x32 -> 3 x ConvTranspose(k3, stride 2, same, ReLU) with 32/16/8 filters (4 -> 32 pixels) ->
ConvTranspose(k3, 3 channels) -> sigmoid. A dedicated model is the same network with one head.

BatchNorm uses Keras' defaults (momentum 0.99, epsilon 1e-3), which in PyTorch's convention is
momentum 0.01.
"""

from __future__ import annotations

import torch
from torch import nn

DROPOUT = 0.2
IMAGE_HEAD = 0  # a head size of 0 means: reconstruct the input image
FILTERS = (8, 16, 32)


def encoder(channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for out in FILTERS:
        layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.ReLU(), nn.Dropout(DROPOUT),
                   nn.BatchNorm2d(out, eps=1e-3, momentum=0.01)]
        channels = out
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


def classification_head(width: int, n_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, 256), nn.ReLU(), nn.Linear(256, n_classes))


def _upsample(c_in: int, c_out: int) -> list[nn.Module]:
    """Keras Conv2DTranspose(k3, strides 2, padding same): exactly doubles height and width."""
    return [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1), nn.ReLU()]


class ReconstructionHead(nn.Module):
    def __init__(self, width: int, in_shape: tuple[int, int, int]):
        super().__init__()
        c, h, w = in_shape
        if (h, w) != (32, 32):
            raise ValueError(f"the cifar_small decoder rebuilds 32x32 images, got {h}x{w}")
        self.dense = nn.Sequential(nn.Linear(width, 32), nn.Linear(32, 512), nn.ReLU())
        self.deconv = nn.Sequential(*_upsample(32, 32), *_upsample(32, 16), *_upsample(16, 8),
                                    nn.ConvTranspose2d(8, c, 3, padding=1), nn.Sigmoid())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.dense(features).view(-1, 32, 4, 4))


class CifarSmall(nn.Module):
    """forward(x) -> one output per head: logits, or a reconstructed image for an IMAGE_HEAD."""

    def __init__(self, in_shape: tuple[int, int, int], heads: tuple[int, ...]):
        super().__init__()
        self.encoder = encoder(in_shape[0])
        width = FILTERS[-1]
        self.heads = nn.ModuleList(
            ReconstructionHead(width, in_shape) if n == IMAGE_HEAD else classification_head(width, n) for n in heads
        )

    shared_representation = True  # every task reads one representation of one image (MGDA-UB)
    keep_representation = False

    def shared_parameters(self):
        return self.encoder.parameters()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.encoder(x)
        if self.keep_representation and self.training:  # set by MGDA-UB, which differentiates the losses by it
            self.representation = features
        return tuple(head(features) for head in self.heads)
