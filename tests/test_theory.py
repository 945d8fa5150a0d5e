"""initlab.theory against brute-force grids, closed forms, Monte Carlo, wide random nets, and its CLI."""

import functools
import json
import math
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
from torch import nn

from initlab import theory as T
from initlab.activations import phi

NAMES = ["elu", "gelu", "leaky_relu", "mish", "relu", "selu", "sigmoid", "silu", "softplus", "tanh"]
USER_YAML = "tests/user_conf/act/scaled_tanh.yaml"  # tests.user_models.ScaledTanh, scale 2
KINKED = {"relu", "leaky_relu", "elu", "selu"}  # phi or phi' jumps at 0


@functools.cache
def act(name: str) -> T.Act:
    return T.load_act(name)


def _mc_z(n: int = 1_000_000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)  # (n,)


# --- brute force: midpoint rules on uniform grids, nothing shared with theory.py's quadrature ---------------


def _mid(a: float, b: float, n: int) -> tuple[np.ndarray, float]:
    h = (b - a) / n
    return a + (np.arange(n) + 0.5) * h, h  # (n,): no node on a or b, so none on a kink at 0


@functools.cache
def _grid_1d(q: float) -> tuple[np.ndarray, np.ndarray]:
    """u-nodes and weights for u ~ N(0, q): every 1e-3 (at most) on |u| < L = min(40, 12 sd), where phi bends,
    and every 1e-4 sd beyond. At q* = 1e4 (sigmoid, tanh) phi' has width 1 = 0.01 sd: 1000 nodes across."""
    s = math.sqrt(q)
    lim = min(40.0, 12.0 * s)
    u, h = _mid(-lim, lim, 80_000)
    us, ws = [u], [h * np.exp(-0.5 * (u / s) ** 2) / (s * math.sqrt(2 * math.pi))]
    if lim < 12.0 * s:  # the Gaussian's tails, |z| in [L / s, 12]
        z, hz = _mid(lim / s, 12.0, 120_000)
        for sign in (-1.0, 1.0):
            us.append(sign * s * z)
            ws.append(hz * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))
    return np.concatenate(us), np.concatenate(ws)


def bf_mean(f: Callable, q: float) -> float:
    u, w = _grid_1d(q)
    return float(w @ f(u))


def _midpoints_2d(f: Callable, g: Callable, q: float, c: float, h: float) -> float:
    """E[f(u1) g(u2)] by midpoints on a uniform grid of spacing ~h in (z1, z2) over [-10, 10]^2; each row's z2
    grid shifted to put g's kink at u2 = 0 on a cell edge (z1's has it there: symmetric)."""
    r, n = math.sqrt(1.0 - c * c), 2 * math.ceil(10.0 / h)
    z, h = _mid(-10.0, 10.0, n)
    w = h * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # (n,)
    s, total = math.sqrt(q), 0.0
    for i in range(0, n, 100):  # rows of z1, 100 at a time: (100, n) arrays
        z1 = z[i : i + 100, None]  # (100, 1)
        z2 = z[None, :] + np.mod(-c * z1 / r - z[0] + 0.5 * h, h)  # (100, n)
        w2 = h * np.exp(-0.5 * z2 * z2) / math.sqrt(2 * math.pi)
        total += float(w[i : i + 100] @ (f(s * z1[:, 0]) * np.sum(g(s * (c * z1 + r * z2)) * w2, axis=1)))
    return total


def bf_mean2(f: Callable, g: Callable, q: float, c: float, kinked: bool) -> float:
    """E[f(u1) g(u2)], u1, u2 ~ N(0, q) with correlation c, by _midpoints_2d. Spacing <= pi / (6 sqrt(q)): tanh's
    and sigmoid's poles lie >= pi / (2 sqrt(q)) off the real axis, three spacings away, so midpoints converge
    like exp(-6 pi); and <= sqrt(1 - c^2) / 3, the width over which the inner mean smooths g's kink. Kinked:
    a jump in phi or phi' at 0 leaves midpoints O(h^2) there; Richardson-extrapolate from h and h / 2."""
    h = min(0.01, math.pi / (6 * math.sqrt(q)), math.sqrt(1.0 - c * c) / 3)
    m = _midpoints_2d(f, g, q, c, h)
    return (4 * _midpoints_2d(f, g, q, c, h / 2) - m) / 3 if kinked else m


def bf_v(a: T.Act, sw2: float, sb2: float, q: float) -> float:
    return sw2 * bf_mean(lambda u: a[0](u) ** 2, q) + sb2


