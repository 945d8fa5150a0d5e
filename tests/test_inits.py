"""Each init draws weights with the variance its theory states; bias rules and bad names behave."""

import math

import pytest
import torch
from torch import nn

from initlab.errors import ConfigError
from initlab.inits import INITS, apply_init, theoretical_std
from initlab.model import MLP

FAN_IN, FAN_OUT = 800, 600  # 480k weights: the sample variance is within ~0.5% of the truth
EXPECTED_VAR = {
    "normal": 1.0,
    "lecun": 1 / FAN_IN,
    "xavier": 2 / (FAN_IN + FAN_OUT),
    "xavier_uniform": 2 / (FAN_IN + FAN_OUT),
    "kaiming": 2 / FAN_IN,
    "kaiming_uniform": 2 / FAN_IN,
    "orthogonal": 1 / max(FAN_IN, FAN_OUT),
    "default": 1 / (3 * FAN_IN),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_VAR))
def test_weight_variance_matches_theory(name: str) -> None:
    torch.manual_seed(0)
    layer = apply_init(nn.Linear(FAN_IN, FAN_OUT), name)
    var = layer.weight.var().item()
    assert var == pytest.approx(EXPECTED_VAR[name], rel=0.03)
    assert abs(layer.weight.mean().item()) < 0.05 * math.sqrt(EXPECTED_VAR[name])
    assert theoretical_std(name, FAN_IN, FAN_OUT) == pytest.approx(math.sqrt(EXPECTED_VAR[name]))


def test_every_init_has_a_theory() -> None:
    assert set(INITS) == {*EXPECTED_VAR, "zero"}


def test_zero_gives_zeros() -> None:
    layer = apply_init(nn.Linear(50, 20), "zero")
    assert torch.count_nonzero(layer.weight) == 0 and torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("shape", [(100, 784), (784, 100)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape: tuple[int, int]) -> None:
    w = apply_init(nn.Linear(shape[1], shape[0]), "orthogonal").weight  # [fan_out, fan_in]
    gram = w @ w.T if shape[0] <= shape[1] else w.T @ w
    assert torch.allclose(gram, torch.eye(min(shape)), atol=1e-4)


def test_bias_rules() -> None:
    torch.manual_seed(0)
    assert torch.count_nonzero(apply_init(nn.Linear(10, 10), "kaiming", bias="zero").bias) == 0
    kept = apply_init(nn.Linear(10, 10), "kaiming", bias="default").bias
    assert torch.count_nonzero(kept) == 10 and kept.abs().max() <= 1 / math.sqrt(10)


def test_applies_to_every_linear_layer() -> None:
    torch.manual_seed(0)
    net = apply_init(MLP(hidden_dims=[300, 300], act="tanh"), "normal")
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    for layer in linears:
        assert layer.weight.std().item() == pytest.approx(1.0, rel=0.1)


def test_unknown_init_names_valid_choices() -> None:
    with pytest.raises(ConfigError, match=r"init='bogus'.*kaiming.*xavier"):
        apply_init(nn.Linear(2, 2), "bogus")
