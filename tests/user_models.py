"""What a user brings from their own package: an activation class the template has never heard of."""

import torch
from torch import nn


class ScaledTanh(nn.Module):
    """scale * tanh(z / scale): tanh's shape, `scale` times its range."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.tanh(z / self.scale)


class TinyConvNet(nn.Module):
    """A model only the tests know: conv -> act -> global pool -> linear, built from the template's act factory."""

    def __init__(self, act, channels: int = 4, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, channels, kernel_size=3, stride=2), act())
        self.head = nn.Sequential(nn.Linear(channels * 13 * 13, 16), act(), nn.Linear(16, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))  # [B, 1, 28, 28] -> [B, C, 13, 13] -> [B, classes]
