"""The network: a small VGG-style CNN for 28x28 grey images, and the served wrapper.

The wrapper is what gets exported: it takes intensities in 0..1, normalises them with the
training set's mean and standard deviation (baked in as constants) and returns P(pneumonia),
so callers never need to know the normalisation.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class PneumoniaNet(nn.Module):
    """Logit of pneumonia from a normalised [N,1,28,28] image."""

    def __init__(self, width: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_block(1, w), *_block(w, w), nn.MaxPool2d(2),              # 14x14
            *_block(w, 2 * w), *_block(2 * w, 2 * w), nn.MaxPool2d(2),  # 7x7
            *_block(2 * w, 4 * w), *_block(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * w, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ServedModel(nn.Module):
    """``image`` FP32 [N,1,28,28] in 0..1 -> ``probability`` FP32 [N,1]."""

    def __init__(self, net: PneumoniaNet, mean: float, std: float) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net((image - self.mean) / self.std))