def _root(f: Callable[[float], float], lo: float, hi: float, tol: float) -> float:
    """f's root between lo and hi, where it must change sign (the caller's claim), by Illinois regula falsi."""
    flo, fhi = f(lo), f(hi)
    assert flo * fhi <= 0, f"no root in [{lo}, {hi}]: {flo}, {fhi}"
    side, x = 0, lo
    for _ in range(100):
        if flo == fhi:
            return x
        x = (lo * fhi - hi * flo) / (fhi - flo)
        fx = f(x)
        if abs(hi - lo) < tol or fx == 0:
            return x
        if fx * fhi > 0:
            hi, fhi, flo, side = x, fx, flo / 2 if side == -1 else flo, -1
        else:
            lo, flo, fhi, side = x, fx, fhi / 2 if side == 1 else fhi, 1
    return x


def brute_force_1d(a: T.Act, sw2: float, sb2: float, mf: T.MeanField) -> tuple[float, float, float]:
    """(q*, chi_1, xi_q) by brute force: q* is the root of V(q) - q within 1 % of mf's (asserted to be there),
    chi_1 at it, and xi_q from V'(q*) by central differences (no Stein's lemma)."""
    q = mf.q_star

    def g(x: float) -> float:
        return bf_v(a, sw2, sb2, x) - x

    if max(abs(g(0.99 * q)), abs(g(1.01 * q))) > 1e-12 * q:  # else every q is one (relu, sigma_w2 = 2, sigma_b2 = 0)
        q = _root(g, 0.99 * q, 1.01 * q, 1e-11 * q)
    dv = (bf_v(a, sw2, sb2, q * (1 + 1e-4)) - bf_v(a, sw2, sb2, q * (1 - 1e-4))) / (2e-4 * q)
    return q, sw2 * bf_mean(lambda u: a[1](u) ** 2, q), T.depth_scale(dv)


def brute_force_2d(a: T.Act, sw2: float, sb2: float, q: float, cs: float, kinked: bool) -> tuple[float, float]:
    """(c*, xi_c) at q: c* the root of C(c) - c within 1 % of cs (asserted), or 0 when C(0) = 0 and C(c) < c."""
    v = bf_v(a, sw2, sb2, q)

    def f(c: float) -> float:
        return (sw2 * bf_mean2(a[0], a[0], q, c, kinked) + sb2) / v - c

    if cs == 0.0:
        assert abs(f(0.0)) < 1e-12 and f(1e-3) < 0  # 0 is a fixed point, and the stable one
        c = 0.0
    else:
        c = _root(f, 0.99 * cs, min(1.01 * cs, (1 + cs) / 2), 1e-10)  # (1 + c*) / 2: and 1 - c* within 2x
    return c, T.depth_scale(sw2 * bf_mean2(a[1], a[1], q, c, kinked))


def check_against_brute_force(name: str, sw2: float, sb2: float, two_d: bool = True) -> dict[str, float]:
    """Every MeanField quantity within 1 % of brute force; -> the relative errors."""
    a, mf = act(name), T.mean_field(act(name), sw2, sb2)
    if not T.Q_MIN <= mf.q_star <= T.Q_MAX:  # brute force agrees there is no finite fixed point on the way
        qs = np.geomspace(1.0, T.Q_MAX, 13) if mf.q_star > 1 else np.geomspace(T.Q_MIN, 1.0, 31)
        assert all((bf_v(a, sw2, sb2, q) > q) == (mf.q_star > 1) for q in qs)
        chi1 = sw2 * bf_mean(lambda u: a[1](u) ** 2, T.clip_q(mf.q_star))
        assert mf.chi_1 == pytest.approx(chi1, rel=0.01)
        return {"chi_1": abs(mf.chi_1 / chi1 - 1)}
    q, chi1, xi_q = brute_force_1d(a, sw2, sb2, mf)
    if chi1 <= 1.0:  # ordered: c* = 1, chi_c = chi_1
        c, xi_c = 1.0, T.depth_scale(chi1)
    elif two_d:
        c, xi_c = brute_force_2d(a, sw2, sb2, q, mf.c_star, name in KINKED)
    else:
        c, xi_c = mf.c_star, mf.xi_c
    got, want = [mf.q_star, mf.chi_1, mf.xi_q, mf.c_star, mf.xi_c], [q, chi1, xi_q, c, xi_c]
    assert got[:2] + got[3:4] == pytest.approx(want[:2] + want[3:4], rel=0.01, abs=1e-12), f"{name} {sw2} {sb2}"
    rates = [1 / x for x in (got[2], got[4], want[2], want[4])]  # 1 / xi: 0 and 1e-12 both mean "critical"
    assert rates[:2] == pytest.approx(rates[2:], rel=0.01, abs=1e-9), f"{name} {sw2} {sb2}"
    got[2], got[4], want[2], want[4] = rates  # relative errors of xi and 1 / xi are the same, but finite
    tol = [1e-12, 1e-12, 1e-9, 1e-12, 1e-9]  # as asserted: below it, equal
    rel = [0.0 if abs(g - w) <= t else abs(g - w) / abs(w) for g, w, t in zip(got, want, tol, strict=True)]
    return dict(zip(["q_star", "chi_1", "xi_q", "c_star", "xi_c"], rel, strict=True))


