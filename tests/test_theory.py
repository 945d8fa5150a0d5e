"""initlab.theory: mean-field q*, c*, chi_1, xi_c against closed forms, Monte Carlo, wide random nets and the CLI."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from initlab import theory as T

NAMES = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "silu"]


def _mc_z(n: int = 1_000_000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)  # (n,)


def test_activation_names_are_the_projects_eight() -> None:
    assert list(T.ACTIVATIONS) == NAMES
    with pytest.raises(ValueError, match=r"act='bogus'.*tanh"):
        T.activation("bogus")


@pytest.mark.parametrize(
    ("name", "x", "expected"),
    [
        ("sigmoid", 2.0, 1 / (1 + math.exp(-2.0))),
        ("tanh", 0.5, math.tanh(0.5)),
        ("relu", -1.0, 0.0),
        ("leaky_relu", -2.0, -0.02),  # torch's default negative_slope 0.01
        ("elu", -1.0, math.expm1(-1.0)),
        ("selu", -1.0, 1.0507009873554805 * 1.6732632423543772 * math.expm1(-1.0)),
        ("gelu", 1.0, 0.8413447460685429),  # x Phi(x), exact erf form
        ("silu", 1.0, 1 / (1 + math.exp(-1.0))),
    ],
)
def test_activation_values(name: str, x: float, expected: float) -> None:
    phi, _ = T.activation(name)
    assert float(phi(np.array(x))) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    ("name", "kwargs"), [(n, {}) for n in NAMES] + [("leaky_relu", {"negative_slope": 0.2}), ("elu", {"alpha": 0.5})]
)
def test_derivatives_match_finite_differences(name: str, kwargs: dict) -> None:
    phi, dphi = T.activation(name, **kwargs)
    x = np.linspace(-6, 6, 1201)
    x = x[np.abs(x) > 1e-3]  # (n,): away from the kink at 0
    h = 1e-6
    np.testing.assert_allclose(dphi(x), (phi(x + h) - phi(x - h)) / (2 * h), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("q", [0.3, 2.0])
def test_q_map_matches_monte_carlo(name: str, q: float) -> None:
    phi, _ = T.activation(name)
    mc = 1.7 * np.mean(phi(math.sqrt(q) * _mc_z()) ** 2) + 0.05
    assert T.q_map(name, 1.7, 0.05, q) == pytest.approx(mc, rel=0.01)


@pytest.mark.parametrize(("name", "c"), [("tanh", 0.3), ("tanh", 0.9), ("gelu", 0.5), ("sigmoid", -0.4)])
def test_c_map_and_chi_match_monte_carlo(name: str, c: float) -> None:
    """The 2-D construction u1 = sqrt(q) z1, u2 = sqrt(q)(c z1 + sqrt(1 - c^2) z2)."""
    phi, dphi = T.activation(name)
    q, sw2, sb2 = 0.8, 2.0, 0.05
    z1, z2 = _mc_z(seed=1), _mc_z(seed=2)
    u1, u2 = math.sqrt(q) * z1, math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2)
    c_mc = (sw2 * np.mean(phi(u1) * phi(u2)) + sb2) / (sw2 * np.mean(phi(u1) ** 2) + sb2)
    assert T.c_map(name, sw2, sb2, q, c) == pytest.approx(c_mc, abs=0.005)
    assert T.chi(name, sw2, q, c) == pytest.approx(sw2 * np.mean(dphi(u1) * dphi(u2)), rel=0.01)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "elu", "selu", "gelu", "silu"])
def test_q_star_is_a_fixed_point(name: str) -> None:
    q = T.q_star(name, 1.5, 0.05)
    assert 0 < q < 1e3
    assert T.q_map(name, 1.5, 0.05, q) == pytest.approx(q, rel=1e-9)


def test_layer_variances_converge_to_q_star() -> None:
    qs = T.layer_variances("tanh", 1.5, 0.05, q0=3.0, depth=80)
    assert qs.shape == (80,)
    assert qs[0] == pytest.approx(1.5 * 3.0 + 0.05)  # layer 1 sees the input itself
    assert np.all(np.diff(qs) <= 0) and qs[1] < qs[0]  # from above, monotonically
    assert qs[-1] == pytest.approx(T.q_star("tanh", 1.5, 0.05), rel=1e-6)
    assert qs[-1] == pytest.approx(0.418, abs=1e-3)


@pytest.mark.parametrize(("name", "sw2", "rtol"), [("tanh", 1.5, 0.04), ("tanh", 3.0, 0.04), ("relu", 2.0, 0.07)])
def test_layer_variances_match_wide_random_nets(name: str, sw2: float, rtol: float) -> None:
    """mean(h^2) per layer of 12 random 500-wide MLPs on 8 inputs, against the prediction.

    Finite width: per-layer noise ~ sqrt(2 / (500 * 12)); ReLU's more (its units' offsets are shared across inputs).
    """
    rng = np.random.default_rng(0)
    n, depth, nets, sb2 = 500, 4, 12, 0.05
    phi, _ = T.activation(name)
    x = rng.standard_normal((8, n))  # (batch, n): q0 = mean(x^2) ~ 1
    measured = np.zeros(depth)
    for _ in range(nets):
        h = x
        for layer in range(depth):
            w = rng.normal(0.0, math.sqrt(sw2 / n), (n, n))  # W ~ N(0, sigma_w2 / n_in)
            h = (h if layer == 0 else phi(h)) @ w.T + rng.normal(0.0, math.sqrt(sb2), n)  # (batch, n)
            measured[layer] += np.mean(h**2) / nets
    predicted = T.layer_variances(name, sw2, sb2, q0=float(np.mean(x**2)), depth=depth)
    np.testing.assert_allclose(measured, predicted, rtol=rtol)


def test_tanh_critical_sigma_w2() -> None:
    crit = T.critical_sigma_w2("tanh", 0.05)
    assert crit == pytest.approx(1.761, abs=0.01)
    assert T.chi_1("tanh", crit, 0.05) == pytest.approx(1.0, abs=1e-9)
    assert T.mean_field("tanh", crit, 0.05).xi_c > 1e4  # xi_c diverges at chi_1 = 1
    assert T.critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, abs=1e-6)  # sigma_b2 = 0: chi_1 = sigma_w2 at q* = 0


@pytest.mark.parametrize(("sw2", "xi_c"), [(1.0, 3.6), (1.5, 15.8), (2.0, 25.2), (2.5, 11.8), (3.0, 9.1), (4.0, 7.0)])
def test_tanh_xi_c_reference_values(sw2: float, xi_c: float) -> None:
    assert T.mean_field("tanh", sw2, 0.05).xi_c == pytest.approx(xi_c, rel=0.05)


def test_tanh_phases() -> None:
    ordered, chaotic = T.mean_field("tanh", 1.5, 0.05), T.mean_field("tanh", 2.5, 0.05)
    assert ordered.chi_1 < 1 and ordered.c_star == 1.0
    assert ordered.xi_c == pytest.approx(-1 / math.log(ordered.chi_1))  # chi_c = chi_1 at c* = 1
    assert chaotic.chi_1 > 1 and 0.3 < chaotic.c_star < 0.6
    assert T.c_map("tanh", 2.5, 0.05, chaotic.q_star, chaotic.c_star) == pytest.approx(chaotic.c_star, abs=1e-9)
    chi_c = T.chi("tanh", 2.5, chaotic.q_star, chaotic.c_star)
    assert chi_c < 1 and chaotic.xi_c == pytest.approx(-1 / math.log(chi_c))  # chi_c at c*, not chi_1 > 1


@pytest.mark.parametrize("sw2", [1.5, 2.0, 3.0])
def test_tanh_without_bias_is_chaotic_with_c_star_zero(sw2: float) -> None:
    """Odd phi and sigma_b2 = 0: c_map(0) = 0, so c* = 0 above the transition at sigma_w2 = 1."""
    mf = T.mean_field("tanh", sw2, 0.0)
    assert mf.chi_1 > 1 and mf.c_star == pytest.approx(0.0, abs=1e-9)
    assert mf.xi_c == pytest.approx(-1 / math.log(T.chi("tanh", sw2, mf.q_star, 0.0)))
    assert T.q_star("tanh", 0.9, 0.0) == 0.0  # ordered: the signal dies out


@pytest.mark.parametrize("sw2", [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0])
def test_relu_chi_1_is_half_sigma_w2(sw2: float) -> None:
    assert T.chi_1("relu", sw2, 0.0) == pytest.approx(sw2 / 2, rel=1e-12)


def test_relu_and_leaky_relu_critical_values() -> None:
    assert T.critical_sigma_w2("relu", 0.0) == pytest.approx(2.0, abs=1e-9)  # He / kaiming init
    leaky = T.activation("leaky_relu", negative_slope=0.5)
    assert T.chi_1(leaky, 1.0, 0.0) == pytest.approx((1 + 0.25) / 2)
    assert T.critical_sigma_w2(leaky, 0.0) == pytest.approx(2 / 1.25, abs=1e-9)


def test_relu_mean_field_without_a_finite_fixed_point() -> None:
    below = T.mean_field("relu", 1.0, 0.05)
    assert below.q_star == pytest.approx(0.1)  # q = q/2 + 0.05
    assert below.c_star == 1.0 and below.xi_c == pytest.approx(-1 / math.log(0.5))
    above = T.mean_field("relu", 3.0, 0.05)
    assert above.q_star == math.inf and math.isnan(above.c_star) and math.isnan(above.xi_c)
    assert above.chi_1 == pytest.approx(1.5)
    assert T.q_star("relu", 1.0, 0.0) == 0.0
    assert T.depth_scale(1.0) == math.inf


def _no_constants(name: str) -> None:
    raise AssertionError(f"invalid JSON constant {name}")


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert T.main(["--act", "tanh", "--sigma-b2", "0.05", "--json"]) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=_no_constants)
    assert set(out) == {"critical_sigma_w2", "rows"}
    assert out["critical_sigma_w2"] == pytest.approx(1.761, abs=0.01)
    assert [r["sigma_w2"] for r in out["rows"]] == pytest.approx(np.arange(1.0, 4.01, 0.25))
    assert set(out["rows"][0]) >= {"sigma_w2", "q_star", "c_star", "chi_1", "xi_c"}
    assert out["rows"][4]["xi_c"] == pytest.approx(25.2, rel=0.05)  # sigma_w2 = 2


def test_cli_json_writes_infinities_as_null(capsys: pytest.CaptureFixture[str]) -> None:
    assert T.main(["--act", "relu", "--sigma-w2", "1,3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out, parse_constant=_no_constants)["rows"]
    assert [r["sigma_w2"] for r in rows] == [1.0, 3.0]
    assert rows[1]["q_star"] is None and rows[1]["xi_c"] is None and rows[1]["chi_1"] == pytest.approx(1.5)


def test_cli_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert T.main(["--act", "tanh", "--sigma-b2", "0.05", "--sigma-w2", "1,1.5,2.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "critical sigma_w2 = 1.761" in lines[0]
    assert lines[1].split() == ["sigma_w2", "q_star", "c_star", "chi_1", "xi_c", "xi_q", "phase"]
    assert [ln.split()[-1] for ln in lines[2:]] == ["ordered", "ordered", "chaotic"]
    assert len({len(ln) for ln in lines[1:]}) == 1  # aligned columns
    assert float(lines[3].split()[4]) == pytest.approx(15.8, rel=0.05)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--act", "bogus"], ["--act", "'bogus'", "tanh", "silu"]),
        (["--sigma-w2", "1,x"], ["--sigma-w2", "'x'", "> 0"]),
        (["--sigma-w2", "0,1"], ["--sigma-w2", "'0'", "> 0"]),
        (["--sigma-b2", "-1"], ["--sigma-b2", "'-1'", ">= 0"]),
        (["--frobnicate"], ["--frobnicate"]),
    ],
)
def test_cli_bad_arguments_give_one_line(argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert T.main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert all(w in err for w in words)


def test_cli_as_a_module_no_traceback() -> None:
    bad = subprocess.run([sys.executable, "-m", "initlab.theory", "--act", "bogus"], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stdout == ""
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    code = "import sys, initlab.theory; assert 'torch' not in sys.modules and 'scipy' not in sys.modules"
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""  # no side effects on import
