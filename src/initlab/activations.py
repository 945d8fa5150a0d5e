"""An activation is its torch module; its phi, phi' and diagnostics family are derived from the module itself.

phi(module): (phi, phi') as numpy functions, by running the module in float64 (phi' by autograd).
profile(module): the family, by probing phi on a float64 grid:
  bounded (phi converges at both ends, e.g. tanh, sigmoid)  -> saturated_frac: outputs within 1 % of a bound
  else phi' = 0 for all z < 0 (relu)                         -> dead_frac: units never positive over a batch
  else (leaky_relu, elu, selu, gelu, silu, mish, softplus)   -> flat_frac: inputs where |phi'(z)| < 0.01
family_stats(profile, module, z, a): that statistic on one batch's input z and output a.
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from initlab.errors import ConfigError, describe

Fn = Callable[[np.ndarray], np.ndarray]
_FAR = np.array([-1e4, -1e3, 1e3, 1e4])  # where a bounded phi has reached its limits
_NEG = -np.geomspace(1e-3, 50.0, 64)  # (64,): u < 0, where a rectifier's slope is exactly 0
_PROFILES: dict[tuple, "Profile"] = {}  # probing costs ~1 ms: once per activation class and settings


def phi(module: nn.Module) -> tuple[Fn, Fn]:
    """(phi, phi'): the module run elementwise in float64 on a numpy array of any shape; phi' by autograd."""
    mod = copy.deepcopy(module).eval().to("cpu", torch.float64)  # eval: no sampling (RReLU); f64 parameters

    def f(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return mod(torch.tensor(np.asarray(x, dtype=np.float64))).numpy()

    def df(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode(False), torch.enable_grad():
            t = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
            y = mod(t * 1.0)  # `* 1.0`: not the leaf, which an in-place module (ReLU(inplace=True)) may not overwrite
            # d sum / d t_i = phi'(t_i); a step function, (x > 0).float(), passes no gradient: phi' = 0 where it is
            # defined, as training sees it
            (g,) = torch.autograd.grad(y.sum(), t, allow_unused=True) if y.requires_grad else (None,)
        return np.zeros(t.shape) if g is None else g.numpy()

    return f, df


@dataclass(frozen=True)
class Profile:
    """The family statistic an activation gets; `bounds` = (lo, hi), phi's limits, when it is bounded."""

    stat: str  # saturated_frac | dead_frac | flat_frac
    bounds: tuple[float, float] | None = None


_UNITS = np.linspace(-3.0, 3.0, 8)  # (8,): a layer's units; the second half changed below
_OTHERS = np.concatenate([_UNITS[:4], [10.0, -7.0, 0.5, 3.3]])


def mixes_units(f: Fn) -> bool:
    """Whether phi's value at a unit depends on the other units (Softmin over them, tanh(x - x.mean())): the same
    shape out as in, yet no function of each unit alone. The first four units must not change with the rest."""
    return not np.allclose(f(_UNITS)[:4], f(_OTHERS)[:4], rtol=0.0, atol=1e-12, equal_nan=True)


def _probe(module: nn.Module) -> Profile:
    f, df = phi(module)
    rule = f"act ({type(module).__name__}) must be elementwise, one output per unit whatever the input's shape"
    try:
        far = f(_FAR)  # (4,): phi at -1e4, -1e3, 1e3, 1e4
        neg = df(_NEG)
    except Exception as e:  # Softmax(dim=1) on a 1-D probe (no function of each unit alone), GELU('cubic')
        raise ConfigError(
            f"act ({type(module).__name__}) failed on a 1-D probe of {len(_FAR)} values: {describe(e)} "
            "(an activation is elementwise, one output per unit whatever the input's shape)"
        ) from e
    if far.shape != _FAR.shape or neg.shape != _NEG.shape:
        raise ConfigError(f"{rule}: it turned {len(_FAR)} values into {list(far.shape)}")
    if mixes_units(f):
        raise ConfigError(f"{rule}: its value at one unit changed with the others")
    scale = max(abs(far[0]), abs(far[3]), 1e-12)
    if np.all(np.isfinite(far)) and max(abs(far[0] - far[1]), abs(far[3] - far[2])) <= 0.01 * scale:
        return Profile("saturated_frac", (float(min(far[0], far[3])), float(max(far[0], far[3]))))
    if np.all(np.abs(neg) <= 1e-12):
        return Profile("dead_frac")
    return Profile("flat_frac")


def _key(module: nn.Module) -> tuple | None:
    """Class, repr and plain attributes: what fixes an activation without parameters; None if it has some."""
    if next(module.parameters(), None) is not None or next(module.buffers(), None) is not None:
        return None  # learnable (PReLU): its shape can change as it trains
    plain = sorted((k, v) for k, v in vars(module).items() if not k.startswith("_") and type(v) in (bool, int, float))
    return type(module), repr(module), tuple(plain)  # repr misses a user's own attributes (ScaledTanh's scale)


def profile(module: nn.Module) -> Profile:
    """The module's family (module docstring), probed once per class and settings."""
    key = _key(module)
    if key is None:
        return _probe(module)
    if key not in _PROFILES:
        _PROFILES[key] = _probe(module)
    return _PROFILES[key]


def family_stats(prof: Profile, module: nn.Module, z: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
    """The profile's statistic on input z and output a of the module, both [B, units or channels, ...]."""
    if prof.stat == "saturated_frac":
        lo, hi = prof.bounds  # type: ignore[misc]
        tol = 0.01 * max(abs(lo), abs(hi))  # tanh: |a| > 0.99; sigmoid: a < 0.01 or a > 0.99
        return {"saturated_frac": (((a - lo).abs() < tol) | ((a - hi).abs() < tol)).float().mean()}
    if prof.stat == "dead_frac":
        units = (z > 0).transpose(0, 1).flatten(1)  # [units or channels, batch * positions]
        return {"dead_frac": (~units.any(dim=1)).float().mean()}
    with torch.inference_mode(False), torch.enable_grad():
        zz = z.detach().clone().requires_grad_(True)  # clone: z may be an inference tensor
        (slope,) = torch.autograd.grad(module(zz * 1.0).sum(), zz)  # phi'(z), elementwise (`* 1.0`: in-place safe)
    return {"flat_frac": (slope.abs() < 0.01).float().mean()}
