"""initlab.activations: phi and phi' from the module against closed forms; profiles; family statistics by hand."""

import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from initlab.activations import Profile, family_stats, phi, profile
from initlab.errors import ConfigError
from initlab.theory import CONF_ACT
from tests.user_models import CenteredTanh, HalvingAct, ScaledTanh

SELU = (1.0507009873554805, 1.6732632423543772)  # (scale, alpha), Klambauer et al. 2017
_erf = np.vectorize(math.erf, otypes=[float])


def _sig(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def _mish(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.tanh(np.log1p(np.exp(x)))  # tanh(softplus(x))
    return x * t, t + x * (1.0 - t * t) * _sig(x)  # softplus' = sigmoid


TABLE = {  # name -> (phi, phi'), written from the papers' formulas, not from torch
    "sigmoid": (_sig, lambda x: _sig(x) * (1.0 - _sig(x))),
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float)),
    "leaky_relu": (lambda x: np.where(x > 0, x, 0.01 * x), lambda x: np.where(x > 0, 1.0, 0.01)),
    "elu": (lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))), lambda x: np.where(x > 0, 1.0, np.exp(x))),
    "selu": (
        lambda x: SELU[0] * np.where(x > 0, x, SELU[1] * np.expm1(np.minimum(x, 0))),
        lambda x: SELU[0] * np.where(x > 0, 1.0, SELU[1] * np.exp(x)),
    ),
    "gelu": (lambda x: x * _cdf(x), lambda x: _cdf(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)),
    "silu": (lambda x: x * _sig(x), lambda x: _sig(x) * (1.0 + x * (1.0 - _sig(x)))),
    "mish": (lambda x: _mish(x)[0], lambda x: _mish(x)[1]),
    "softplus": (  # beta 1, threshold 20: linear beyond
        lambda x: np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20)))),
        lambda x: np.where(x > 20, 1.0, _sig(x)),
    ),
}
X = np.linspace(-30.0, 30.0, 6001)  # (6001,)
X = X[(np.abs(X) > 1e-3) & (np.abs(X - 20) > 1e-3)]  # away from the kinks at 0 and softplus's switch at 20


def shipped(name: str) -> nn.Module:
    return instantiate(OmegaConf.load(CONF_ACT / f"{name}.yaml"))


def test_every_shipped_activation_has_a_closed_form_here() -> None:
    assert sorted(p.stem for p in CONF_ACT.glob("*.yaml")) == sorted(TABLE)  # a new act needs its row above


