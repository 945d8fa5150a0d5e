"""Weight initialisation schemes, chosen by name (the `init` config group).

Each scheme fills a Linear weight of shape [fan_out, fan_in] in place. Theory
(n_in = fan_in, n_out = fan_out):

| name            | distribution                 | Var(w)              |
|-----------------|------------------------------|---------------------|
| zero            | 0                            | 0                   |
| normal          | N(0, 1)                      | 1                   |
| lecun           | N(0, 1/n_in)                 | 1/n_in              |
| xavier          | N(0, 2/(n_in+n_out))         | 2/(n_in+n_out)      |
| xavier_uniform  | U(+-sqrt(6/(n_in+n_out)))    | 2/(n_in+n_out)      |
| kaiming         | N(0, 2/n_in)                 | 2/n_in              |
| kaiming_uniform | U(+-sqrt(6/n_in))            | 2/n_in              |
| orthogonal      | rows or cols orthonormal     | 1/max(n_in, n_out)  |
| default         | torch's Linear reset         | 1/(3 n_in)          |

Biases follow `bias`: "zero" (the theory's assumption) or "default" (torch's
U(+-1/sqrt(n_in))). The `default` scheme leaves both weight and bias to torch.
"""

import math
from collections.abc import Callable

import torch
from torch import nn

from initlab.errors import check_choice


def _lecun_normal_(w: torch.Tensor) -> torch.Tensor:
    return nn.init.normal_(w, 0.0, 1.0 / math.sqrt(w.shape[1]))  # std = 1/sqrt(fan_in)


def _keep_(w: torch.Tensor) -> torch.Tensor:
    return w  # torch's own reset_parameters() already ran in nn.Linear.__init__


INITS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "default": _keep_,
    "zero": nn.init.zeros_,
    "normal": nn.init.normal_,  # N(0, 1), the classic "naive" init
    "lecun": _lecun_normal_,
    "xavier": nn.init.xavier_normal_,
    "xavier_uniform": nn.init.xavier_uniform_,
    "kaiming": nn.init.kaiming_normal_,  # torch defaults: fan_in, gain sqrt(2)
    "kaiming_uniform": nn.init.kaiming_uniform_,
    "orthogonal": nn.init.orthogonal_,
}

BIAS_RULES = ("zero", "default")


def theoretical_std(name: str, fan_in: int, fan_out: int) -> float:
    """Std of the weights that scheme `name` draws for a [fan_out, fan_in] layer."""
    check_choice("init", name, list(INITS))
    var = {
        "default": 1 / (3 * fan_in),
        "zero": 0.0,
        "normal": 1.0,
        "lecun": 1 / fan_in,
        "xavier": 2 / (fan_in + fan_out),
        "xavier_uniform": 2 / (fan_in + fan_out),
        "kaiming": 2 / fan_in,
        "kaiming_uniform": 2 / fan_in,
        "orthogonal": 1 / max(fan_in, fan_out),  # W W^T = I on the smaller side
    }[name]
    return math.sqrt(var)


@torch.no_grad()
def apply_init(model: nn.Module, name: str, bias: str = "zero") -> nn.Module:
    """Initialise every nn.Linear in `model` with scheme `name`; biases by rule `bias`."""
    check_choice("init", name, list(INITS))
    check_choice("init.bias rule", bias, BIAS_RULES)
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            INITS[name](layer.weight)
            if layer.bias is not None and bias == "zero" and name != "default":
                layer.bias.zero_()
    return model