def test_brute_force_resolves_the_narrow_peaks() -> None:
    """The check's own check: at q = 1e4 tanh' has width 0.01 sd, and at 1e8 1e-4 sd; E[tanh'(u)] = 2 / sqrt(2 pi q)
    as q -> inf (its integral, 2, times the density at 0), and E[relu'(u)^2] = 1/2 exactly."""
    dtanh = act("tanh")[1]
    for q in (1e4, 1e8):
        assert bf_mean(dtanh, q) == pytest.approx(2 / math.sqrt(2 * math.pi * q), rel=1e-3)
    assert bf_mean(lambda u: act("relu")[1](u) ** 2, 1e12) == pytest.approx(0.5, rel=1e-12)
    u, w = _grid_1d(1e4)
    assert w.sum() == pytest.approx(1.0, rel=1e-9) and np.diff(np.sort(u)[np.abs(np.sort(u)) < 40]).max() < 1.1e-3


# --- the reference values the old Gauss-Hermite rule got wrong, and docs/theory.md's table -------------------


@pytest.mark.parametrize(
    ("sw2", "q", "chi1", "phase"),
    [(1.0, 0.1936, 0.759, "ordered"), (1.761, 0.5701, 1.000, None), (4.0, 2.1955, 1.3424, "chaotic"),
     (100.0, 91.76, 5.543, "chaotic"), (1000.0, 974.5, 17.04, "chaotic")],
)  # fmt: skip
def test_tanh_reference_values(sw2: float, q: float, chi1: float, phase: str | None) -> None:
    """Fine-grid values (8M points on z in [-40, 40]); Gauss-Hermite in z said chi_1 = 0.71 and 1e-5 at 100, 1000."""
    mf = T.mean_field(act("tanh"), sw2, 0.05)
    assert (mf.q_star, mf.chi_1) == pytest.approx((q, chi1), rel=5e-4)
    assert phase is None or T.phase(mf.q_star, mf.chi_1) == phase
    assert phase != "chaotic" or 0 <= mf.c_star < 1


@pytest.mark.parametrize(
    ("sw2", "xi_c", "digit"),
    [(1.0, 3.63, 0.01), (1.5, 15.8, 0.1), (2.0, 25.2, 0.1), (2.5, 11.8, 0.1), (3.0, 9.05, 0.01), (4.0, 6.98, 0.01)],
)
def test_tanh_xi_c_reference_values(sw2: float, xi_c: float, digit: float) -> None:
    """docs/theory.md's table, to its 3 digits."""
    assert T.mean_field(act("tanh"), sw2, 0.05).xi_c == pytest.approx(xi_c, abs=digit / 2)


DOC_CRITICAL = {  # docs/theory.md's critical sigma_w2 at sigma_b2 = 0 / 0.05 (None: chi_1 jumps over 1 with q*)
    "sigmoid": (103.0, 103.1), "leaky_relu": (1.9998, 1.9998), "elu": (1.000, 1.534), "selu": (0.477, 0.902),
    "softplus": (2.000, 2.000), "relu": (2.0, 2.0), "gelu": (None, None), "silu": (None, None), "mish": (None, None),
}  # fmt: skip


@pytest.mark.parametrize("name", DOC_CRITICAL)
def test_the_documented_critical_values_are_what_the_tool_prints(name: str) -> None:
    for sb2, want in zip((0.0, 0.05), DOC_CRITICAL[name], strict=True):
        got = T.critical_sigma_w2(act(name), sb2)
        digits = len(str(want).partition(".")[2])  # as many as the doc gives
        assert math.isnan(got) if want is None else got == pytest.approx(want, abs=0.5 * 10**-digits)


FAST_GRID = [  # (name, sigma_w2, sigma_b2, with the 2-D brute force): the corners; the slow test below does it all
    ("tanh", 1000.0, 0.05, False), ("sigmoid", 1e4, 10.0, False), ("sigmoid", 0.01, 0.0, True),
    ("relu", 1.0, 10.0, True), ("gelu", 1.9, 0.05, True), ("selu", 1.5, 0.05, False), ("softplus", 2.0, 0.0, True),
    ("mish", 1e4, 1.0, True), ("tanh", 4.0, 0.05, True),
]  # fmt: skip


