"""The models whose initialisation we study: an MLP (Linear -> act -> ... -> Linear) and a LeNet-5-like CNN.

A model is any nn.Module whose constructor takes `act`, a callable that returns a new activation module (the act
config, instantiated with _partial_), plus its own keyword arguments from its YAML. The shipped ones read the
data's `image_shape` and `num_classes` from the data config (`${data.image_shape}`), so any data set fits (the
CNN's images must be at least 12x12: smaller ones are refused in one line).
"""

import itertools
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import nn


class MLP(nn.Sequential):
    """prod(image_shape) -> hidden_dims... -> num_classes ([] is logistic regression), or `depth` hidden layers
    of `width` units when depth is given. Images are flattened first. Layers: fc1, act1, ..., out."""

    def __init__(
        self,
        act: Callable[[], nn.Module],
        image_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        hidden_dims: Sequence[int] = (100,),
        depth: int | None = None,
        width: int = 100,
    ) -> None:
        dims = [math.prod(image_shape), *([width] * depth if depth is not None else hidden_dims)]
        layers: dict[str, nn.Module] = {}
        for i, (n_in, n_out) in enumerate(itertools.pairwise(dims), start=1):
            layers |= {f"fc{i}": nn.Linear(n_in, n_out), f"act{i}": act()}
        layers["out"] = nn.Linear(dims[-1], num_classes)  # logits; softmax lives in the loss
        super().__init__(OrderedDict(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1))  # [B, C, H, W] -> [B, C*H*W] -> [B, classes]


_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}


def _size_after_convs(size: int, n_conv: int) -> int:
    """An image side after CNN's `n_conv` [5x5 conv -> 2x2 max-pool] blocks (the first conv pads by 2); 0 where a
    conv or pool would get less than its window."""
    for i in range(n_conv):
        size = size if i == 0 else size - 4  # 5x5 conv: padded to the same size, then unpadded (loses 4)
        if size < 2:  # the 2x2 pool needs 2
            return 0
        size //= 2
    return size


def min_image_size(n_conv: int = 2) -> int:
    """The smallest image side CNN takes with `n_conv` conv blocks: 12 for LeNet's two (12 -> 6 -> 2 -> 1)."""
    return next(s for s in itertools.count(1) if _size_after_convs(s, n_conv) >= 1)


class CNN(nn.Sequential):
    """LeNet-5-like: [5x5 conv -> act -> 2x2 max-pool] per entry of `channels`, then the hidden linear layers
    (each followed by act) and the logits. The first conv pads by 2, as LeNet-5 did on 32x32 inputs.
    Layers: conv1, act1, pool1, ..., flatten, fc1, act<k>, ..., out."""

    def __init__(
        self,
        act: Callable[[], nn.Module],
        image_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        channels: Sequence[int] = (6, 16),
        hidden_dims: Sequence[int] = (120, 84),
    ) -> None:
        n_conv = len(channels)
        if len(image_shape) != 3:
            raise ValueError(f"CNN needs image_shape [C, H, W]; this data's is {list(image_shape)}")
        if min(image_shape[1:]) < (least := min_image_size(n_conv)):
            n = _WORDS.get(n_conv, str(n_conv))
            raise ValueError(f"CNN needs images of at least {least}x{least} ({n} 5x5 convolution{'s' * (n_conv != 1)} "
                             f"and 2x2 pool{'s' * (n_conv != 1)}); this data's are {image_shape[1]}x{image_shape[2]}"
                             )  # fmt: skip
        layers: dict[str, nn.Module] = {}
        for i, (c_in, c_out) in enumerate(itertools.pairwise([image_shape[0], *channels]), start=1):
            conv = nn.Conv2d(c_in, c_out, kernel_size=5, padding=2 if i == 1 else 0)
            layers |= {f"conv{i}": conv, f"act{i}": act(), f"pool{i}": nn.MaxPool2d(2)}
        layers["flatten"] = nn.Flatten()  # [B, C, H, W] -> [B, C*H*W]
        with torch.no_grad():  # the flattened size, by running an empty image through the conv stack
            flat = nn.Sequential(*layers.values())(torch.zeros(1, *image_shape)).shape[1]
        for i, (n_in, n_out) in enumerate(itertools.pairwise([flat, *hidden_dims]), start=1):
            layers |= {f"fc{i}": nn.Linear(n_in, n_out), f"act{n_conv + i}": act()}
        layers["out"] = nn.Linear([flat, *hidden_dims][-1], num_classes)
        super().__init__(OrderedDict(layers))
