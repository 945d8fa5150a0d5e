"""The MLP whose initialisation we study: Linear -> act -> ... -> Linear (logits)."""

import itertools
from collections.abc import Sequence

from torch import nn

from initlab.errors import check_choice

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,  # kwargs: negative_slope
    "elu": nn.ELU,  # kwargs: alpha
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def make_activation(name: str, **kwargs: float) -> nn.Module:
    check_choice("act", name, ACTIVATIONS)
    return ACTIVATIONS[name](**kwargs)


class MLP(nn.Sequential):
    """784 -> hidden_dims... -> num_classes. Hidden layer i is `self[2*i]` (Linear), `self[2*i+1]` (act)."""

    def __init__(
        self,
        hidden_dims: Sequence[int] = (100,),
        act: str = "relu",
        act_kwargs: dict | None = None,
        input_dim: int = 784,
        num_classes: int = 10,
    ) -> None:
        dims = [input_dim, *hidden_dims]
        layers: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise(dims):
            layers += [nn.Linear(n_in, n_out), make_activation(act, **(act_kwargs or {}))]
        layers.append(nn.Linear(dims[-1], num_classes))  # logits; softmax lives in the loss
        super().__init__(*layers)

    @property
    def hidden(self) -> list[tuple[nn.Linear, nn.Module]]:
        """(Linear, activation) pairs of the hidden layers, input side first."""
        return [(self[i], self[i + 1]) for i in range(0, len(self) - 1, 2)]
