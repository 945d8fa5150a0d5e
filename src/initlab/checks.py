"""Checks on a composed config before anything heavy is imported: each failure is one line naming the key.

`RULES` holds, once, what every setting of the shipped configs allows; a key absent from a config is not
checked. Keyword arguments that no shipped config has (`+optimizer.foo=1`) are checked against the target's
signature once the frameworks are imported (`check_arguments`).
"""

import inspect
import math
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from initlab.errors import ConfigError
from initlab.inits import BIAS_RULES, variance
from initlab.rules import Rule, _fail, either, list_of, number, one_of, target, text


def init_rule(key: str, v: Any) -> None:
    """weight: a _target_ or null; bias: a rule; variance: an expression in fan_in, fan_out, weight's numbers."""
    if not isinstance(v, DictConfig) or "variance" not in v:
        _fail(key, v, "a config with weight, bias and variance (see conf/init/kaiming.yaml)")
    either(one_of(None), target)(f"{key}.weight", v.get("weight"))
    either(one_of(*BIAS_RULES), target)(f"{key}.bias", v.get("bias", "zero"))
    numbers = {k: x for k, x in (v.weight or {}).items() if isinstance(x, int | float) and not isinstance(x, bool)}
    try:
        values = [
            variance(v.variance, {**numbers, "fan_in": i, "fan_out": o}) for i, o in ((100.0, 10.0), (9.0, 784.0))
        ]
    except (ValueError, SyntaxError, ZeroDivisionError, TypeError, ArithmeticError, MemoryError, RecursionError) as e:
        _fail(f"{key}.variance", v.variance, f"an expression in fan_in, fan_out and numbers, e.g. '2 / fan_in' ({e})")
    if not all(math.isfinite(x) and x >= 0 for x in values):
        _fail(f"{key}.variance", v.variance, "a variance: finite and >= 0 for any fan_in and fan_out")


DATASETS = ("MNIST", "FashionMNIST", "KMNIST")  # torchvision's class names = their folders; one IDX layout
PRECISIONS = (None, 64, 32, 16, "64", "32", "16", "bf16", "64-true", "32-true", "16-mixed", "bf16-mixed")
PRECISIONS += ("16-true", "bf16-true", "transformer-engine")  # Lightning's
POSITIVE_INT = number(1, integer=True)
FLAG = one_of(True, False)
PROB = number(0, 1, hi_open=True)
RULES: dict[str, Rule] = {
    "seed": number(0, 2**32 - 1, integer=True),  # what numpy (and Lightning's seed_everything) accept
    "num_threads": either(POSITIVE_INT, one_of("auto")),
    "train": FLAG,
    "ckpt_path": either(one_of(None), text),
    "optimizer.lr": number(0, lo_open=True),
    "optimizer.momentum": PROB,  # 1 would never forget a gradient
    "optimizer.dampening": number(0, 1),
    "optimizer.weight_decay": number(0),
    "optimizer.eps": number(0, lo_open=True),
    "optimizer.betas": list_of(PROB, 2, "[0.9, 0.999]"),
    "optimizer.nesterov": FLAG,
    "optimizer.fused": either(one_of(None), FLAG),
    "scheduler.interval": one_of("epoch", "step"),
    "scheduler.scheduler.step_size": POSITIVE_INT,
    "scheduler.scheduler.gamma": number(0, lo_open=True),
    "scheduler.scheduler.T_max": POSITIVE_INT,
    "scheduler.scheduler.eta_min": number(0),
    "scheduler.scheduler.factor": number(0, 1),
    "scheduler.scheduler.total_iters": number(0, integer=True),
    "data.data_dir": text,
    "data.batch_size": POSITIVE_INT,  # per process (Lightning's convention): DDP's effective batch is x devices
    "data.eval_batch_size": POSITIVE_INT,
    "data.val_size": POSITIVE_INT,
    "data.download": FLAG,
    "data.dataset": one_of(*DATASETS),
    "model.hidden_dims": list_of(POSITIVE_INT, example="[100] (or [] for logistic regression)"),
    "model.depth": either(one_of(None), number(0, integer=True)),
    "model.width": POSITIVE_INT,
    "model.input_dim": POSITIVE_INT,
    "model.num_classes": number(2, integer=True),
    "act.alpha": number(),
    "act.negative_slope": number(),
    "init": init_rule,
    "init.sigma_w2": number(0),
    "init.sigma_b2": number(0),
    "init.weight.sigma_w2": number(0),
    "init.bias.variance": number(0),
    "act": target,
    "model": target,
    "data": target,
    "trainer.max_epochs": POSITIVE_INT,
    "trainer.max_steps": number(1, integer=True, also=(-1,)),
    "trainer.val_check_interval": either(POSITIVE_INT, number(0, 1, lo_open=True)),
    "trainer.check_val_every_n_epoch": either(one_of(None), POSITIVE_INT),
    "trainer.log_every_n_steps": POSITIVE_INT,
    "trainer.num_sanity_val_steps": number(-1, integer=True),
    "trainer.devices": either(
        POSITIVE_INT, one_of("auto", -1), list_of(number(0, integer=True), example="[0, 1]"), text
    ),
    "trainer.num_nodes": POSITIVE_INT,
    "trainer.accelerator": one_of("auto", "cpu", "gpu", "cuda", "mps", "tpu"),
    "trainer.precision": one_of(*PRECISIONS),
    "trainer.gradient_clip_val": either(one_of(None), number(0)),
    "trainer.accumulate_grad_batches": POSITIVE_INT,
    "trainer.deterministic": either(FLAG, one_of("warn")),
    "trainer.enable_progress_bar": FLAG,
    "trainer.enable_model_summary": FLAG,
    "callbacks.diagnostics.every_n_steps": number(0, integer=True),
    "callbacks.diagnostics.histogram_every_n_steps": number(0, integer=True),
    "callbacks.progress_bar.refresh_rate": number(0, integer=True),
}


