"""Each init config draws weights with the variance its theory states, on Linear and Conv layers alike.

The expected variances below are an independent statement of the textbook formulas: the configs' own
`variance` expressions must agree with them, and the weights torch draws must agree with both.
"""

import logging
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from initlab.errors import ConfigError
from initlab.inits import apply_init, calibrate, expected_variance, fans, sigma_w2, variance, weighted_layers
from initlab.models import MLP
from initlab.run.cli import CONF_DIR

FAN_IN, FAN_OUT = 800, 600  # 480k weights: the sample variance is within ~0.5% of the truth
TEXTBOOK = {
    "zero": 0.0,
    "normal": 1.0,
    "lecun": 1 / FAN_IN,
    "xavier": 2 / (FAN_IN + FAN_OUT),
    "xavier_uniform": 2 / (FAN_IN + FAN_OUT),
    "kaiming": 2 / FAN_IN,
    "kaiming_uniform": 2 / FAN_IN,
    "orthogonal": 1 / max(FAN_IN, FAN_OUT),
    "default": 1 / (3 * FAN_IN),
    "gaussian": 1 / FAN_IN,  # sigma_w2 = 1 unless set
    "lsuv": None,  # data-dependent: set by a batch (test_lsuv_makes_every_layers_output_unit_variance)
}
SIGMA_W2 = {"lecun": 1.0, "kaiming": 2.0, "kaiming_uniform": 2.0, "default": 1 / 3, "zero": 0.0, "gaussian": 1.0}


def init(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "init" / f"{name}.yaml"), resolve=True)


def test_every_shipped_init_has_a_textbook_entry() -> None:
    assert {p.stem for p in (Path(CONF_DIR) / "init").glob("*.yaml")} == set(TEXTBOOK)


@pytest.mark.parametrize("name", sorted(k for k, v in TEXTBOOK.items() if v is not None))
def test_weight_variance_matches_theory(name: str) -> None:
    torch.manual_seed(0)
    layer = apply_init(nn.Linear(FAN_IN, FAN_OUT), init(name))
    assert expected_variance(init(name), FAN_IN, FAN_OUT) == pytest.approx(TEXTBOOK[name])  # the config's claim
    assert layer.weight.var().item() == pytest.approx(TEXTBOOK[name], rel=0.03, abs=1e-12)  # what torch drew
    assert abs(layer.weight.mean().item()) <= 0.05 * math.sqrt(TEXTBOOK[name])
    bias = layer.bias.abs().max().item()
    assert bias == 0 if name != "default" else 0 < bias <= 1 / math.sqrt(FAN_IN)


def test_gaussian_draws_sigma_w2_over_fan_in_and_sigma_b2(make_cfg) -> None:
    from initlab.inits import bias_variance

    cfg = OmegaConf.to_container(make_cfg("init=gaussian", "init.sigma_w2=1.76", "init.sigma_b2=0.05").init,
                                 resolve=True)  # fmt: skip
    torch.manual_seed(0)
    layer = apply_init(nn.Linear(FAN_IN, 4000), cfg)  # 4000 biases: their variance within ~5 %
    assert layer.weight.var().item() == pytest.approx(1.76 / FAN_IN, rel=0.03)
    assert layer.bias.var().item() == pytest.approx(0.05, rel=0.08) and abs(layer.bias.mean().item()) < 0.02
    assert sigma_w2(cfg) == pytest.approx(1.76) and bias_variance(cfg) == 0.05
    assert bias_variance(init("kaiming")) == 0.0 and bias_variance(init("default")) is None


@pytest.mark.parametrize("name", ["kaiming", "lecun", "xavier", "default", "orthogonal"])
def test_conv_layers_get_the_same_theory_with_the_receptive_field(name: str) -> None:
    torch.manual_seed(0)
    conv = apply_init(nn.Conv2d(32, 64, kernel_size=5), init(name))  # fan_in = 32*25, fan_out = 64*25
    assert fans(conv.weight) == (800, 1600, 64, 800)  # and as a matrix: 64 rows (out channels) of 800
    stated = expected_variance(init(name), *fans(conv.weight))  # orthogonal: 1/800, not 1/max(800, 1600)
    assert conv.weight.var().item() == pytest.approx(stated, rel=0.03)


