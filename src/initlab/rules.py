"""Rules for config values, combined into the table in initlab.checks: each refuses a bad value in one line
naming the key, the value and what is allowed."""

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from initlab.errors import ConfigError

Rule = Callable[[str, Any], None]


def _fail(key: str, value: Any, allowed: str) -> None:
    shown = OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value
    raise ConfigError(f"{key}={shown!r} is not allowed: {allowed}")


def number(lo: float | None = None, hi: float | None = None, *, integer: bool = False, lo_open: bool = False,
           hi_open: bool = False, also: tuple = ()) -> Rule:  # fmt: skip
    """A finite int (or float, unless integer) in [lo, hi], bounds optionally open; `also` lists extra values."""
    kind = "an integer" if integer else "a finite number"
    span = f" in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}" if hi is not None else ""
    span = span or (f" {'>' if lo_open else '>='} {lo}" if lo is not None else "")
    allowed = kind + span + "".join(f" or {a!r}" for a in also)

    def rule(key: str, v: Any) -> None:
        if v in also and not isinstance(v, bool):
            return
        ok_type = isinstance(v, int) if integer else isinstance(v, int | float)
        if isinstance(v, bool) or not ok_type or not math.isfinite(v):
            _fail(key, v, allowed)
        if (lo is not None and (v < lo or (lo_open and v == lo))) or (
            hi is not None and (v > hi or (hi_open and v == hi))
        ):
            _fail(key, v, allowed)

    return rule


def one_of(*values: Any) -> Rule:
    def rule(key: str, v: Any) -> None:
        if v not in values or isinstance(v, bool) != any(isinstance(x, bool) for x in values if x == v):
            _fail(key, v, "one of " + ", ".join(repr(x) for x in values))

    return rule


def list_of(item: Rule, length: int | None = None, example: str = "[100]") -> Rule:
    def rule(key: str, v: Any) -> None:
        if not isinstance(v, ListConfig | list) or (length is not None and len(v) != length):
            _fail(key, v, f"a list{f' of {length}' if length else ''}, e.g. {example}")
        for i, x in enumerate(v):
            item(f"{key}[{i}]", x)

    return rule


def either(*rules: Rule) -> Rule:
    def rule(key: str, v: Any) -> None:
        errors = []
        for r in rules:
            try:
                return r(key, v)
            except ConfigError as e:
                errors.append(str(e).split(": ", 1)[1])
        _fail(key, v, " or ".join(errors))

    return rule


def target(key: str, v: Any) -> None:
    if not isinstance(v, DictConfig | dict) or not isinstance(v.get("_target_"), str) or not v["_target_"]:
        _fail(key, v, "a config with a _target_ (a class or function to instantiate)")


def text(key: str, v: Any) -> None:
    if not isinstance(v, str) or not v:
        _fail(key, v, "a non-empty string")
