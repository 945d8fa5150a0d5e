"""Checks on a composed config, run before any heavy work: each failure is one line naming the key."""

from pathlib import Path

from omegaconf import DictConfig

from initlab.errors import ConfigError, check_choice
from initlab.inits import BIAS_RULES, INITS
from initlab.model import ACTIVATIONS


def _positive(key: str, value: object, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise ConfigError(f"{key}={value!r} must be a positive {'integer' if integer else 'number'}")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first bad value in `cfg`."""
    check_choice("init.name", cfg.init.name, INITS)
    check_choice("init.bias", cfg.init.get("bias", "zero"), BIAS_RULES)
    check_choice("act.name", cfg.act.name, ACTIVATIONS)
    _positive("optimizer.lr", cfg.optimizer.lr)
    _positive("data.batch_size", cfg.data.batch_size, integer=True)
    _positive("data.eval_batch_size", cfg.data.eval_batch_size, integer=True)
    _positive("data.val_size", cfg.data.val_size, integer=True)  # the validation hold-out: val/acc needs one
    dims = cfg.model.hidden_dims
    if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in dims):
        shown = list(dims) if dims else dims
        raise ConfigError(f"model.hidden_dims={shown!r} must be a non-empty list of positive integers")
    _positive("trainer.max_epochs", cfg.trainer.max_epochs, integer=True)
    if not cfg.train and not cfg.ckpt_path:
        raise ConfigError("train=false needs ckpt_path=PATH/TO/model.ckpt: the model to evaluate")
    if cfg.ckpt_path and cfg.ckpt_path not in ("last", "hpc") and not Path(cfg.ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={cfg.ckpt_path!r} is not a file (use a .ckpt path, or ckpt_path=last to resume)")
    threads = cfg.get("num_threads", "auto")
    if threads != "auto":
        _positive("num_threads", threads, integer=True)
