"""Command-line overrides (`init=lecun`, `+x.y=1`, `~z`, `-m init=a,b`) read with Hydra's own parser, the grammar
Hydra composed the config with, so quoting, lists and sweeps mean here what they meant there."""

import itertools
from collections.abc import Iterable
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import ListConfig, OmegaConf


def listed(node: ListConfig | None) -> list[str]:
    """Overrides as Hydra stores them in a config (hydra.overrides.task), unresolved: `lr=${x}` stays text."""
    return [str(o) for o in OmegaConf.to_container(node, resolve=False)] if node is not None else []


def parse(items: Iterable[Any]) -> list[Override]:
    """Hydra's Override objects for `items` (raises OverrideParseException on a malformed one)."""
    return OverridesParser.create().parse_overrides([str(item) for item in items])


def given(items: Iterable[Any]) -> dict[str, Any]:
    """{key: value} of what the overrides set (deletions left out): ["init=lecun", "+x.y=1"] -> {init: lecun, x.y: 1}.
    Values are Hydra's: strings unquoted, numbers as numbers, lists as lists; a sweep as its list of values."""
    out: dict[str, Any] = {}
    for o in parse(items):
        if not o.is_delete():
            out[o.key_or_group] = list(o.sweep_string_iterator()) if o.is_sweep_override() else o.value()
    return out


def swept(items: Iterable[Any]) -> list[str]:
    """The keys a basic-sweeper multirun of `items` gives more than one value (a later item for a key wins)."""
    values = {}
    for o in parse(items):
        try:
            values[o.key_or_group] = list(o.sweep_string_iterator()) if o.is_sweep_override() else []
        except HydraException:  # glob(...): its values are the group's files, which only Hydra's sweeper reads
            values[o.key_or_group] = ["glob", "(several)"]
    return [k for k, v in values.items() if len(set(v)) > 1]


def sweeps(items: Iterable[Any]) -> list[str]:
    """The overrides among `items` that sweep (`init=a,b`, `lr=range(1,3)`), as given."""
    items = list(items)
    return [item for item, o in zip(items, parse(items), strict=True) if o.is_sweep_override()]


def added(items: Iterable[Any]) -> list[str]:
    """The keys that overrides add (`+key=value` or `++key=value`)."""
    return [o.key_or_group for o in parse(items) if o.is_add() or o.is_force_add()]


def deleted(items: Iterable[Any]) -> list[str]:
    """The keys that overrides delete (`~key` or `~key=value`)."""
    return [o.key_or_group for o in parse(items) if o.is_delete()]


def keys(items: Iterable[Any]) -> list[str]:
    """The key each override sets, without its +, ++ or ~; a malformed one (a record's, say) by its text."""
    out = []
    for item in items:
        try:
            out.append(parse([item])[0].key_or_group)
        except Exception:  # not Hydra's grammar: the text before "=" is the best guess
            out.append(str(item).lstrip("+~").partition("=")[0])
    return out


def expand(items: Iterable[Any]) -> list[list[str]]:
    """The jobs a basic-sweeper multirun makes of `items` (its hydra.sweeper.params first, then the command
    line's), each as its list of `key=value` overrides: a later item for a key replaces an earlier one, and
    the sweeps multiply out in the order given, as Hydra's BasicSweeper does."""
    axes: dict[str, list[str]] = {}
    for o in parse(items):
        k = o.get_key_element()  # with its +/~ prefix, as the job's own override
        if o.is_sweep_override():
            axes[k] = [f"{k}={v}" for v in o.sweep_string_iterator()]
        else:
            axes[k] = [o.input_line if o.is_delete() else f"{k}={o.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*axes.values())]


def dirname(job: Iterable[str], exclude_keys: Iterable[str], item_sep: str = ",", kv_sep: str = "=") -> str:
    """A job's dir name as Hydra makes hydra.job.override_dirname: its overrides sorted, excluded keys left out."""
    lines = sorted(o.input_line for o in parse(job) if o.key_or_group not in set(exclude_keys))
    return item_sep.join(lines).replace("=", kv_sep)