REQUIRED = ("data._target_", "model._target_", "init.variance", "act._target_", "optimizer._target_", "optimizer.lr",
            "scheduler", "trainer._target_", "trainer.max_epochs", "logger", "callbacks", "seed", "train")  # fmt: skip
TOP_KEYS = ("data", "model", "init", "act", "optimizer", "scheduler", "trainer", "logger", "callbacks", "seed",
            "num_threads", "ckpt_path", "train")  # train.yaml's; your own group (+group=x) adds a dict  # fmt: skip
CLASSES, IMAGE = 10, (1, 28, 28)  # the MNIST family's: data=mnist, fashion_mnist, kmnist
SHAPES = {"model.num_classes": CLASSES, "model.input_dim": IMAGE[1] * IMAGE[2], "model.in_channels": IMAGE[0],
          "model.image_size": IMAGE[1]}  # what a model must take and give on this data  # fmt: skip


def _structure(cfg: DictConfig) -> None:
    """Keys that must be there (`~optimizer.lr` deletes one), a typo'd new top-level value, shapes vs the data."""
    for key in REQUIRED:
        if OmegaConf.select(cfg, key, default=None, throw_on_missing=False) is None and key != "scheduler":
            raise ConfigError(f"{key} is missing: the run needs it (was it deleted with ~{key}?)")
    for key, value in cfg.items():
        if key not in TOP_KEYS and key != "hydra" and not isinstance(value, DictConfig | ListConfig):
            raise ConfigError(f"{key}={value!r} is not a setting here (a typo?); top-level keys: {', '.join(TOP_KEYS)}")
    for key, size in SHAPES.items():
        value = OmegaConf.select(cfg, key, default=size)
        if value != size:
            raise ConfigError(f"{key}={value!r} is not allowed: the data is {IMAGE[0]}x{IMAGE[1]}x{IMAGE[2]} images "
                              f"of {CLASSES} classes, so it must be {size}")  # fmt: skip


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value in `cfg` that its rule refuses (pure Python: no torch needed)."""
    _structure(cfg)
    for key, rule in RULES.items():
        node = OmegaConf.select(cfg, key, default=inspect.Parameter.empty, throw_on_missing=False)
        if node is not inspect.Parameter.empty:
            rule(key, node)
    if not cfg.train and not cfg.ckpt_path:
        raise ConfigError("train=false needs ckpt_path=PATH/TO/model.ckpt (or ckpt_path=last in its run dir)")


def single_choices(choices: dict[str, Any]) -> None:
    """A group given a list (init=[a,b]) merges several configs into one: refuse it, sweeps take a,b."""
    for group, choice in choices.items():
        if isinstance(choice, list | ListConfig):
            raise ConfigError(f"{group}={list(choice)} is not allowed: one choice (to sweep, -m {group}=a,b)")


def check_arguments(key: str, target: Any, given: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    """Raise ConfigError if `given` has a keyword that `target`'s signature lacks (a misspelt +key=...)."""
    try:
        params = inspect.signature(target).parameters
    except (ValueError, TypeError):  # a builtin without a signature (torch.relu): nothing to check against
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    names = [n for n in params if n not in ("self", *skip)]
    for name in given:
        if not name.startswith("_") and name not in names:
            raise ConfigError(
                f"{key}.{name} is not an argument of {getattr(target, '__qualname__', target)}; "
                f"it takes: {', '.join(names)}"
            )
