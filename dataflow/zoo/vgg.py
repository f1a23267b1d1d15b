"""VGG-16 (Simonyan and Zisserman, 2015) in torchvision's layout: ``features``, a 7x7
adaptive average pool and the three-layer ``classifier``. Randomly initialised."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["VGG", "vgg16"]

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    """VGG with 3x3 convolutions (bias, ReLU), 2x2 max pools and a 4096-4096 classifier.

    Parameters
    ----------
    cfg : sequence of int or "M"
        Output channels of each convolution, ``"M"`` for a max pool.
    num_classes : int, default 1000
    dropout : float, default 0.5
    """

    def __init__(self, cfg=VGG16, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU()]
                c_in = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(
            nn.Linear(c_in * 49, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def vgg16(num_classes: int = 1000) -> VGG:
    """VGG-16 (configuration D): 138,357,544 parameters at 1000 classes."""
    return VGG(VGG16, num_classes)