@pytest.mark.parametrize(("name", "sw2", "sb2", "two_d"), FAST_GRID)
def test_within_1_percent_of_brute_force(name: str, sw2: float, sb2: float, two_d: bool) -> None:
    check_against_brute_force(name, sw2, sb2, two_d)  # 2-D at q* ~ 1e3: a grid of 2e7, slow


SLOW_W2 = [0.01, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 10.0, 100.0, 1000.0, 1e4]
SLOW_B2 = [0.0, 0.05, 1.0, 10.0]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_within_1_percent_of_brute_force_over_the_whole_range(name: str) -> None:
    """13 sigma_w2 in [0.01, 1e4] x 4 sigma_b2 in [0, 10]; 2-D brute force wherever c* < 1 (~1 min in all)."""
    for sw2 in SLOW_W2:
        for sb2 in SLOW_B2:
            check_against_brute_force(name, sw2, sb2)


# --- the range it promises --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda a: T.q_map(a, 2e4, 0.0, 1.0), "sigma_w2=20000"),
        (lambda a: T.mean_field(a, 0.005, 0.0), "sigma_w2=0.005"),
        (lambda a: T.chi_1(a, 1.0, 10.5), "sigma_b2=10.5"),
        (lambda a: T.layer_variances(a, 1.0, -0.1, 1.0, 3), "sigma_b2=-0.1"),
        (lambda a: T.q_star(a, 1e5, 0.0), "sigma_w2=100000"),
        (lambda a: T.chi(a, 1e5, 1.0), "sigma_w2=100000"),
        (lambda a: T.c_star(a, 1e5, 0.0, 1.0), "sigma_w2=100000"),
        (lambda a: T.critical_sigma_w2(a, 11.0), "sigma_b2=11"),
    ],
)
def test_outside_the_promised_range_it_refuses(call: Callable, words: str) -> None:
    with pytest.raises(ValueError, match=r"^[^\n]*$") as e:
        call(act("tanh"))
    assert words in str(e.value) and ("[0.01, 10000]" in str(e.value) or "[0, 10]" in str(e.value))
    assert T.in_range(1e4, 10.0) and T.in_range(0.01, 0.0) and not T.in_range(1e4 * 1.001, 0.0)


# --- closed forms and Monte Carlo ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("q", [0.3, 2.0])
def test_q_map_matches_monte_carlo(name: str, q: float) -> None:
    f, _ = act(name)
    mc = 1.7 * np.mean(f(math.sqrt(q) * _mc_z()) ** 2) + 0.05
    assert T.q_map(act(name), 1.7, 0.05, q) == pytest.approx(mc, rel=0.01)


@pytest.mark.parametrize(("name", "c"), [("tanh", 0.3), ("tanh", 0.9), ("gelu", 0.5), ("sigmoid", -0.4), ("selu", 0.7)])
def test_c_map_and_chi_match_monte_carlo(name: str, c: float) -> None:
    """The 2-D construction u1 = sqrt(q) z1, u2 = sqrt(q)(c z1 + sqrt(1 - c^2) z2)."""
    f, df = act(name)
    q, sw2, sb2 = 0.8, 2.0, 0.05
    z1, z2 = _mc_z(seed=1), _mc_z(seed=2)
    u1, u2 = math.sqrt(q) * z1, math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2)
    c_mc = (sw2 * np.mean(f(u1) * f(u2)) + sb2) / (sw2 * np.mean(f(u1) ** 2) + sb2)
    assert T.c_map(act(name), sw2, sb2, q, c) == pytest.approx(c_mc, abs=0.005)
    assert T.chi(act(name), sw2, q, c) == pytest.approx(sw2 * np.mean(df(u1) * df(u2)), rel=0.01)


@pytest.mark.parametrize("c", [-0.9, 0.0, 0.5, 0.999, 1.0])
def test_relu_2d_moments_match_the_arc_cosine_kernel(c: float) -> None:
    """Cho & Saul 2009: E[relu(u1) relu(u2)] = q (sqrt(1 - c^2) + (pi - acos c) c) / (2 pi), and
    E[step(u1) step(u2)] = (pi - acos c) / (2 pi); the kink at 0 is a panel edge, so both to ~1e-10."""
    relu, q, t = act("relu"), 3.0, math.pi - math.acos(c)
    assert T._mean2(relu[0], relu[0], q, c, relu.knots) == pytest.approx(
        q * (math.sqrt(1 - c * c) + t * c) / (2 * math.pi)
    )
    assert T.chi(relu, 2.0, q, c) == pytest.approx(2.0 * t / (2 * math.pi), rel=1e-9)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "elu", "selu", "gelu", "silu", "mish", "softplus"])
