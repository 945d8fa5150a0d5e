"""Diagnostics numbers against hand computations on fixed tiny networks, for every activation family."""

import math
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from initlab.diagnostics import activation_stats, grad_norms, predicted_preact_var, weight_stats
from initlab.inits import apply_init
from initlab.models import CNN, MLP
from initlab.theory import layer_variances, q_map
from tests.user_models import HardStep, ScaledTanh

X = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # [B=2, 2]
KAIMING = {"weight": None, "bias": "zero", "variance": "2 / fan_in"}


def tiny(act: Callable[[], nn.Module]) -> MLP:
    net = MLP(act, image_shape=(2,), hidden_dims=[2], num_classes=2)
    with torch.no_grad():
        net.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))  # z = [[1, -2], [3, -4]]
        net.fc1.bias.zero_()
    return net


def test_relu_stats_by_hand() -> None:
    stats, acts = activation_stats(tiny(nn.ReLU), X, nn.ReLU)
    assert stats["act1/preact_mean"] == pytest.approx(-0.5)
    assert stats["act1/preact_std"] == pytest.approx(math.sqrt(29 / 3))  # unbiased, as torch.std
    assert stats["act1/act_mean"] == pytest.approx(1.0)  # a = [[1, 0], [3, 0]]
    assert stats["act1/act_std"] == pytest.approx(math.sqrt(2))
    assert stats["act1/dead_frac"] == 0.5  # unit 2 is never positive; unit 1 always is
    assert "act1/saturated_frac" not in stats and "act1/flat_frac" not in stats
    assert torch.equal(acts["act1"], torch.tensor([[1.0, 0.0], [3.0, 0.0]]))


def test_relu_units_come_alive_with_one_positive_input() -> None:
    net = tiny(nn.ReLU)
    with torch.no_grad():
        net.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # z = x: unit 2 sees -2, then 4
    assert activation_stats(net, torch.tensor([[1.0, -2.0], [3.0, 4.0]]), nn.ReLU)[0]["act1/dead_frac"] == 0.0


X6 = torch.tensor([[1.0, 2.0], [3.0, 6.0]])  # z = [[1, -2], [3, -6]]


@pytest.mark.parametrize(
    ("act", "cls", "expected"),
    [
        (nn.ELU, nn.ELU, 0.25),  # ELU' = e^z below 0: e^-6 = 0.0025 is flat, e^-2 = 0.14 is not
        (nn.SELU, nn.SELU, 0.25),  # 1.0507 * 1.6733 e^z: 0.0044 at -6, 0.24 at -2
        (partial(nn.LeakyReLU, 0.001), nn.LeakyReLU, 0.5),  # slope 0.001 on both negative entries
        (partial(nn.LeakyReLU, 0.1), nn.LeakyReLU, 0.0),
        (nn.Softplus, nn.Softplus, 0.25),  # sigmoid(z): 0.0025 at -6, 0.12 at -2
        (nn.Mish, nn.Mish, 0.0),  # -0.012 at -6: just not flat
    ],
)
def test_activations_with_a_slope_below_0_count_flat_inputs_not_dead_units(
    act: Callable[[], nn.Module], cls: type[nn.Module], expected: float
) -> None:
    stats, _ = activation_stats(tiny(act), X6, cls)
    assert stats["act1/flat_frac"] == pytest.approx(expected) and "act1/dead_frac" not in stats


def test_tanh_and_sigmoid_saturation_by_hand() -> None:
    stats, _ = activation_stats(tiny(nn.Tanh), X, nn.Tanh)
    assert stats["act1/saturated_frac"] == 0.5  # tanh(3), tanh(-4) beyond 0.99; tanh(1), tanh(-2) not
    assert "act1/dead_frac" not in stats
    stats, _ = activation_stats(tiny(nn.Sigmoid), X, nn.Sigmoid)
    assert stats["act1/saturated_frac"] == 0.0  # sigmoid(-4) = 0.018, sigmoid(3) = 0.953: none beyond
    assert stats["act1/act_mean"] == pytest.approx(float(torch.sigmoid(torch.tensor([1.0, -2, 3, -4])).mean()))


