"""Each activation's phi and phi' in numpy, as initlab.theory integrates them (names and kwargs as torch's)."""

import math
from collections.abc import Callable
from functools import partial

import numpy as np

Fn = Callable[..., np.ndarray]
_SELU = (1.0507009873554805, 1.6732632423543772)  # (scale, alpha), as torch.nn.SELU
_erf = np.vectorize(math.erf, otypes=[float])  # exact erf; numpy has none


def _sig(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + e^-x) without overflow


def _elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))  # min: no overflow in the unused branch


def _delu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))


def _cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


ACTIVATIONS: dict[str, tuple[Fn, Fn]] = {  # name -> (phi, phi'); names and kwargs as torch's (initlab.model)
    "sigmoid": (_sig, lambda x: _sig(x) * (1.0 - _sig(x))),
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float)),
    "leaky_relu": (  # kwarg negative_slope
        lambda x, negative_slope=0.01: np.where(x > 0, x, negative_slope * x),
        lambda x, negative_slope=0.01: np.where(x > 0, 1.0, negative_slope),
    ),
    "elu": (_elu, _delu),  # kwarg alpha
    "selu": (lambda x: _SELU[0] * _elu(x, _SELU[1]), lambda x: _SELU[0] * _delu(x, _SELU[1])),
    "gelu": (lambda x: x * _cdf(x), lambda x: _cdf(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)),
    "silu": (lambda x: x * _sig(x), lambda x: _sig(x) * (1.0 + x * (1.0 - _sig(x)))),
}


TORCH_NAMES = {"Sigmoid": "sigmoid", "Tanh": "tanh", "ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu",
               "SELU": "selu", "GELU": "gelu", "SiLU": "silu"}  # torch.nn class -> name here  # fmt: skip


def activation(name: str, **kwargs: float) -> tuple[Fn, Fn]:
    """(phi, phi') of `name` with its kwargs (negative_slope, alpha) bound."""
    if name not in ACTIVATIONS:
        raise ValueError(f"act={name!r} is not a valid choice; choose one of: {', '.join(ACTIVATIONS)}")
    phi, dphi = ACTIVATIONS[name]
    return partial(phi, **kwargs), partial(dphi, **kwargs)
