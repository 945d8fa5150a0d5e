"""Weight initialisation from an `init` config: a weight function (`_target_`), a bias rule, its theory, and an
optional data-dependent calibration.

An init config (conf/init/NAME.yaml, or one in your own config dir) holds:
    weight:    a `_target_` function that fills a weight tensor in place (torch.nn.init's, or yours) or returns
               its values as a new tensor of that shape, with its keyword arguments; null keeps torch's own
               initialisation. A function that also takes `name`, `index` (0-based, over the net's weighted
               layers) or `depth` (their count) gets them: a Fixup-style depth-scaled init is one function and
               one YAML.
    bias:      zero (the theory's assumption) | default (torch's own, U(+-1/sqrt(fan_in))) | a `_target_`
               function that fills the bias vector (init=gaussian: N(0, sigma_b2))
    variance:  Var(w) as an expression in fan_in, fan_out and the weight function's numeric arguments, e.g.
               "2 / fan_in"; diagnostics, tests and docs compare against it. null: no closed form (lsuv).
    calibrate: optional `_target_` function (net, x, **kwargs) run once on the first training batch, before
               the first update and never on resume: a data-dependent init such as LSUV.
"""

import ast
import inspect
import logging
import math
import operator
from collections.abc import Callable
from typing import Any

from initlab.errors import ConfigError, describe

log = logging.getLogger(__name__)
BIAS_RULES = ("zero", "default")
INIT_KEYS = ("weight", "bias", "variance", "calibrate")  # what apply_init and calibrate read from an init config
WEIGHTED = ("Linear", "Conv1d", "Conv2d", "Conv3d")  # torch.nn's layers an init fills (fan-in/out as torch computes)
LAYER_ARGS = ("name", "index", "depth")  # what a weight function may ask for, besides the tensor
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.USub: operator.neg}  # fmt: skip
_FUNCS = {"max": max, "min": min, "sqrt": math.sqrt}
# What user code (a model, an init, a calibration, a data set's load) may raise besides an Exception, as its own
# failure: a real signal never arrives as one of these (the run's handlers turn it into
# initlab.run.signals.Interrupted, a BaseException of its own, which is never caught with these).
USER_EXITS = (SystemExit, KeyboardInterrupt)