@pytest.mark.parametrize(("act", "expected"), [(nn.GELU, 0.25), (nn.SiLU, 0.0), (nn.Mish, 0.0)])
def test_smooth_activations_count_their_near_zero_gradient_region(act: type[nn.Module], expected: float) -> None:
    stats, _ = activation_stats(tiny(act), X, act)
    # z = 1, -2, 3, -4: GELU'(-4) = -5e-4 is flat, GELU'(-2) = -0.085 is not; SiLU'(-4) = -0.053 and
    # Mish'(-4) = -0.054 are not either
    assert stats["act1/flat_frac"] == expected and "act1/dead_frac" not in stats


def test_conv_nets_count_dead_channels() -> None:
    net = CNN(nn.ReLU, image_shape=(1, 4, 4), channels=[2], hidden_dims=[])  # conv1 (2 ch) -> act1 -> pool1 -> out
    with torch.no_grad():
        net.conv1.weight.zero_()
        net.conv1.bias.copy_(torch.tensor([1.0, -1.0]))  # channel 1 always +1, channel 2 always -1
    stats, acts = activation_stats(net, torch.rand(3, 1, 4, 4), nn.ReLU)
    assert stats["act1/dead_frac"] == 0.5 and acts["act1"].shape == (3, 2, 4, 4)
    assert sorted(weight_stats(net, KAIMING)) == ["conv1/weight_std", "conv1/weight_std_init", "out/weight_std",
                                                  "out/weight_std_init"]  # fmt: skip
    assert weight_stats(net, KAIMING)["conv1/weight_std_init"] == pytest.approx(math.sqrt(2 / 25))  # 1 x 5 x 5


def test_weight_std_and_theory() -> None:
    stats = weight_stats(tiny(nn.ReLU), KAIMING)
    assert stats["fc1/weight_std"] == pytest.approx(math.sqrt(2 / 3))  # entries 1, 0, 0, -1
    assert stats["fc1/weight_std_init"] == pytest.approx(1.0)  # sqrt(2 / fan_in), fan_in = 2
    assert "out/weight_std" in stats


def test_grad_norm_is_the_l2_norm() -> None:
    net = tiny(nn.ReLU)
    net.fc1.weight.grad = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    assert grad_norms(net) == {"fc1/grad_norm": 5.0}  # out layer has no grad yet: skipped


GAUSSIAN = {
    "weight": {"_target_": "initlab.inits.fan_in_normal_", "sigma_w2": 1.76},
    "bias": {"_target_": "initlab.inits.normal_variance_", "variance": 0.05},
    "variance": "sigma_w2 / fan_in",
}
RELU_KAIMING = {"weight": {"_target_": "torch.nn.init.kaiming_normal_", "nonlinearity": "relu"}, "bias": "zero",
                "variance": "2 / fan_in"}  # fmt: skip


@pytest.mark.parametrize(
    ("act", "cls", "init"),
    [(nn.Tanh, nn.Tanh, GAUSSIAN), (nn.ReLU, nn.ReLU, RELU_KAIMING), (partial(ScaledTanh, 2.0), ScaledTanh, GAUSSIAN),
     (HardStep, HardStep, GAUSSIAN)],  # a step: no gradient flows (its theory once raised in autograd)
)  # fmt: skip
def test_step_0_theory_matches_the_measured_preactivation_variance(act: Callable, cls: type, init: dict) -> None:
    torch.manual_seed(0)
    net = apply_init(MLP(act, depth=6, width=1000), init)  # wide: mean-field theory holds to a few %
    x = torch.rand(400, 784)  # pixels in [0, 1], as MNIST's
    theory, (measured, _) = predicted_preact_var(net, init, x, cls), activation_stats(net, x, cls)
    assert sorted(theory) == sorted(f"act{i}/preact_var_theory" for i in range(1, 7))
    q0 = x.pow(2).mean().item()
    assert theory["act1/preact_var_theory"] == pytest.approx(1.76 * q0 + 0.05 if init is GAUSSIAN else 2 * q0)
    for i in range(1, 7):
        assert measured[f"act{i}/preact_var"] == pytest.approx(theory[f"act{i}/preact_var_theory"], rel=0.06)