@pytest.mark.parametrize("name", sorted(TABLE))
def test_phi_and_its_derivative_match_the_closed_forms(name: str) -> None:
    f, df = phi(shipped(name))
    want_f, want_df = TABLE[name]
    np.testing.assert_allclose(f(X), want_f(X), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(df(X), want_df(X), rtol=1e-10, atol=1e-14)


def test_phi_is_elementwise_on_any_shape_in_float64_and_leaves_the_module_alone() -> None:
    f, df = phi(ScaledTanh(2.0))
    x = np.linspace(-5, 5, 12).reshape(3, 4)
    assert f(x).shape == (3, 4) and f(x).dtype == np.float64
    np.testing.assert_allclose(f(x), 2 * np.tanh(x / 2), rtol=1e-15)
    np.testing.assert_allclose(df(x), 1 - np.tanh(x / 2) ** 2, rtol=1e-14)
    prelu = nn.PReLU(init=0.25)  # float32 parameter: run in float64 all the same
    f, df = phi(prelu)
    assert f(np.array([-2.0, 3.0])).tolist() == [-0.5, 3.0] and df(np.array([-2.0, 3.0])).tolist() == [0.25, 1.0]
    assert prelu.weight.dtype == torch.float32
    rrelu = nn.RReLU(0.1, 0.3)  # random slopes in training; eval's fixed mean slope here
    assert phi(rrelu)[0](np.array([-1.0])).tolist() == pytest.approx([-0.2]) and rrelu.training


@pytest.mark.parametrize(
    ("name", "expected"),
    [("tanh", Profile("saturated_frac", (-1.0, 1.0))), ("sigmoid", Profile("saturated_frac", (0.0, 1.0))),
     ("relu", Profile("dead_frac"))] + [(n, Profile("flat_frac")) for n in
     ["leaky_relu", "elu", "selu", "gelu", "silu", "mish", "softplus"]],
)  # fmt: skip
def test_profiles_of_the_shipped_activations(name: str, expected: Profile) -> None:
    assert profile(shipped(name)) == expected


def test_a_users_activation_is_profiled_by_its_own_settings() -> None:
    assert profile(ScaledTanh(2.0)) == Profile("saturated_frac", (-2.0, 2.0))
    assert profile(ScaledTanh(0.5)) == Profile("saturated_frac", (-0.5, 0.5))  # same class and repr, own scale
    assert profile(nn.Softsign()).stat == "saturated_frac"  # z / (1 + |z|): bounded, slowly
    assert profile(nn.LeakyReLU(0.0)).stat == "dead_frac"  # a leaky relu without its leak is a relu


@pytest.mark.parametrize(
    ("act", "said"),
    [(HalvingAct(), "it turned 4 values into [2]"),
     (nn.Softmax(dim=1), "failed on a 1-D probe of 4 values: IndexError: Dimension out of range"),
     (nn.GELU(approximate="cubic"), "failed on a 1-D probe of 4 values: RuntimeError: approximate argument must"),
     (nn.Softmin(dim=0), "its value at one unit changed with the others"),
     (CenteredTanh(), "its value at one unit changed with the others")],
)  # fmt: skip
def test_an_activation_that_is_not_elementwise_is_one_line(act: nn.Module, said: str) -> None:
    with pytest.raises(ConfigError, match=r"elementwise, one output per unit") as info:
        profile(act)
    assert said in str(info.value) and "\n" not in str(info.value)


def test_saturated_frac_by_hand() -> None:
    a = torch.tensor([[0.995, -0.5], [-0.999, 0.2]])  # [B=2, 2]
    assert family_stats(Profile("saturated_frac", (-1.0, 1.0)), nn.Tanh(), a, a)["saturated_frac"] == 0.5
    a = torch.tensor([[0.005, 0.5], [0.995, 0.02]])  # sigmoid: within 0.01 of 0 or of 1
    assert family_stats(Profile("saturated_frac", (0.0, 1.0)), nn.Sigmoid(), a, a)["saturated_frac"] == 0.5
    a = torch.tensor([[1.99, -1.985], [1.97, 0.0]])  # bounds +-2: within 0.02 of one
    assert family_stats(Profile("saturated_frac", (-2.0, 2.0)), ScaledTanh(2.0), a, a)["saturated_frac"] == 0.5


def test_dead_frac_counts_units_never_positive_over_batch_and_positions() -> None:
    z = torch.tensor([[[-1.0, -2.0], [-1.0, 0.0]], [[0.0, -3.0], [-1.0, 0.5]]])  # [B=2, C=2, positions=2]
    stats = family_stats(Profile("dead_frac"), nn.ReLU(), z, torch.relu(z))
    assert list(stats) == ["dead_frac"] and stats["dead_frac"] == 0.5  # channel 0 never > 0 (0 is not); 1 once


def test_flat_frac_uses_the_modules_own_slope() -> None:
    z = torch.tensor([[-6.0, -2.0], [0.5, 3.0]])  # ELU' = e^z below 0: e^-6 = 0.0025 flat, e^-2 = 0.14 not
    assert family_stats(Profile("flat_frac"), nn.ELU(), z, nn.ELU()(z))["flat_frac"] == 0.25
    lrelu = nn.LeakyReLU(0.001)  # slope 0.001 < 0.01 on both negative entries
    assert family_stats(Profile("flat_frac"), lrelu, z, lrelu(z))["flat_frac"] == 0.5


def test_an_in_place_activation_gets_its_derivative_and_family_statistic() -> None:
    from initlab.activations import family_stats, phi, profile

    _, df = phi(torch.nn.LeakyReLU(0.1, inplace=True))  # in place on autograd's leaf was a traceback
    assert np.allclose(df(np.array([-2.0, 3.0])), [0.1, 1.0])
    act = torch.nn.LeakyReLU(0.1, inplace=True)
    z = torch.tensor([[-1.0, 2.0], [0.5, -3.0]])
    stats = family_stats(profile(act), act, z, act(z.clone()))
    assert stats["flat_frac"].item() == 0.0  # slopes 0.1 and 1: none flat


def test_a_step_activation_has_zero_slope_where_it_is_defined() -> None:
    from initlab.activations import phi
    from tests.user_models import HardStep

    f, df = phi(HardStep())
    x = np.array([-2.0, -0.5, 0.5, 2.0])
    assert list(f(x)) == [0, 0, 1, 1] and list(df(x)) == [0, 0, 0, 0]  # no gradient flows: autograd refused it
