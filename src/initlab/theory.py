"""Mean-field signal propagation in wide random MLPs (Poole et al. 2016; Schoenholz et al. 2017).

Weights W ~ N(0, sigma_w2 / n_in), biases b ~ N(0, sigma_b2). An activation is a (phi, phi') pair of numpy
functions (initlab.activations.phi of its torch module). Gaussian expectations by composite Gauss-Legendre in
u-space (panels at the Gaussian's scale and at the activation's, near 0); numpy only. Answers (within 1 % of a
fine-grid integral) for sigma_w2 in [0.01, 1e4] and sigma_b2 in [0, 10]; outside, ValueError.
Equations, numerics: docs/theory.md. CLI: `python -m initlab.theory --help`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from initlab.errors import OneLineParser, describe

Fn = Callable[[np.ndarray], np.ndarray]
Pair = tuple[Fn, Fn]  # (phi, phi'), elementwise on arrays of any shape: an Act, or a pair whose breaks are found
SIGMA_W2_RANGE, SIGMA_B2_RANGE = (0.01, 1e4), (0.0, 10.0)  # where the answers are promised (docs/theory.md)
SIGMA_B2_MIN = 1e-20  # and sigma_b2 = 0 or at least this: 1e-40 gave q* 4.6e-25 for tanh's 7.1e-21
Q_MIN, Q_MAX = 1e-30, 1e12  # q* beyond: 0 / inf. 1e12: q* = sigma_b2 / (1 - slope) meets float rounding of slope
_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)  # (8,): one panel's nodes, weights on [-1, 1]; 1e-10 on unit panels
_WIN = 9.0  # the Gaussian's window, in sd: its mass beyond is 2e-19
_ZB = np.linspace(-_WIN, _WIN, 37)  # (37,): z-breakpoints, panels of 0.5 sd
_BENDS = [*range(1, 9), 10, 12, 14, 16, 20, 24, 28, 32, 40]  # unit panels to 8, then wider: tails are flat by then
_KNOTS = np.array([-b for b in _BENDS[::-1]] + [0] + _BENDS, dtype=float)  # (35,): u-breakpoints, kinks at 0
_SCAN = np.arange(-40 * 512, 40 * 512 + 1) / 512.0  # (40961,): where breaks are looked for, as far as the knots go
_CHI_TOL = 1e-9  # chi within this of 1: critical (relu's chi_1 at sigma_w2 = 2), beyond the quadrature's error
CONF_ACT = Path(__file__).resolve().parent / "conf" / "act"


class Act(tuple):
    """(phi, phi'): numpy functions, elementwise on arrays of any shape; `knots`: the u where the quadrature splits
    its panels: the shipped ones (0 and fixed bends) and wherever phi or phi' jumps elsewhere (breaks)."""

    knots: np.ndarray
    jumps: np.ndarray  # where phi itself jumps (not only phi'): there chi_1 is infinite

    def __new__(cls, phi: Fn, dphi: Fn, knots: np.ndarray = _KNOTS, jumps: np.ndarray | None = None) -> Act:
        act = super().__new__(cls, (phi, dphi))
        act.knots, act.jumps = knots, np.array([]) if jumps is None else jumps
        return act


def _steps(g: Fn) -> list[float]:
    """Where g jumps in [-40, 40]: a step on a 1/512 grid 50 times either step two cells away (a smooth function's
    steps change slowly; a value at the break itself may split the jump over two cells), bisected to 1e-12."""
    y = g(_SCAN)  # (N,)
    d = np.abs(np.diff(y))  # (N - 1,)
    near = np.maximum(np.pad(d, (2, 0))[:-2], np.pad(d, (0, 2))[2:])  # (N - 1,): the steps two cells away
    return [_bisect(g, _SCAN[i], _SCAN[i + 1]) for i in np.flatnonzero((d > 1e-9 * (np.max(np.abs(y)) + 1.0))
                                                                         & (d > 50.0 * near))]  # fmt: skip


def breaks(phi: Fn, dphi: Fn) -> np.ndarray:
    """The u in [-40, 40] where phi or phi' jumps, away from the shipped knots: a user's Threshold(0.1, 0) or
    Softshrink(0.3) breaks there, and a panel across a break is 3-8 % off (one whose edge misses it by d, about
    d times the jump)."""
    return _off_knots([*_steps(phi), *_steps(dphi)])


def _off_knots(found: list[float]) -> np.ndarray:
    u = np.array(found)
    return np.unique(u[np.min(np.abs(u[:, None] - _KNOTS[None, :]), axis=1) > 1e-9]) if found else u


def _bisect(g: Fn, a: float, b: float) -> float:
    """Where in [a, b] g jumps: the half whose ends differ more holds it (the jump outweighs smooth change)."""
    ga, gb = g(np.array([a, b]))
    while b - a > 1e-12:
        m = 0.5 * (a + b)
        gm = g(np.array([m]))[0]
        a, ga, b, gb = (m, gm, b, gb) if abs(gb - gm) > abs(gm - ga) else (a, ga, m, gm)
    return 0.5 * (a + b)


def activation(act: Pair) -> Act:
    """`act` as an Act, with knots at its breaks (once: an Act passes through)."""
    if isinstance(act, Act):
        return act
    phi, dphi = act
    jumps = _steps(phi)  # scanned once: the breaks (phi's and phi''s) and the jumps (phi's alone)
    extra = _off_knots([*jumps, *_steps(dphi)])
    knots = np.sort(np.concatenate([_KNOTS, extra])) if len(extra) else _KNOTS
    return Act(phi, dphi, knots, np.array(jumps))


def continuous(act: Act) -> None:
    """chi_1, c* and the depth scales need a continuous phi: where phi jumps, the correlation map's slope at c = 1
    is infinite (the jump is a delta in phi' that autograd's phi' cannot show), so they are refused, not printed
    from a phi' that misses it. q* (the variance map) needs no slope and stands."""
    if len(act.jumps):
        raise ActivationError(
            f"the activation jumps at x={act.jumps[0]:.6g}: chi_1, c* and the depth scales need a "
            "continuous activation (a jump makes the correlation map's slope at c = 1 infinite)"
        )


def _check(sigma_w2: float | None = None, sigma_b2: float | None = None) -> None:
    for name, val, (lo, hi) in (("sigma_w2", sigma_w2, SIGMA_W2_RANGE), ("sigma_b2", sigma_b2, SIGMA_B2_RANGE)):
        if val is not None and not lo <= val <= hi:
            raise ValueError(f"{name}={val!r} is outside the range the theory answers for: [{lo:g}, {hi:g}]")
    if sigma_b2 is not None and 0 < sigma_b2 < SIGMA_B2_MIN:
        raise ValueError(
            f"sigma_b2={sigma_b2!r} is outside the range the theory answers for: 0 or [{SIGMA_B2_MIN:g}, "
            f"{SIGMA_B2_RANGE[1]:g}] (q* ~ sqrt(sigma_b2) there is lost in the rounding of E[phi^2])"
        )


def in_range(sigma_w2: float, sigma_b2: float) -> bool:
    """Whether the theory answers for this init (SIGMA_W2_RANGE, SIGMA_B2_RANGE, SIGMA_B2_MIN)."""
    try:
        _check(sigma_w2, sigma_b2)
    except ValueError:
        return False
    return True


def _nodes(m: np.ndarray, s: float, knots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes u and weights w, both (R, N), with sum_j w[r, j] f(u[r, j]) = E[f(u)] for u ~ N(m[r], s^2).

    Composite Gauss-Legendre on panels of 0.5 sd over m +- 9 s, split further at the knots (u-breakpoints,
    clipped to the window: zero-width panels there weigh 0), so that phi's structure near 0 (width ~1, kinks
    at 0) is resolved however wide the Gaussian is. Each row sorts its own breakpoints."""
    s = max(s, 1e-150)  # q = 0: a point mass, as the limit q -> 0
    knots = knots[(knots > m.min() - _WIN * s) & (knots < m.max() + _WIN * s)]  # (K,): in some row's window
    zk = np.clip((knots - m[:, None]) / s, -_WIN, _WIN)  # (R, K): the knots in each row's z
    zb = np.sort(np.concatenate([np.broadcast_to(_ZB, (len(m), len(_ZB))), zk], axis=1), axis=1)  # (R, P + 1)
    half = 0.5 * np.diff(zb, axis=1)[:, :, None]  # (R, P, 1): panel half-widths
    z = 0.5 * (zb[:, 1:, None] + zb[:, :-1, None]) + half * _GL_X  # (R, P, n)
    w = half * _GL_W * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # (R, P, n): N(0, 1) density folded in
    return m[:, None] + s * z.reshape(len(m), -1), w.reshape(len(m), -1)


def _mean(f: Fn, q: float, knots: np.ndarray) -> float:
    """E[f(u)], u ~ N(0, q)."""
    u, w = _nodes(np.zeros(1), math.sqrt(q), knots)  # (1, N)
    return float(w[0] @ f(u[0]))


def _mean2(f: Fn, g: Fn, q: float, c: float, knots: np.ndarray) -> float:
    """E[f(u1) g(u2)] for u1, u2 ~ N(0, q) with correlation c: over u1, f(u1) E[g(c u1 + s z)], s^2 = q (1 - c^2).

    The inner mean smooths g's kink at 0 over s; where that is finer than the outer panels (c near 1), the
    outer partition gets panels of 0.5 s / c around u1 = 0 too."""
    s = math.sqrt(q * max(1.0 - c * c, 0.0))  # inner sd
    fine = 0.5 * s / abs(c) * np.arange(-18.0, 19.0) if 0.5 * s < abs(c) * min(1.0, 0.5 * math.sqrt(q)) else []
    u1, w1 = _nodes(np.zeros(1), math.sqrt(q), np.concatenate([knots, fine]))
    keep = w1[0] > 0  # drop zero-width panels' nodes before the inner integrals
    u1, w1 = u1[0, keep], w1[0, keep]  # (N,)
    if s == 0.0:
        return float(w1 @ (f(u1) * g(u1)))
    u2, w2 = _nodes(c * u1, s, knots)  # (N, M): u2 given u1
    return float(w1 @ (f(u1) * np.sum(w2 * g(u2), axis=1)))


def _brent(f: Callable[[float], float], a: float, b: float, fa: float, fb: float, xtol: float = 0.0) -> float:
    """A root of f in [a, b], given fa = f(a) and fb = f(b) of opposite signs, to xtol + 1e-12 |root|
    (Brent-Dekker, as scipy's brentq: inverse quadratic or secant steps when safe, else bisection)."""
    if fa == 0 or fb == 0:
        return a if fa == 0 else b
    pre, cur, fpre, fcur, blk, fblk, spre, scur = a, b, fa, fb, a, fa, 0.0, 0.0
    for _ in range(200):
        if fpre * fcur < 0:
            blk, fblk, spre, scur = pre, fpre, cur - pre, cur - pre
        if abs(fblk) < abs(fcur):  # cur: the best guess so far
            pre, cur, blk, fpre, fcur, fblk = cur, blk, cur, fcur, fblk, fcur
        delta, sbis = 0.5 * (xtol + 1e-12 * abs(cur)), 0.5 * (blk - cur)
        if fcur == 0 or abs(sbis) < delta:
            return cur
        stry, interp = sbis, abs(spre) > delta and abs(fcur) < abs(fpre)
        if interp:
            if pre == blk:  # secant
                stry = -fcur * (cur - pre) / (fcur - fpre)
            else:  # inverse quadratic
                dpre, dblk = (fpre - fcur) / (pre - cur), (fblk - fcur) / (blk - cur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
        good = interp and 2 * abs(stry) < min(abs(spre), 3 * abs(sbis) - delta)  # a short step: take it
        spre, scur = (scur, stry) if good else (sbis, sbis)
        pre, fpre = cur, fcur
        cur += scur if abs(scur) > delta else math.copysign(delta, sbis)
        fcur = f(cur)
    return cur


def q_map(act: Pair, sigma_w2: float, sigma_b2: float, q: float) -> float:
    """Next layer's pre-activation variance: sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2."""
    _check(sigma_w2, sigma_b2)
    act = activation(act)
    phi, _ = act
    return sigma_w2 * _mean(lambda u: phi(u) ** 2, q, act.knots) + sigma_b2


def layer_variances(act: Pair, sigma_w2: float, sigma_b2: float, q0: float, depth: int) -> np.ndarray:
    """Predicted q^l of layers l = 1..depth, shape (depth,); q0 = mean(x**2) of the input."""
    _check(sigma_w2, sigma_b2)
    act = activation(act)
    qs = [sigma_w2 * q0 + sigma_b2]  # layer 1 sees x itself, not phi(x) (Poole et al.)
    while len(qs) < depth:
        qs.append(q_map(act, sigma_w2, sigma_b2, qs[-1]))
    return np.array(qs[:depth])


def q_star(act: Pair, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> float:
    """The fixed point that iterating q_map from q0 reaches (q_map increases with q, so the nearest root on
    the side the iterates move to); 0.0 or inf when outside [Q_MIN, Q_MAX]."""
    act = activation(act)

    def g(q: float) -> float:
        return q_map(act, sigma_w2, sigma_b2, q) - q

    g0 = g(q0)
    if abs(g0) <= 1e-13 * q0:  # a fixed point within rounding (relu at sigma_w2 = 2, sigma_b2 = 0: every q is)
        return q0
    up, lo, glo, hi = g0 > 0, q0, g0, q0
    while True:  # decade scan for a bracket, in the direction the iterates move
        hi = hi * 10.0 if up else hi / 10.0
        if not Q_MIN <= hi <= Q_MAX:
            return math.inf if up else 0.0
        ghi = g(hi)
        if abs(ghi) <= 1e-12 * hi:  # 0 within rounding, no crossing (tanh, sigma_w2 = 1: q - q_map ~ 2 q^2)
            continue
        if (ghi > 0) != up:
            return _brent(g, lo, hi, glo, ghi)
        lo, glo = hi, ghi


def clip_q(q: float) -> float:
    return min(max(q, Q_MIN), Q_MAX)  # q* = 0 or inf: evaluate at its limit


def chi(act: Pair, sigma_w2: float, q: float, c: float = 1.0) -> float:
    """sigma_w2 E[phi'(u1) phi'(u2)]; chi_1 at c = 1, chi_c at c = c*."""
    _check(sigma_w2)
    act = activation(act)
    _, dphi = act
    return sigma_w2 * _mean2(dphi, dphi, q, c, act.knots)


def chi_1(act: Pair, sigma_w2: float, sigma_b2: float) -> float:
    """Mean squared singular value of a layer's Jacobian at q*: gradients grow (>1) or vanish (<1) by it."""
    act = activation(act)
    return _chi_at(act, sigma_w2, q_star(act, sigma_w2, sigma_b2))


def _chi_at(act: Act, sigma_w2: float, q: float) -> float:
    """chi_1 at q*; where q* is 0 or inf, its limit there: chi at the cap where it has settled (relu's is
    sigma_w2 / 2 at any q), else inf where it still grows (a cubic's 27 sigma_w2 q^2) and 0 where it still
    shrinks (tanh's ~ 1 / sqrt(q)): the value at the cap itself would be a number of the cap's choosing."""
    at_cap = chi(act, sigma_w2, clip_q(q))
    if Q_MIN <= q <= Q_MAX:
        return at_cap
    before = chi(act, sigma_w2, clip_q(q) * (0.01 if q > Q_MAX else 100.0))  # two decades back from the cap
    if abs(at_cap - before) <= 1e-3 * max(abs(at_cap), abs(before)):
        return at_cap
    return math.inf if at_cap > before else 0.0


def c_map(act: Pair, sigma_w2: float, sigma_b2: float, q: float, c: float) -> float:
    """Correlation of two inputs after one layer, both at variance q and correlation c before it."""
    act = activation(act)
    phi, _ = act
    cov = sigma_w2 * _mean2(phi, phi, q, c, act.knots) + sigma_b2
    return cov / q_map(act, sigma_w2, sigma_b2, q)  # = cov / q at q = q*


def c_star(act: Pair, sigma_w2: float, sigma_b2: float, q: float) -> float:
    """Stable fixed point of c_map at q: 1 in the ordered phase (chi_1 <= 1), in [0, 1) in the chaotic one."""
    act = activation(act)
    v = q_map(act, sigma_w2, sigma_b2, q)
    slope = chi(act, sigma_w2, q) * q / v  # c_map'(1) (Price's theorem); = chi_1 at q = q*
    if slope <= 1.0 + _CHI_TOL:
        return 1.0
    phi, _ = act

    def f(c: float) -> float:  # (c_map(c) - c) / (1 - c): >= 0 at c = 0, -> 1 - slope < 0 as c -> 1
        return ((sigma_w2 * _mean2(phi, phi, q, c, act.knots) + sigma_b2) / v - c) / (1.0 - c)

    f0 = f(0.0)  # = c_map(0) = (sigma_w2 E[phi]^2 + sigma_b2) / v >= 0
    return 0.0 if f0 <= 1e-14 else _brent(f, 0.0, 1.0, f0, 1.0 - slope, xtol=1e-12)  # odd phi, sigma_b2 = 0: 0


def depth_scale(slope: float) -> float:
    """-1 / ln(slope): layers over which a perturbation decays by e; inf at slope >= 1 (criticality)."""
    return math.inf if slope >= 1.0 else 0.0 if slope <= 0.0 else -1.0 / math.log(slope)


@dataclass(frozen=True)
class MeanField:
    """One (act, sigma_w2, sigma_b2) point; c_star, xi_c, xi_q are nan when q* is 0 or inf."""

    sigma_w2: float
    q_star: float
    c_star: float
    chi_1: float
    xi_c: float  # correlation depth scale: -1/ln(chi_c), chi_c = chi at c*
    xi_q: float  # variance depth scale: -1/ln(d q_map / dq at q*)


def mean_field(act: Pair, sigma_w2: float, sigma_b2: float) -> MeanField:
    """q*, c*, chi_1 and the depth scales of a wide random net."""
    act = activation(act)
    continuous(act)
    q = q_star(act, sigma_w2, sigma_b2)
    c1 = _chi_at(act, sigma_w2, q)
    if not Q_MIN <= q <= Q_MAX:  # no fixed point to linearise around
        return MeanField(sigma_w2, q, math.nan, c1, math.nan, math.nan)
    cs = c_star(act, sigma_w2, sigma_b2, q)
    chi_c = c1 if cs == 1.0 else chi(act, sigma_w2, q, cs)
    phi, dphi = act
    dq = sigma_w2 * _mean(lambda u: u * phi(u) * dphi(u), q, act.knots) / q  # Stein: d/dq E[phi^2] = E[u phi phi'] / q
    return MeanField(sigma_w2, q, cs, c1, depth_scale(chi_c), depth_scale(dq))


def critical_sigma_w2(act: Pair, sigma_b2: float) -> float:
    """sigma_w2 with chi_1 = 1 (the order-to-chaos edge); nan if none in SIGMA_W2_RANGE, or where chi_1 jumps
    over 1 (a cubic's q*, reached from q = 1, jumps from a finite fixed point to inf)."""
    _check(sigma_b2=sigma_b2)
    act = activation(act)
    continuous(act)
    a, b = SIGMA_W2_RANGE

    def f(sw2: float) -> float:
        return chi_1(act, sw2, sigma_b2) - 1.0

    lo = hi = 1.0
    flo = fhi = f(1.0)
    while flo > 0 and lo > a:  # chi_1 increases with sigma_w2: halve down, or double up, to a bracket
        hi, fhi, lo = lo, flo, max(lo / 2.0, a)
        flo = f(lo)
    while fhi < 0 and hi < b:
        lo, flo, hi = hi, fhi, min(hi * 2.0, b)
        fhi = f(hi)
    if not flo <= 0 <= fhi:
        return math.nan
    root = _brent(f, lo, hi, flo, fhi)
    return root if abs(f(root)) < 1e-3 else math.nan  # chi_1 jumps over 1 (q* jumps between fixed points): no edge


def _number(text: str, positive: bool = False) -> float:
    try:
        val = float(text)
    except ValueError:
        val = math.nan  # fails both tests below
    if not (0 < val < math.inf if positive else 0 <= val < math.inf):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number {'> 0' if positive else '>= 0'}")
    return val


def shipped_acts() -> list[str]:
    """The activations the package ships: its conf/act/NAME.yaml files."""
    return sorted(p.stem for p in CONF_ACT.glob("*.yaml"))


def load_act(name: str) -> Act:
    """(phi, phi') of a shipped act config NAME or of a YAML file with a `_target_` (a user's activation), with
    knots at its breaks."""
    path = CONF_ACT / f"{name}.yaml" if name in shipped_acts() else Path(name)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        raise ValueError(f"--act {name!r} is neither one of {', '.join(shipped_acts())} nor a YAML file")
    from hydra.utils import instantiate  # here, not at import: torch and hydra take a second to load
    from omegaconf import DictConfig, OmegaConf

    from initlab.activations import mixes_units, phi

    try:
        cfg = OmegaConf.load(path)
        if not isinstance(cfg, DictConfig) or "_target_" not in cfg:
            raise ValueError("no _target_")
        f, df = phi(instantiate(cfg))
    except Exception as e:  # a user's file: not YAML, no or a bad _target_, bad arguments
        raise ValueError(f"--act {name!r}: cannot make an activation from {path}: {describe(e)}") from e
    pair = _checked(f, "the activation", name), _checked(df, "its derivative", name)
    for fn in pair:  # at once, on a 2-D grid: a NaN, or a shape that changes, is found before any number is printed
        fn(_PROBE)
    if mixes_units(pair[0]):
        raise ActivationError(f"--act {name!r}: the activation must be elementwise; its value at one unit changes "
                              "with the others (Softmin over units, x - mean(x))")  # fmt: skip
    return activation(pair)


class ActivationError(ValueError):
    """An activation the theory cannot use: not elementwise, or non-finite somewhere the theory looks."""


_PROBE = np.linspace(-10.0, 10.0, 42).reshape(2, 21)  # (2, 21): both signs, 0 excluded (a kink's autograd)


def _checked(fn: Fn, what: str, name: str) -> Fn:
    """fn, refusing in one line (ActivationError) an output of another shape than its input, or a non-finite one:
    every number the theory prints is a sum over such outputs, and a NaN among them makes it a wrong number."""

    def run(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        try:
            y = np.asarray(fn(x))
        except Exception as e:  # a user's module that fails on some input
            first = (str(e).strip().splitlines() or [""])[0]
            raise ActivationError(f"--act {name!r}: {what} fails on an array of shape {list(x.shape)}: "
                                  f"{type(e).__name__}: {first}") from e  # fmt: skip
        if y.shape != x.shape:
            raise ActivationError(f"--act {name!r}: the activation must be elementwise (same shape out as in); it "
                                  f"turns shape {list(x.shape)} into {list(y.shape)}")  # fmt: skip
        bad = ~np.isfinite(y)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ActivationError(f"--act {name!r}: {what} gives non-finite values ({y.flat[i]} at x={x.flat[i]:g}); "
                                  "it must be finite for every finite x")  # fmt: skip
        return y

    return run


def phase(q: float, chi1: float) -> str:
    if not Q_MIN <= q <= Q_MAX:
        return "q->0" if q < Q_MIN else "q->inf"  # signal vanishes / explodes with depth
    return "critical" if abs(chi1 - 1) <= _CHI_TOL else "ordered" if chi1 < 1 else "chaotic"


def _json_num(v: float) -> float | None:
    return v if math.isfinite(v) else None  # JSON has no inf / nan


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = OneLineParser(
        prog="python -m initlab.theory", description="Mean-field q*, c*, chi_1, xi_c over a sigma_w2 grid."
    )
    p.add_argument("--act", default="tanh", help="a shipped activation (conf/act/NAME.yaml; default tanh) or a "
                   "YAML file with a _target_ (your own activation module)")  # fmt: skip
    p.add_argument("--sigma-b2", type=_number, default=0.0, help="bias variance (default 0, the project's zero bias)")
    grid = [float(v) for v in np.arange(1.0, 4.01, 0.25)]  # 1, 1.25, ..., 4
    p.add_argument(
        "--sigma-w2",
        type=lambda text: [_number(v, positive=True) for v in text.split(",")],
        default=grid,
        help="comma-separated weight variances (default 1,1.25,...,4)",
    )
    p.add_argument("--json", action="store_true", help="print JSON; inf and nan (undefined) are written as null")
    args = p.parse_args(argv)
    for sw2 in args.sigma_w2:
        _check(sw2, args.sigma_b2)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _args(argv)
    except (argparse.ArgumentError, ValueError) as e:
        print(f"initlab.theory: error: {e}", file=sys.stderr)
        return 1
    except SystemExit as e:  # --help
        return int(e.code or 0)
    try:  # a user's activation that prints would corrupt the table or the JSON: its output goes to stderr
        with contextlib.redirect_stdout(sys.stderr):
            act = load_act(args.act)
            rows = [asdict(mean_field(act, s, args.sigma_b2)) for s in args.sigma_w2]
            crit = critical_sigma_w2(act, args.sigma_b2)
    except ValueError as e:  # a file that is no activation; ActivationError: non-finite, found where it shows
        print(f"initlab.theory: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        out = [{k: _json_num(v) for k, v in r.items()} for r in rows]
        print(json.dumps({"critical_sigma_w2": _json_num(crit), "rows": out}))
        return 0
    print(f"act={args.act} sigma_b2={args.sigma_b2:g}: critical sigma_w2 = {crit:.4g} (chi_1 = 1)")
    print("".join(f"{k:>10}" for k in [*rows[0], "phase"]))
    for r in rows:
        print("".join(f"{v:>10.4g}" for v in r.values()) + f"{phase(r['q_star'], r['chi_1']):>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