def test_no_theory_where_it_has_no_sigma_w2_or_the_net_is_not_an_mlp() -> None:
    xavier = {"weight": {"_target_": "torch.nn.init.xavier_normal_"}, "bias": "zero", "variance": "1 / fan_out"}
    default = {"weight": None, "bias": "default", "variance": "1 / (3 * fan_in)"}
    for init in (xavier, default):
        assert predicted_preact_var(tiny(nn.Tanh), init, X, nn.Tanh) == {}
    assert predicted_preact_var(CNN(nn.Tanh), GAUSSIAN, torch.rand(2, 1, 28, 28), nn.Tanh) == {}
    assert predicted_preact_var(tiny(nn.Tanh), GAUSSIAN, X, nn.Tanh) != {}
    for key, value in (("sigma_w2", 2e4), ("sigma_w2", 0.005)):  # outside the theory's range: no answer
        init = GAUSSIAN | {"weight": GAUSSIAN["weight"] | {key: value}}
        assert predicted_preact_var(tiny(nn.Tanh), init, X, nn.Tanh) == {}
    init = GAUSSIAN | {"bias": GAUSSIAN["bias"] | {"variance": 11.0}}
    assert predicted_preact_var(tiny(nn.Tanh), init, X, nn.Tanh) == {}


def test_a_users_activation_gets_saturation_and_its_own_theory() -> None:
    """ScaledTanh(2) = 2 tanh(z / 2): bounded at +-2, so a within 0.02 of +-2 (|z| > 2 atanh(0.99) = 5.29)."""
    stats, _ = activation_stats(tiny(partial(ScaledTanh, 2.0)), torch.tensor([[1.0, 2.0], [6.0, 12.0]]), ScaledTanh)
    assert stats["act1/saturated_frac"] == 0.5  # z = 1, -2, 6, -12: 6 and -12 saturate
    assert "act1/dead_frac" not in stats and "act1/flat_frac" not in stats
    net = MLP(partial(ScaledTanh, 2.0), image_shape=(2,), hidden_dims=[3, 3, 3], num_classes=2)
    theory = predicted_preact_var(net, GAUSSIAN, X, ScaledTanh)  # q0 = mean(x^2) = 7.5
    # s tanh(u / s) at variance q is s^2 x tanh at variance q / s^2: q_map_s(q) = s^2 q_map(sigma_b2 / s^2, q / s^2)
    tanh = (np.tanh, lambda u: 1 - np.tanh(u) ** 2)
    q1 = 1.76 * 7.5 + 0.05
    q2 = 4 * q_map(tanh, 1.76, 0.05 / 4, q1 / 4)
    q3 = 4 * q_map(tanh, 1.76, 0.05 / 4, q2 / 4)
    assert [theory[f"act{i}/preact_var_theory"] for i in (1, 2, 3)] == pytest.approx([q1, q2, q3], rel=1e-9)
    assert q2 != pytest.approx(layer_variances(tanh, 1.76, 0.05, 7.5, 2)[1], rel=0.01)  # not tanh's own


def test_a_checkpoints_diagnostics_state_is_checked() -> None:
    from initlab.diagnostics import LayerDiagnostics
    from initlab.errors import CheckpointError

    cb = LayerDiagnostics()
    cb.load_state_dict({"probe": None, "step0": {"act1/act_std": 0.5}})
    assert cb.step0 == {"act1/act_std": 0.5}
    with pytest.raises(CheckpointError, match="step0 is 'junk', not a dict of numbers"):
        cb.load_state_dict({"probe": None, "step0": "junk"})
    junk = {"a word": "abc", "NaN": torch.full((2, 1, 4, 4), float("nan")), "integers": torch.zeros(2, 1, 4, 4).long(),
            "too many": torch.zeros(1, 1, 4, 4).expand(2**16 + 1, 1, 4, 4), "one image": torch.zeros(4)}  # fmt: skip
    for probe in junk.values():
        with pytest.raises(CheckpointError, match=r"probe is .*, not a batch of at most 65536 finite float images"):
            cb.load_state_dict({"probe": probe, "step0": {}})
    cb.load_state_dict({"probe": torch.zeros(5, 1, 3, 3), "step0": {}})  # a batch, but of other images than the data's
    with pytest.raises(CheckpointError, match=r"probe is torch\.float32 images of shape \[1, 3, 3\]; the data's"):
        cb.on_train_batch_start(SimpleNamespace(global_step=0), None, (torch.zeros(8, 1, 28, 28), torch.zeros(8)), 0)
