"""Diagnostics numbers against hand computations on a fixed tiny network."""

import math

import pytest
import torch
from torch import nn

from initlab.diagnostics import activation_stats, grad_norms, weight_stats
from initlab.model import MLP

X = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # [B=2, 2]


ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
KAIMING = {"weight": None, "bias": "zero", "variance": "2 / fan_in"}


def tiny(act: str) -> MLP:
    net = MLP(ACTS[act], hidden_dims=[2], input_dim=2, num_classes=2)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))  # z = [[1, -2], [3, -4]]
        net[0].bias.zero_()
    return net


def test_relu_stats_by_hand() -> None:
    stats, acts = activation_stats(tiny("relu"), X)
    assert stats["layer1/preact_mean"] == pytest.approx(-0.5)
    assert stats["layer1/preact_std"] == pytest.approx(math.sqrt(29 / 3))  # unbiased, as torch.std
    assert stats["layer1/act_mean"] == pytest.approx(1.0)  # a = [[1, 0], [3, 0]]
    assert stats["layer1/act_std"] == pytest.approx(math.sqrt(2))
    assert stats["layer1/dead_frac"] == 0.5  # unit 2 is 0 for both samples
    assert "layer1/saturated_frac" not in stats
    assert torch.equal(acts["layer1"], torch.tensor([[1.0, 0.0], [3.0, 0.0]]))


def test_tanh_and_sigmoid_saturation_by_hand() -> None:
    stats, _ = activation_stats(tiny("tanh"), X)
    assert stats["layer1/saturated_frac"] == 0.5  # tanh(3), tanh(-4) beyond 0.99; tanh(1), tanh(-2) not
    assert "layer1/dead_frac" not in stats
    stats, _ = activation_stats(tiny("sigmoid"), X)
    assert stats["layer1/saturated_frac"] == 0.0  # sigmoid(-4) = 0.018, sigmoid(3) = 0.953: none beyond
    assert stats["layer1/act_mean"] == pytest.approx(float(torch.sigmoid(torch.tensor([1.0, -2, 3, -4])).mean()))


def test_weight_std_and_theory() -> None:
    stats = weight_stats(tiny("relu"), KAIMING)
    assert stats["layer1/weight_std"] == pytest.approx(math.sqrt(2 / 3))  # entries 1, 0, 0, -1
    assert stats["layer1/weight_std_init"] == pytest.approx(1.0)  # sqrt(2 / fan_in), fan_in = 2
    assert "out/weight_std" in stats


def test_grad_norm_is_the_l2_norm() -> None:
    net = tiny("relu")
    net[0].weight.grad = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    assert grad_norms(net) == {"layer1/grad_norm": 5.0}  # out layer has no grad yet: skipped


GAUSSIAN = {
    "weight": {"_target_": "initlab.inits.fan_in_normal_", "sigma_w2": 1.76},
    "bias": {"_target_": "initlab.inits.normal_variance_", "variance": 0.05},
    "variance": "sigma_w2 / fan_in",
}


@pytest.mark.parametrize(
    ("act", "init"),
    [(nn.Tanh, GAUSSIAN), (nn.ReLU, {"weight": {"_target_": "torch.nn.init.kaiming_normal_", "nonlinearity": "relu"},
                                     "bias": "zero", "variance": "2 / fan_in"})],
)  # fmt: skip
def test_step_0_theory_matches_the_measured_preactivation_variance(act: type, init: dict) -> None:
    from initlab.diagnostics import predicted_preact_var
    from initlab.inits import apply_init

    torch.manual_seed(0)
    net = apply_init(MLP(act, depth=6, width=1000), init)  # wide: mean-field theory holds to a few %
    x = torch.rand(400, 784)  # pixels in [0, 1], as MNIST's
    theory, (measured, _) = predicted_preact_var(net, init, x), activation_stats(net, x)
    assert sorted(theory) == [f"layer{i}/preact_var_theory" for i in range(1, 7)]
    q0 = x.pow(2).mean().item()
    assert theory["layer1/preact_var_theory"] == pytest.approx(1.76 * q0 + 0.05 if act is nn.Tanh else 2 * q0)
    for i in range(1, 7):
        assert measured[f"layer{i}/preact_var"] == pytest.approx(theory[f"layer{i}/preact_var_theory"], rel=0.06)


def test_no_theory_where_it_has_no_sigma_w2() -> None:
    from initlab.diagnostics import predicted_preact_var

    xavier = {
        "weight": {"_target_": "torch.nn.init.xavier_normal_"},
        "bias": "zero",
        "variance": "2 / (fan_in + fan_out)",
    }
    default = {"weight": None, "bias": "default", "variance": "1 / (3 * fan_in)"}
    for init in (xavier, default):
        assert predicted_preact_var(tiny("tanh"), init, X) == {}
