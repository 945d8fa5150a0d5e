"""Mean-field signal propagation in wide random MLPs (Poole et al. 2016; Schoenholz et al. 2017).

Weights W ~ N(0, sigma_w2 / n_in), biases b ~ N(0, sigma_b2). Gaussian integrals by Gauss-Hermite
quadrature; numpy only. Equations and meaning: docs/theory.md. CLI: `python -m initlab.theory --help`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from initlab.phi import ACTIVATIONS, TORCH_NAMES, Fn, activation  # noqa: F401  (TORCH_NAMES: re-exported)

Act = str | tuple[Fn, Fn]  # a name in ACTIVATIONS, or a (phi, phi') pair
_Z, _W = np.polynomial.hermite_e.hermegauss(100)  # (100,); even count: no node on ReLU's kink at 0
_W = _W / math.sqrt(2 * math.pi)  # now _W @ f(_Z) = E[f(z)], z ~ N(0, 1)
Q_MIN, Q_MAX = 1e-30, 1e12  # q* beyond: 0 / inf. 1e12: q* = sigma_b2 / (1 - slope) meets float rounding of slope


def _fns(act: Act) -> tuple[Fn, Fn]:
    return activation(act) if isinstance(act, str) else act


def _mean2(f: Fn, g: Fn, q: float, c: float) -> float:
    """E[f(u1) g(u2)] for u1, u2 ~ N(0, q) with correlation c (2-D Gauss-Hermite)."""
    s, z1, z2 = math.sqrt(q), _Z[:, None], _Z[None, :]  # z1 (N, 1), z2 (1, N)
    u2 = s * (c * z1 + math.sqrt(max(1.0 - c * c, 0.0)) * z2)  # (N, N)
    return float(_W @ (f(s * z1) * g(u2)) @ _W)


def q_map(act: Act, sigma_w2: float, sigma_b2: float, q: float) -> float:
    """Next layer's pre-activation variance: sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2."""
    phi, _ = _fns(act)
    return sigma_w2 * float(_W @ phi(math.sqrt(q) * _Z) ** 2) + sigma_b2


def layer_variances(act: Act, sigma_w2: float, sigma_b2: float, q0: float, depth: int) -> np.ndarray:
    """Predicted q^l of layers l = 1..depth, shape (depth,); q0 = mean(x**2) of the input."""
    qs = [sigma_w2 * q0 + sigma_b2]  # layer 1 sees x itself, not phi(x) (Poole et al.)
    while len(qs) < depth:
        qs.append(q_map(act, sigma_w2, sigma_b2, qs[-1]))
    return np.array(qs[:depth])


def _bisect(f: Callable[[float], float], a: float, b: float, a_pos: bool | None = None) -> float:
    """A root of f between a and b, where f changes sign; a_pos: f > 0 on a's side (default: f(a) > 0)."""
    pos = f(a) > 0 if a_pos is None else a_pos
    for _ in range(60):
        m = 0.5 * (a + b)
        a, b = (m, b) if (f(m) > 0) == pos else (a, m)
    return 0.5 * (a + b)