def variance(expr: str | float, names: dict[str, float]) -> float:
    """Evaluate a variance expression: numbers, + - * / **, max/min/sqrt, and the given names only."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id in names:
            return float(names[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.operand))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
            return _FUNCS[node.func.id](*(ev(a) for a in node.args))
        raise ValueError(f"{ast.unparse(node)!r} is not allowed (use numbers, fan_in, fan_out, + - * / **)")

    if len(str(expr)) > 200:
        raise ValueError("longer than 200 characters")  # a formula, not a program
    return ev(ast.parse(str(expr), mode="eval").body)


def expected_variance(init: dict[str, Any], fan_in: int, fan_out: int, rows: int | None = None,
                      cols: int | None = None) -> float | None:  # fmt: skip
    """Var(w) that `init` states for a layer with this fan-in and fan-out, and this shape as a matrix (rows x
    cols, as torch's orthogonal_ flattens it: a Linear's are fan_out x fan_in, a conv's out_channels x fan_in);
    None for an init without one."""
    if init.get("variance") is None:
        return None
    weight = init.get("weight") or {}
    kwargs = {k: v for k, v in weight.items() if isinstance(v, int | float)}
    shape = {"fan_in": fan_in, "fan_out": fan_out, "rows": fan_out if rows is None else rows,
             "cols": fan_in if cols is None else cols}  # fmt: skip
    if isinstance(weight.get("mode"), str):  # kaiming_*'s: the fan it scales by
        shape["fan"] = fan_in if weight["mode"] == "fan_in" else fan_out
    if isinstance(weight.get("nonlinearity"), str):
        shape["gain"] = kaiming_gain(weight["nonlinearity"], weight.get("a", 0))
    return variance(init["variance"], {**kwargs, **shape})


UNIT_GAIN = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
             "sigmoid")  # fmt: skip
NONLINEARITIES = (*UNIT_GAIN, "tanh", "relu", "leaky_relu", "selu")  # torch.nn.init.calculate_gain's


def kaiming_gain(nonlinearity: str, a: float = 0.0) -> float:
    """torch.nn.init.calculate_gain as kaiming_* call it (with their `a`), without torch, so the config checks can
    evaluate a variance before torch loads (tests/test_inits.py holds it to torch's)."""
    if nonlinearity in UNIT_GAIN:
        return 1.0
    gains = {"tanh": 5 / 3, "relu": math.sqrt(2.0), "leaky_relu": math.sqrt(2.0 / (1 + a**2)), "selu": 3 / 4}
    if nonlinearity not in gains:
        raise ValueError(f"nonlinearity {nonlinearity!r} has no gain")
    return gains[nonlinearity]


def sigma_w2(init: dict[str, Any]) -> float | None:
    """Var(w) x fan_in where that is one constant (mean-field theory's sigma_w^2), else None."""
    if init.get("variance") is None:
        return None
    values = {round(expected_variance(init, i, o) * i, 9) for i, o in ((100, 100), (784, 10), (50, 500))}
    return values.pop() if len(values) == 1 else None


def bias_variance(init: dict[str, Any]) -> float | None:
    """Var(b) that `init` gives: 0 for zero biases, its `variance` argument for a drawn one, else None."""
    bias = init.get("bias", "zero")
    if bias == "zero":
        return 0.0
    return float(bias["variance"]) if isinstance(bias, dict) and "variance" in bias else None


def fan_in_normal_(tensor: Any, sigma_w2: float = 1.0) -> Any:
    """W ~ N(0, sigma_w2 / fan_in): mean-field theory's weights (sigma_w2 = 1 lecun, 2 kaiming)."""
    import torch

    with torch.no_grad():
        return tensor.normal_(0.0, math.sqrt(sigma_w2 / fans(tensor)[0]))


def normal_variance_(tensor: Any, variance: float = 0.0) -> Any:
    """b ~ N(0, variance) (zeros for variance 0)."""
    import torch

    with torch.no_grad():
        return tensor.normal_(0.0, math.sqrt(variance)) if variance > 0 else tensor.zero_()


def fans(weight: Any) -> tuple[int, int, int, int]:
    """(fan_in, fan_out) as torch computes them: in/out features times the receptive field (conv kernels); then
    (rows, cols), the weight as a matrix of its first dimension by the rest."""
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive, weight.shape[0], weight.numel() // weight.shape[0]


def _weighted(module: Any) -> bool:
    """A torch.nn Linear or Conv layer, or a subclass (not any class that is only named so: a user's `Linear`
    activation)."""
    from torch import nn

    return isinstance(module, tuple(getattr(nn, name) for name in WEIGHTED))


def weighted_layers(model: Any) -> list[tuple[str, Any]]:
    """(name, module) of every Linear and Conv layer, in the model's order: what an init fills."""
    return [(n, m) for n, m in model.named_modules() if _weighted(m)]


def untouched_layers(model: Any) -> list[str]:
    """'name (Type)' of every module holding parameters of its own that an init does not fill: a norm's scale, an
    LSTM's weights, a transposed conv, a bare nn.Parameter of the model itself."""
    found = []
    for name, module in model.named_modules():
        if not _weighted(module) and next(module.parameters(recurse=False), None) is not None:
            found.append(f"{name} ({type(module).__name__})" if name else f"{type(module).__name__}'s own parameters")
    return found


def _filler(init: dict[str, Any]) -> Callable | None:
    """The weight function as `fill(tensor, name, index, depth)`, passing on only what it asks for."""
    if not init.get("weight"):
        return None
    from hydra.utils import get_object, instantiate

    fn = instantiate(init["weight"], _partial_=True)
    try:
        wants = [a for a in LAYER_ARGS if a in inspect.signature(get_object(init["weight"]["_target_"])).parameters]
    except (TypeError, ValueError):  # a builtin without a signature: it takes the tensor only
        wants = []
    return lambda tensor, **layer: fn(tensor, **{k: layer[k] for k in wants})


def _filled(tensor: Any, out: Any, key: str) -> None:
    """Keep what a fill function made: in place (torch.nn.init's return the tensor they were given), or a new tensor
    of the same shape, copied in (left alone, it would be silently dropped)."""
    import torch

    if out is None or out is tensor:
        return  # filled in place
    if not isinstance(out, torch.Tensor):  # a numpy array, a number: left alone it would be silently dropped
        raise ConfigError(f"{key} returned a {type(out).__name__}: fill the tensor it is given in place, or return "
                          f"a torch tensor of its shape {list(tensor.shape)}")  # fmt: skip
    if out.shape != tensor.shape:
        raise ConfigError(f"{key} returned a tensor of shape {list(out.shape)} for a parameter of shape "
                          f"{list(tensor.shape)}: fill the tensor in place, or return one of its shape")  # fmt: skip
    if out.data_ptr() != tensor.data_ptr():
        tensor.copy_(out)


def apply_init(model: Any, init: dict[str, Any]) -> Any:
    """Fill every Linear and Conv weight of `model` by init["weight"], biases by init["bias"].

    Any other layer with parameters (a norm's scale, an embedding, an LSTM) keeps torch's init, named in one line.
    """
    import torch
    from hydra.utils import instantiate

    fill = _filler(init)
    bias = init.get("bias", "zero")
    fill_bias: Callable | None = instantiate(bias, _partial_=True) if isinstance(bias, dict) else None
    layers = weighted_layers(model)
    if untouched := untouched_layers(model):
        log.info("init leaves %s at torch's default", ", ".join(untouched))
    with torch.no_grad():
        for index, (name, layer) in enumerate(layers):
            if fill is not None:
                _filled(layer.weight, fill(layer.weight, name=name, index=index, depth=len(layers)), "init.weight")
            _check_drawn(init, name, layer.weight)
            if getattr(layer, "bias", None) is None:
                continue
            if fill_bias is not None:
                _filled(layer.bias, fill_bias(layer.bias), "init.bias")
            elif bias == "zero":
                layer.bias.zero_()
    return model


MIN_CHECKED = 200  # weights a layer needs for its sample variance to test the stated one (to ~6 sqrt(2/n))


def _check_drawn(init: dict[str, Any], name: str, weight: Any) -> None:
    """The weights drawn have the variance init.variance states, within six standard errors of a sample variance
    (plus 2 %): the diagnostics and the theory read the stated one. An override that changes the draw but not the
    formula (init.weight.mode=fan_out, init.weight.nonlinearity=tanh on kaiming) would have the record describe
    another init."""
    fan_in, fan_out, rows, cols = fans(weight)
    stated = expected_variance(init, fan_in, fan_out, rows, cols)
    if stated is None or weight.numel() < MIN_CHECKED:
        return
    drawn = weight.detach().double().var().item()
    if abs(drawn - stated) > (6 * math.sqrt(2 / weight.numel()) + 0.02) * stated + 1e-12:
        raise ConfigError(f"init.variance={init['variance']!r} states {stated:.4g} for {name or 'the layer'} "
                          f"(fan_in {fan_in}, fan_out {fan_out}), but init.weight drew weights of variance "
                          f"{drawn:.4g}: give init.variance the formula of the draw, or null")  # fmt: skip


def calibrate(model: Any, init: dict[str, Any], x: Any) -> None:
    """Run the init's data-dependent step (init["calibrate"]) on a batch of inputs `x`."""
    from hydra.utils import instantiate

    name = f"init.calibrate ({init['calibrate'].get('_target_')})"
    params = list(model.parameters())  # the optimizer's, built before the first batch
    shapes = [(p.dtype, tuple(p.shape), p.device, p.requires_grad) for p in params]
    try:
        instantiate(init["calibrate"], _partial_=True)(model, x)
    except (Exception, *USER_EXITS) as e:  # a user's calibration is code we cannot vouch for: name it, in one line
        raise ConfigError(f"{name} failed on the first training batch: {describe(e)}") from e
    now = list(model.parameters())
    if len(now) != len(params) or any(a is not b for a, b in zip(now, params, strict=False)):
        raise ConfigError(f"{name} replaced a layer or parameter of the model: the optimizer holds the ones built "
                          "before it, so the new ones would never train; change the weights in place "
                          "(layer.weight.mul_(...), .copy_(...))")  # fmt: skip
    for (pname, p), before in zip(model.named_parameters(), shapes, strict=True):
        if (p.dtype, tuple(p.shape), p.device) != before[:3]:  # p.data = p.double() keeps the object, not the model
            raise ConfigError(f"{name} changed {pname} from {before[0]} {list(before[1])} to {p.dtype} "
                              f"{list(p.shape)}: change the values in place, keeping dtype and shape")  # fmt: skip
        if p.requires_grad != before[3]:  # frozen: nothing would train it (all frozen: no gradient at all)
            raise ConfigError(f"{name} changed {pname}.requires_grad to {p.requires_grad}: a calibration sets "
                              "values, not what trains")  # fmt: skip


def lsuv(model: Any, x: Any, tol: float = 0.05, max_iter: int = 10) -> None:
    """Layer-sequential unit variance (Mishkin & Matas 2016): after an orthogonal init, rescale each weighted
    layer in turn, first to last, until its output variance on the batch `x` is 1 within `tol`."""
    import torch

    with torch.no_grad():
        for name, layer in weighted_layers(model):
            seen: list[torch.Tensor] = []
            handle = layer.register_forward_hook(lambda m, i, out: seen.append(out.detach()))  # noqa: B023
            try:
                for _ in range(max_iter):
                    seen.clear()
                    model(x)
                    var = seen[0].var().item()  # the layer's output: [B, units] or [B, C, H, W]
                    if abs(var - 1.0) <= tol or not math.isfinite(var) or var == 0:
                        break
                    layer.weight.div_(math.sqrt(var))  # bias zero: Var(out) scales with the weights' square
            finally:
                handle.remove()
            log.info("lsuv: %s output variance %.4f", name, var)