def test_q_star_is_a_fixed_point(name: str) -> None:
    q = T.q_star(act(name), 1.5, 0.05)
    assert 0 < q < 1e3
    assert T.q_map(act(name), 1.5, 0.05, q) == pytest.approx(q, rel=1e-11)


def test_layer_variances_converge_to_q_star() -> None:
    qs = T.layer_variances(act("tanh"), 1.5, 0.05, q0=3.0, depth=80)
    assert qs.shape == (80,)
    assert qs[0] == pytest.approx(1.5 * 3.0 + 0.05)  # layer 1 sees the input itself
    assert np.all(np.diff(qs) <= 0) and qs[1] < qs[0]  # from above, monotonically
    assert qs[-1] == pytest.approx(T.q_star(act("tanh"), 1.5, 0.05), rel=1e-6)
    assert qs[-1] == pytest.approx(0.418, abs=1e-3)


@pytest.mark.parametrize(("name", "sw2", "rtol"), [("tanh", 1.5, 0.04), ("tanh", 3.0, 0.04), ("relu", 2.0, 0.07)])
def test_layer_variances_match_wide_random_nets(name: str, sw2: float, rtol: float) -> None:
    """mean(h^2) per layer of 12 random 500-wide MLPs on 8 inputs, against the prediction.

    Finite width: per-layer noise ~ sqrt(2 / (500 * 12)); ReLU's more (its units' offsets are shared across inputs).
    """
    rng = np.random.default_rng(0)
    n, depth, nets, sb2 = 500, 4, 12, 0.05
    f, _ = act(name)
    x = rng.standard_normal((8, n))  # (batch, n): q0 = mean(x^2) ~ 1
    measured = np.zeros(depth)
    for _ in range(nets):
        h = x
        for layer in range(depth):
            w = rng.normal(0.0, math.sqrt(sw2 / n), (n, n))  # W ~ N(0, sigma_w2 / n_in)
            h = (h if layer == 0 else f(h)) @ w.T + rng.normal(0.0, math.sqrt(sb2), n)  # (batch, n)
            measured[layer] += np.mean(h**2) / nets
    predicted = T.layer_variances(act(name), sw2, sb2, q0=float(np.mean(x**2)), depth=depth)
    np.testing.assert_allclose(measured, predicted, rtol=rtol)


def test_tanh_critical_sigma_w2() -> None:
    crit = T.critical_sigma_w2(act("tanh"), 0.05)
    assert crit == pytest.approx(1.7610, abs=5e-5)
    assert T.chi_1(act("tanh"), crit, 0.05) == pytest.approx(1.0, abs=1e-9)
    assert T.mean_field(act("tanh"), crit, 0.05).xi_c > 1e4  # xi_c diverges at chi_1 = 1
    assert T.critical_sigma_w2(act("tanh"), 0.0) == pytest.approx(1.0, abs=1e-6)  # sigma_b2 = 0: chi_1 = sigma_w2


def test_tanh_phases() -> None:
    ordered, chaotic = T.mean_field(act("tanh"), 1.5, 0.05), T.mean_field(act("tanh"), 2.5, 0.05)
    assert ordered.chi_1 < 1 and ordered.c_star == 1.0
    assert ordered.xi_c == pytest.approx(-1 / math.log(ordered.chi_1))  # chi_c = chi_1 at c* = 1
    assert chaotic.chi_1 > 1 and chaotic.c_star == pytest.approx(0.4468, abs=1e-4)
    assert T.c_map(act("tanh"), 2.5, 0.05, chaotic.q_star, chaotic.c_star) == pytest.approx(chaotic.c_star, abs=1e-12)
    chi_c = T.chi(act("tanh"), 2.5, chaotic.q_star, chaotic.c_star)
    assert chi_c < 1 and chaotic.xi_c == pytest.approx(-1 / math.log(chi_c))  # chi_c at c*, not chi_1 > 1


@pytest.mark.parametrize("sw2", [1.5, 2.0, 3.0, 100.0])
def test_tanh_without_bias_is_chaotic_with_c_star_zero(sw2: float) -> None:
    """Odd phi and sigma_b2 = 0: c_map(0) = 0, so c* = 0 above the transition at sigma_w2 = 1."""
    mf = T.mean_field(act("tanh"), sw2, 0.0)
    assert mf.chi_1 > 1 and mf.c_star == 0.0
    assert mf.xi_c == pytest.approx(-1 / math.log(T.chi(act("tanh"), sw2, mf.q_star, 0.0)))
    assert T.q_star(act("tanh"), 0.9, 0.0) == 0.0 and T.q_star(act("tanh"), 1.0, 0.0) == 0.0  # the signal dies out