def test_an_init_whose_draw_is_not_its_stated_variance_is_refused() -> None:
    """A formula that does not follow the draw (2 / fan_in over mode=fan_out) would have the record's theory
    describe another init."""
    kaiming = init("kaiming")
    wrong = {**kaiming, "weight": {**kaiming["weight"], "mode": "fan_out"}, "variance": "2 / fan_in"}
    with pytest.raises(ConfigError, match=r"init.variance='2 / fan_in' states 0.002551 for fc1 \(fan_in 784, "
                                          r"fan_out 100\), but init.weight drew weights of variance 0.0"):  # fmt: skip
        apply_init(MLP(nn.ReLU, hidden_dims=[100]), wrong)


@pytest.mark.parametrize(
    ("name", "changes", "stated"),
    [("kaiming", {"mode": "fan_out"}, 2 / 100), ("kaiming", {"nonlinearity": "tanh"}, (5 / 3) ** 2 / 784),
     ("kaiming_uniform", {"nonlinearity": "leaky_relu", "a": 0.5}, 2 / 1.25 / 784),
     ("lecun", {"nonlinearity": "relu"}, 2 / 784), ("kaiming", {"nonlinearity": "selu"}, 0.75**2 / 784)],
)  # fmt: skip
def test_kaimings_stated_variance_follows_its_mode_and_nonlinearity(name: str, changes: dict, stated: float) -> None:
    torch.manual_seed(0)
    chosen = {**init(name), "weight": {**init(name)["weight"], **changes}}
    net = apply_init(MLP(nn.ReLU, hidden_dims=[100]), chosen)  # the drawn variance is checked against it, too
    assert expected_variance(chosen, *fans(net.fc1.weight)) == pytest.approx(stated, rel=1e-12)
    assert net.fc1.weight.var().item() == pytest.approx(stated, rel=0.03)


def test_kaiming_gain_is_torchs() -> None:
    from initlab.inits import NONLINEARITIES, kaiming_gain

    for nonlinearity in NONLINEARITIES:
        for a in (0.0, 0.2, 3.0):
            want = torch.nn.init.calculate_gain(nonlinearity, a if nonlinearity == "leaky_relu" else None)
            assert kaiming_gain(nonlinearity, a) == pytest.approx(want, rel=1e-15)


@pytest.mark.parametrize("name", sorted(TEXTBOOK))
def test_sigma_w2_where_the_theory_has_one(name: str) -> None:
    expected = SIGMA_W2.get(name)  # None: Var(w) x fan_in depends on the layer (xavier, orthogonal, normal)
    assert sigma_w2(init(name)) == (pytest.approx(expected) if expected is not None else None)


def test_variance_expressions_are_arithmetic_only() -> None:
    assert variance("gain ** 2 * 2 / (fan_in + fan_out)", {"gain": 2, "fan_in": 3, "fan_out": 5}) == 1.0
    for bad in ("__import__('os').system('x')", "fan_in.__class__", "open('f')", "[1]"):
        with pytest.raises(ValueError):
            variance(bad, {"fan_in": 1})