def q_star(act: Act, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> float:
    """The fixed point that iterating q_map from q0 reaches (q_map increases with q, so the nearest root on
    the side the iterates move to); 0.0 or inf when outside [Q_MIN, Q_MAX]."""

    def g(q: float) -> float:
        return q_map(act, sigma_w2, sigma_b2, q) - q

    g0 = g(q0)
    if g0 == 0:
        return q0
    up = g0 > 0
    lo = hi = q0
    while (g(hi) > 0) == up:  # decade scan for a bracket, in the direction the iterates move
        lo, hi = hi, hi * 10.0 if up else hi / 10.0
        if not Q_MIN <= hi <= Q_MAX:
            return math.inf if up else 0.0
    return _bisect(g, lo, hi)


def _clip(q: float) -> float:
    return min(max(q, Q_MIN), Q_MAX)  # q* = 0 or inf: evaluate at its limit


def chi(act: Act, sigma_w2: float, q: float, c: float = 1.0) -> float:
    """sigma_w2 E[phi'(u1) phi'(u2)]; chi_1 at c = 1, chi_c at c = c*."""
    _, dphi = _fns(act)
    return sigma_w2 * _mean2(dphi, dphi, q, c)


def chi_1(act: Act, sigma_w2: float, sigma_b2: float) -> float:
    """Mean squared singular value of a layer's Jacobian at q*: gradients grow (>1) or vanish (<1) by it."""
    return chi(act, sigma_w2, _clip(q_star(act, sigma_w2, sigma_b2)))


def c_map(act: Act, sigma_w2: float, sigma_b2: float, q: float, c: float) -> float:
    """Correlation of two inputs after one layer, both at variance q and correlation c before it."""
    phi, _ = _fns(act)
    cov = sigma_w2 * _mean2(phi, phi, q, c) + sigma_b2
    return cov / q_map(act, sigma_w2, sigma_b2, q)  # = cov / q at q = q*


def c_star(act: Act, sigma_w2: float, sigma_b2: float, q: float) -> float:
    """Stable fixed point of c_map at q: 1 in the ordered phase (chi_1 <= 1), in [0, 1) in the chaotic one."""
    if chi(act, sigma_w2, q) <= 1.0:
        return 1.0
    # c_map(0) >= 0 (= 0 for odd phi, sigma_b2 = 0: then c* = 0), and c_map(c) < c just below 1
    return _bisect(lambda c: c_map(act, sigma_w2, sigma_b2, q, c) - c, 0.0, 1.0, a_pos=True)


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


def mean_field(act: Act, sigma_w2: float, sigma_b2: float) -> MeanField:
    """q*, c*, chi_1 and the depth scales of a wide random net."""
    q = q_star(act, sigma_w2, sigma_b2)
    c1 = chi(act, sigma_w2, _clip(q))
    if not Q_MIN <= q <= Q_MAX:  # no fixed point to linearise around
        return MeanField(sigma_w2, q, math.nan, c1, math.nan, math.nan)
    cs = c_star(act, sigma_w2, sigma_b2, q)
    chi_c = c1 if cs == 1.0 else chi(act, sigma_w2, q, cs)
    phi, dphi = _fns(act)
    u = math.sqrt(q) * _Z  # (N,)
    dq = sigma_w2 * float(_W @ (_Z * phi(u) * dphi(u))) / math.sqrt(q)  # Stein: d/dq E[phi^2] = E[z phi phi']/sqrt(q)
    return MeanField(sigma_w2, q, cs, c1, depth_scale(chi_c), depth_scale(dq))


def critical_sigma_w2(act: Act, sigma_b2: float) -> float:
    """sigma_w2 with chi_1 = 1 (the order-to-chaos edge); nan if none in [1e-3, 1e4]."""

    def f(s: float) -> float:
        return chi_1(act, s, sigma_b2) - 1.0

    lo, hi = 1.0, 1.0
    while f(lo) > 0 and lo > 1e-3:  # chi_1 increases with sigma_w2
        lo /= 2.0
    while f(hi) < 0 and hi < 1e4:
        hi *= 2.0
    return _bisect(f, lo, hi) if f(lo) <= 0 <= f(hi) else math.nan


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise argparse.ArgumentError(None, message)  # one line instead of usage + message, exit 1 instead of 2


def _number(text: str, positive: bool = False) -> float:
    try:
        val = float(text)
    except ValueError:
        val = math.nan  # fails both tests below
    if not (0 < val < math.inf if positive else 0 <= val < math.inf):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number {'> 0' if positive else '>= 0'}")
    return val


def _phase(q: float, chi1: float) -> str:
    if not Q_MIN <= q <= Q_MAX:
        return "q->0" if q < Q_MIN else "q->inf"  # signal vanishes / explodes with depth
    return "ordered" if chi1 < 1 else "chaotic" if chi1 > 1 else "critical"


def _json_num(v: float) -> float | None:
    return v if math.isfinite(v) else None  # JSON has no inf / nan


def main(argv: Sequence[str] | None = None) -> int:
    p = _Parser(prog="python -m initlab.theory", description="Mean-field q*, c*, chi_1, xi_c over a sigma_w2 grid.")
    p.add_argument("--act", default="tanh", choices=list(ACTIVATIONS), help="activation (default tanh)")
    p.add_argument("--sigma-b2", type=_number, default=0.0, help="bias variance (default 0, the project's zero bias)")
    grid = [float(v) for v in np.arange(1.0, 4.01, 0.25)]  # 1, 1.25, ..., 4
    p.add_argument(
        "--sigma-w2",
        type=lambda text: [_number(v, positive=True) for v in text.split(",")],
        default=grid,
        help="comma-separated weight variances (default 1,1.25,...,4)",
    )
    p.add_argument("--json", action="store_true", help="print JSON; inf and nan (undefined) are written as null")
    try:
        args = p.parse_args(argv)
    except argparse.ArgumentError as e:
        print(f"initlab.theory: error: {e}", file=sys.stderr)
        return 1
    except SystemExit as e:  # --help
        return int(e.code or 0)
    rows = [asdict(mean_field(args.act, s, args.sigma_b2)) for s in args.sigma_w2]
    crit = critical_sigma_w2(args.act, args.sigma_b2)
    if args.json:
        out = [{k: _json_num(v) for k, v in r.items()} for r in rows]
        print(json.dumps({"critical_sigma_w2": _json_num(crit), "rows": out}))
        return 0
    print(f"act={args.act} sigma_b2={args.sigma_b2:g}: critical sigma_w2 = {crit:.4g} (chi_1 = 1)")
    print("".join(f"{k:>10}" for k in [*rows[0], "phase"]))
    for r in rows:
        print("".join(f"{v:>10.4g}" for v in r.values()) + f"{_phase(r['q_star'], r['chi_1']):>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