@pytest.mark.parametrize("sw2", [0.01, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 1e4])
def test_relu_chi_1_is_half_sigma_w2(sw2: float) -> None:
    assert T.chi_1(act("relu"), sw2, 0.0) == pytest.approx(sw2 / 2, rel=1e-12)
    assert T.chi_1(act("relu"), sw2, 1.0) == pytest.approx(sw2 / 2, rel=1e-12)


def test_relu_and_leaky_relu_critical_values() -> None:
    assert T.critical_sigma_w2(act("relu"), 0.0) == pytest.approx(2.0, abs=1e-9)  # He / kaiming init
    leaky = phi(nn.LeakyReLU(negative_slope=0.5))
    assert T.chi_1(leaky, 1.0, 0.0) == pytest.approx((1 + 0.25) / 2, rel=1e-12)
    assert T.critical_sigma_w2(leaky, 0.0) == pytest.approx(2 / 1.25, abs=1e-9)
    kaiming = T.mean_field(act("relu"), 2.0, 0.0)  # every q is a fixed point: q^l = q^1
    assert kaiming.q_star == 1.0 and kaiming.c_star == 1.0 and T.phase(kaiming.q_star, kaiming.chi_1) == "critical"


def test_relu_mean_field_without_a_finite_fixed_point() -> None:
    below = T.mean_field(act("relu"), 1.0, 0.05)
    assert below.q_star == pytest.approx(0.1, rel=1e-12)  # q = q/2 + 0.05
    assert below.c_star == 1.0 and below.xi_c == pytest.approx(-1 / math.log(0.5))
    above = T.mean_field(act("relu"), 3.0, 0.05)
    assert above.q_star == math.inf and math.isnan(above.c_star) and math.isnan(above.xi_c)
    assert above.chi_1 == pytest.approx(1.5)
    assert T.q_star(act("relu"), 1.0, 0.0) == 0.0
    assert T.depth_scale(1.0) == math.inf


def test_a_users_activation_is_just_another_module() -> None:
    """ScaledTanh(s) = s tanh(z / s): q* = s^2 x tanh's q* at sigma_b2 / s^2; chi_1, c*, xi as tanh's there."""
    mine, tanh = T.mean_field(act(USER_YAML), 3.0, 0.2), T.mean_field(act("tanh"), 3.0, 0.05)
    assert mine.q_star == pytest.approx(4 * tanh.q_star, rel=1e-9)
    assert (mine.chi_1, mine.c_star, mine.xi_c, mine.xi_q) == pytest.approx(
        (tanh.chi_1, tanh.c_star, tanh.xi_c, tanh.xi_q), rel=1e-8
    )


# --- the command line ---------------------------------------------------------------------------------------


def _no_constants(name: str) -> None:
    raise AssertionError(f"invalid JSON constant {name}")


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert T.main(["--act", "tanh", "--sigma-b2", "0.05", "--json"]) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=_no_constants)
    assert set(out) == {"critical_sigma_w2", "rows"}
    assert out["critical_sigma_w2"] == pytest.approx(1.761, abs=0.001)
    assert [r["sigma_w2"] for r in out["rows"]] == pytest.approx(np.arange(1.0, 4.01, 0.25))
    assert set(out["rows"][0]) == {"sigma_w2", "q_star", "c_star", "chi_1", "xi_c", "xi_q"}
    assert out["rows"][4]["xi_c"] == pytest.approx(25.21, abs=0.005)  # sigma_w2 = 2