def test_zero_gives_zeros() -> None:
    layer = apply_init(nn.Linear(50, 20), init("zero"))
    assert torch.count_nonzero(layer.weight) == 0 and torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("shape", [(100, 784), (784, 100)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape: tuple[int, int]) -> None:
    w = apply_init(nn.Linear(shape[1], shape[0]), init("orthogonal")).weight  # [fan_out, fan_in]
    gram = w @ w.T if shape[0] <= shape[1] else w.T @ w
    assert torch.allclose(gram, torch.eye(min(shape)), atol=1e-4)


def test_bias_rules() -> None:
    torch.manual_seed(0)
    assert torch.count_nonzero(apply_init(nn.Linear(10, 10), init("kaiming")).bias) == 0
    kept = apply_init(nn.Linear(10, 10), {**init("kaiming"), "bias": "default"}).bias
    assert torch.count_nonzero(kept) == 10 and kept.abs().max() <= 1 / math.sqrt(10)


def test_applies_to_every_weighted_layer_and_names_the_others(caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    caplog.set_level(logging.INFO, logger="initlab.inits")
    net = apply_init(nn.Sequential(MLP(nn.Tanh, hidden_dims=[300, 300]), nn.LayerNorm(10)), init("normal"))
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    for layer in linears:
        assert layer.weight.std().item() == pytest.approx(1.0, rel=0.1)
    assert "1 (LayerNorm)" in caplog.text and "torch's default" in caplog.text


def test_a_config_can_change_the_init_arguments() -> None:
    torch.manual_seed(0)
    fan_out_init = {
        **init("kaiming"),
        "weight": {**init("kaiming")["weight"], "mode": "fan_out"},
        "variance": "2 / fan_out",
    }  # the formula follows the draw (else refused: the test below)
    layer = apply_init(nn.Linear(FAN_IN, 100), fan_out_init)
    assert layer.weight.var().item() == pytest.approx(2 / 100, rel=0.03)  # fan_out honoured, not ignored


def test_lsuv_makes_every_layers_output_unit_variance() -> None:
    from initlab.inits import lsuv
    from initlab.models import MLP

    torch.manual_seed(0)
    net = apply_init(MLP(nn.Tanh, depth=4, width=50), init("lsuv"))
    x = torch.rand(100, 1, 28, 28) * 3  # [B, 1, 28, 28]: far from unit variance, as pixels are
    before = net.fc1.weight.clone()
    assert expected_variance(init("lsuv"), 784, 50) is None and sigma_w2(init("lsuv")) is None
    lsuv(net, x, tol=0.05)
    outputs = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: outputs.setdefault(n, o)) for n, m in net.named_children()
             if isinstance(m, nn.Linear)]  # fmt: skip
    net(x)
    for h in hooks:
        h.remove()
    assert set(outputs) == {"fc1", "fc2", "fc3", "fc4", "out"}
    assert all(abs(o.var().item() - 1) <= 0.05 for o in outputs.values()), {
        n: o.var().item() for n, o in outputs.items()
    }
    ratio = net.fc1.weight / before  # a rescaling of the orthogonal init, not a new draw
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio))


def test_a_fill_function_that_returns_new_values_has_them_applied() -> None:
    net = MLP(nn.Tanh, hidden_dims=[20])
    fill = {"_target_": "tests.user_models.returned_init"}  # returns torch.full_like(t, value), leaves t alone
    apply_init(net, {"weight": {**fill, "value": 0.25}, "bias": {**fill, "value": 0.125}})
    assert all((m.weight == 0.25).all() and (m.bias == 0.125).all() for m in (net.fc1, net.out))
    with pytest.raises(ConfigError, match=r"init.weight returned a tensor of shape \[15680\] for a parameter of "
                                          r"shape \[20, 784\]: fill the tensor in place"):  # fmt: skip
        apply_init(net, {"weight": {"_target_": "tests.user_models.flat_init"}})
    with pytest.raises(ConfigError, match=r"init.weight returned a ndarray: fill the tensor it is given in place"):
        apply_init(net, {"weight": {"_target_": "tests.user_models.numpy_init"}})


def test_a_calibration_that_replaces_a_layer_is_refused() -> None:
    """The optimizer holds the parameters built before calibration: a new layer would never train."""
    net, x = MLP(nn.Tanh, hidden_dims=[20]), torch.randn(32, 1, 28, 28)
    with pytest.raises(ConfigError, match=r"init.calibrate \(tests.user_models.replacing_calibration\) replaced a "
                                          "layer or parameter of the model"):  # fmt: skip
        calibrate(net, {"calibrate": {"_target_": "tests.user_models.replacing_calibration"}}, x)
    calibrate(net, {"calibrate": {"_target_": "initlab.inits.lsuv"}}, x)  # rescaling in place: fine
    with pytest.raises(ConfigError, match=r"changed fc1.weight from torch.float32 \[20, 784\] to torch.float64"):
        calibrate(net, {"calibrate": {"_target_": "tests.user_models.double_calibration"}}, x)
    net = MLP(nn.Tanh, hidden_dims=[20])
    with pytest.raises(ConfigError, match=r"changed fc1.weight.requires_grad to False: a calibration sets values"):
        calibrate(net, {"calibrate": {"_target_": "tests.user_models.freezing_calibration"}}, x)


def test_a_class_only_named_linear_is_no_layer_to_fill() -> None:
    from tests.user_models import Linear

    net = MLP(Linear, hidden_dims=[20])  # an identity activation of the user's, called Linear
    apply_init(net, {"weight": {"_target_": "torch.nn.init.zeros_"}})
    assert [n for n, _ in weighted_layers(net)] == ["fc1", "out"] and (net.fc1.weight == 0).all()


def test_a_variance_must_be_a_formula_not_a_flag() -> None:
    with pytest.raises(ValueError, match="'True' is not allowed"):
        variance(True, {"fan_in": 100})  # variance: true in YAML was taken for 1
