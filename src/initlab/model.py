"""The MLP whose initialisation we study: Linear -> act -> ... -> Linear (logits).

A model is any nn.Module whose constructor takes `act`, a callable that returns a new activation module
(the act config, instantiated with _partial_), plus its own keyword arguments from its YAML.
"""

import itertools
from collections.abc import Callable, Sequence

import torch
from torch import nn


class MLP(nn.Sequential):
    """input_dim -> hidden_dims... -> num_classes ([] is logistic regression), or `depth` hidden layers of
    `width` units when depth is given. Images are flattened first."""

    def __init__(
        self,
        act: Callable[[], nn.Module],
        hidden_dims: Sequence[int] = (100,),
        input_dim: int = 784,
        num_classes: int = 10,
        depth: int | None = None,
        width: int = 100,
    ) -> None:
        dims = [input_dim, *([width] * depth if depth is not None else hidden_dims)]  # depth: that many of width
        layers: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise(dims):
            layers += [nn.Linear(n_in, n_out), act()]
        layers.append(nn.Linear(dims[-1], num_classes))  # logits; softmax lives in the loss
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1))  # [B, 1, 28, 28] or [B, 784] -> [B, 784] -> [B, classes]

    @property
    def hidden(self) -> list[tuple[nn.Linear, nn.Module]]:
        """(Linear, activation) pairs of the hidden layers, input side first."""
        return [(self[i], self[i + 1]) for i in range(0, len(self) - 1, 2)]