def test_cli_json_writes_infinities_as_null(capsys: pytest.CaptureFixture[str]) -> None:
    assert T.main(["--act", "relu", "--sigma-w2", "1,3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out, parse_constant=_no_constants)["rows"]
    assert [r["sigma_w2"] for r in rows] == [1.0, 3.0]
    assert rows[1]["q_star"] is None and rows[1]["xi_c"] is None and rows[1]["chi_1"] == pytest.approx(1.5)


def test_cli_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert T.main(["--act", "tanh", "--sigma-b2", "0.05", "--sigma-w2", "1,1.5,2.5,1000"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "critical sigma_w2 = 1.761" in lines[0]
    assert lines[1].split() == ["sigma_w2", "q_star", "c_star", "chi_1", "xi_c", "xi_q", "phase"]
    assert [ln.split()[-1] for ln in lines[2:]] == ["ordered", "ordered", "chaotic", "chaotic"]
    assert len({len(ln) for ln in lines[1:]}) == 1  # aligned columns
    assert float(lines[3].split()[4]) == pytest.approx(15.79, abs=0.005)
    assert float(lines[5].split()[3]) == pytest.approx(17.04, rel=0.001)  # chi_1 at sigma_w2 = 1000


def test_cli_takes_a_users_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert T.main(["--act", USER_YAML, "--sigma-w2", "3", "--sigma-b2", "0.2", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["q_star"] == pytest.approx(4 * T.q_star(act("tanh"), 3.0, 0.05), rel=1e-9)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--act", "bogus"], ["--act", "'bogus'", "tanh", "silu", "mish", "softplus", "YAML"]),
        (["--act", "pyproject.toml"], ["--act", "'pyproject.toml'", "YAML"]),
        (["--act", "tests/user_conf/init/kaiming_out.yaml"], ["--act", "kaiming_out.yaml"]),  # a YAML, not an act
        (["--sigma-w2", "1,x"], ["--sigma-w2", "'x'", "> 0"]),
        (["--sigma-w2", "0,1"], ["--sigma-w2", "'0'", "> 0"]),
        (["--sigma-w2", "1,20000"], ["sigma_w2=20000", "[0.01, 10000]"]),
        (["--sigma-w2", "0.001"], ["sigma_w2=0.001", "[0.01, 10000]"]),
        (["--sigma-b2", "11"], ["sigma_b2=11", "[0, 10]"]),
        (["--sigma-b2", "-1"], ["--sigma-b2", "'-1'", ">= 0"]),
        (["--frobnicate"], ["--frobnicate"]),
        (["--act", "tests/user_conf/act/nan_act.yaml"], ["nan_act.yaml", "non-finite values (nan at x=-10)"]),
        (["--act", "tests/user_conf/act/bad_argument.yaml"],  # Hydra puts the reason on the line after "Error in"
         ["bad_argument.yaml", "Error in call to target 'torch.nn.modules.activation.ReLU'", "unexpected keyword",
          "'nope'"]),
        (["--act", "tests/user_conf/act/halving_act.yaml"],
         ["halving_act.yaml", "must be elementwise (same shape out as in)", "[2, 21] into [2, 10]"]),
        (["--act", "tests/user_conf/act/centered_tanh.yaml"],  # the same shape, yet each unit sees all the others
         ["centered_tanh.yaml", "must be elementwise; its value at one unit changes with the others"]),
        (["--act", "tests/user_conf/act/exp_act.yaml", "--sigma-w2", "1"],  # inf only past 709.8: found on the way
         ["exp_act.yaml", "non-finite values (inf at x=7", "finite for every finite x"]),
    ],
)  # fmt: skip
def test_cli_bad_arguments_give_one_line(argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert T.main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("initlab.theory: error: ")
    assert all(w in err for w in words)


def test_cli_as_a_module_no_traceback() -> None:
    for bad in (["--act", "bogus"], ["--sigma-w2", "1e5"]):
        run = subprocess.run([sys.executable, "-m", "initlab.theory", *bad], capture_output=True, text=True)
        assert run.returncode == 1 and run.stdout == ""
        assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    code = "import sys, initlab.theory; assert 'torch' not in sys.modules and 'scipy' not in sys.modules"
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""  # no side effects on import


@pytest.mark.parametrize(
    ("name", "words"),
    [("nan_act", "gives non-finite values (nan at x=-10)"), ("halving_act", "must be elementwise")],
)
def test_an_activation_the_theory_cannot_use_is_refused_when_loaded(name: str, words: str) -> None:
    """A NaN activation once gave q* = 0, phase q->0 and critical sigma_w2 = nan, exit 0: wrong numbers."""
    with pytest.raises(T.ActivationError) as e:
        T.load_act(f"tests/user_conf/act/{name}.yaml")
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_checked_activation_gives_the_same_numbers() -> None:
    (f, df), (f0, df0) = act("tanh"), phi(nn.Tanh())  # checked, and as the module gives them
    x = np.linspace(-3, 3, 12).reshape(3, 4)
    assert np.array_equal(f(x), f0(x)) and np.array_equal(df(x), df0(x))
    with pytest.raises(T.ActivationError, match=r"non-finite values \(nan at x=0.5\)"):
        T._checked(lambda u: np.where(u == 0.5, np.nan, u), "the activation", "mine")(np.array([0.0, 0.5]))


@pytest.mark.parametrize(
    ("module", "where", "share", "sw2"),
    [(nn.Softshrink(0.3), [-0.3, 0.3], 1.0, 1.2), (nn.Threshold(0.1, 0.0), [0.1], 0.5, 1.5),
     (nn.Hardshrink(0.37), [-0.37, 0.37], 1.0, 0.8)],
)  # fmt: skip
def test_an_activation_that_breaks_off_the_knots_gets_a_knot_there(module, where: list, share: float, sw2: float):
    """A user's Softshrink(0.3) (kinks at +-0.3) or Threshold(0.1, 0) (a jump at 0.1) was 3-8 % off with panels
    across its breaks. Softshrink's phi' is 1 beyond them, so chi_1 = sigma_w2 P(u beyond the break) in closed
    form; where phi itself jumps, chi_1 is infinite, and the theory says so rather than print a number."""
    a = T.activation(phi(module))
    assert T.breaks(*a) == pytest.approx(where, abs=1e-11)
    assert all(np.min(np.abs(a.knots - u)) < 1e-11 for u in where)
    q = T.q_star(a, sw2, 0.05)
    assert 0 < q < 1e3 and bf_v(a, sw2, 0.05, q) == pytest.approx(q, rel=1e-4)  # a fixed point, by brute force
    if isinstance(module, nn.Softshrink):  # continuous: phi' is 1 beyond the kinks, chi_1 in closed form
        mf = T.mean_field(a, sw2, 0.05)
        assert mf.chi_1 == pytest.approx(sw2 * share * math.erfc(where[-1] / math.sqrt(2 * mf.q_star)), rel=1e-9)
        return
    # phi jumps: the correlation map's slope at c = 1 is infinite (the jump is a delta in phi'); chi_1 from
    # autograd's phi' printed the closed form above and "ordered", where the map's slope at 1 - c = 1e-4 is ~5
    with pytest.raises(T.ActivationError, match=rf"the activation jumps at x={where[0]:g}: chi_1, c\* and"):
        T.mean_field(a, sw2, 0.05)
    with pytest.raises(T.ActivationError, match="the activation jumps"):
        T.critical_sigma_w2(a, 0.05)
    slope = [(T.c_map(a, sw2, 0.05, q, 1.0) - T.c_map(a, sw2, 0.05, q, 1 - e)) / e for e in (1e-3, 1e-5)]
    assert slope[1] > 3 * slope[0] > 0  # growing like (1 - c)^(-1/2): no finite chi_1


def test_smooth_and_shipped_activations_have_no_breaks_beyond_the_knots() -> None:
    for name in NAMES:
        assert len(T.breaks(*act(name))) == 0 and act(name).knots is T._KNOTS
    steep = (lambda u: np.tanh(20 * u), lambda u: 20 / np.cosh(20 * u) ** 2)  # smooth, if steep: no knot needed
    assert len(T.breaks(*steep)) == 0


def test_cli_json_stays_json_when_the_activation_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert T.main(["--act", "tests/user_conf/act/chatty_tanh.yaml", "--sigma-w2", "2", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["rows"][0]["chi_1"] == pytest.approx(T.chi_1(act("tanh"), 2.0, 0.0))
    assert "forward called" in err


def test_a_cubic_is_answered_from_q_1_and_has_no_edge_where_chi_1_jumps() -> None:
    """phi = z^3: V(q) = 15 s q^3 + 0.1 and chi = 27 s q^2 in closed form. From q = 1, s = 0.05 falls to the stable
    fixed point; s = 0.5 explodes, where chi_1 grows without bound (it was printed at the 1e12 cap, 2.7e25); and
    chi_1 jumps over 1 between them, so there is no critical sigma_w2 (0.06 was printed)."""
    from tests.user_models import Cubic

    a = T.activation(phi(Cubic()))
    low = T.mean_field(a, 0.05, 0.1)
    assert 15 * 0.05 * low.q_star**3 + 0.1 == pytest.approx(low.q_star, rel=1e-9)
    assert low.chi_1 == pytest.approx(27 * 0.05 * low.q_star**2, rel=1e-9)
    high = T.mean_field(a, 0.5, 0.1)
    assert high.q_star == math.inf and high.chi_1 == math.inf
    assert math.isnan(T.critical_sigma_w2(a, 0.1))
    tanh = T.mean_field(act("tanh"), 1.0, 0.0)  # q* -> 0: chi_1 settles at sigma_w2 phi'(0)^2
    assert tanh.q_star == 0.0 and tanh.chi_1 == pytest.approx(1.0)


def test_a_bias_variance_too_small_to_resolve_is_refused() -> None:
    """q* ~ sqrt(sigma_b2 / 2) for tanh at sigma_w2 = 1: 1e-40 gave 4.6e-25 for 7.1e-21 (rounding of E[phi^2])."""
    assert T.q_star(act("tanh"), 1.0, 1e-20) == pytest.approx(math.sqrt(1e-20 / 2), rel=1e-6)
    with pytest.raises(ValueError, match=r"sigma_b2=1e-40 is outside the range the theory answers for: 0 or \[1e-20"):
        T.mean_field(act("tanh"), 1.0, 1e-40)
    assert not T.in_range(1.0, 1e-40) and T.in_range(1.0, 0.0)
    with pytest.raises(ValueError, match=r"^sigma_w2=10000\.000001 is outside"):  # as given, not rounded to 10000
        T.mean_field(act("tanh"), 10000.000001, 0.0)
