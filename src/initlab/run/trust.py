"""A checkpoint is data: the `_target_`s in its config are built only where a config file offers them.

A resume or an evaluation instantiates a `_target_` found in a checkpoint only if a config file offers exactly
that string at that config path (the act group's files for `act`, the init group's for `init.weight`, and so on,
from the shipped configs and the user's search path), or this command line names it. Prefix allow-lists cannot
be made safe: any package reaches file writers (`initlab.files.write_atomic`, `torch.nn.modules.module.torch.save`).
"""

import functools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from initlab.errors import CheckpointError, describe
from initlab.run import overrides as parsed
from initlab.run.record import RUN_KEYS

Offer = tuple[str, str]  # (config path, _target_): e.g. ("init.weight", "torch.nn.init.kaiming_normal_")


def _package(text: str, group: str) -> str:
    """Where Hydra puts a group file's keys: its `# @package` header, or the group's path (init, hydra.launcher)."""
    for line in text.splitlines()[:5]:
        if line.startswith("# @package"):
            package = line.split(maxsplit=2)[2].strip()
            return "" if package == "_global_" else group if package == "_group_" else package
    return group


def _targets(node: Any, where: str) -> Iterator[Offer]:
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            yield where, node["_target_"]
        for k, v in node.items():
            if k != "defaults":
                yield from _targets(v, f"{where}.{k}" if where else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _targets(v, f"{where}[{i}]")


@functools.lru_cache(maxsize=8)
def _offers_by_file(config_dir: Path) -> dict[str, frozenset[Offer]]:
    """What each YAML file of a config dir offers, by its name there ("act/relu", "train")."""
    found: dict[str, frozenset[Offer]] = {}
    for f in sorted(config_dir.rglob("*.yaml")):
        text = f.read_text()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue  # Hydra refuses such a file when it is chosen; it offers nothing
        group = ".".join(f.parent.relative_to(config_dir).parts)
        found[f.relative_to(config_dir).with_suffix("").as_posix()] = frozenset(_targets(data, _package(text, group)))
    return found


def offered(config_dirs: Iterable[Path], overrides: Iterable[str]) -> set[Offer]:
    """Every (path, _target_) that a YAML file in these config dirs offers, and those the command line names."""
    found = set().union(*(o for d in config_dirs for o in _offers_by_file(Path(d).resolve()).values()))
    named = parsed.given(overrides)
    found |= {(k.removesuffix("._target_"), str(v)) for k, v in named.items() if k.endswith("._target_")}
    for key, value in named.items():  # `+callbacks.es={_target_: ...EarlyStopping, ...}`: a dict names one too
        found.update(_targets(value, key))
    return found


def check_targets(cfg: DictConfig, allowed: set[Offer], path: Path) -> None:
    """Refuse a checkpoint whose config names a `_target_` that no config offers at that path.

    The config is walked resolved, as instantiate will see it: a `_target_` can hide in an interpolation
    (`${oc.decode:'{_target_: ...}'}`, `${oc.create:...}`), which the unresolved config shows only as a string.
    """
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except Exception as e:  # an interpolation to nowhere, a resolver that fails: nothing of it is run
        raise CheckpointError(f"ckpt_path={str(path)!r} holds a config that cannot be resolved ({describe(e)})") from e
    for where, target in _targets(resolved, ""):
        if (where, target) not in allowed:
            raise CheckpointError(f"ckpt_path={str(path)!r} names _target_ {target!r} at {where or 'top'}, which no "
                                  "config offers there; refusing to run it (if you trust it, give "
                                  f"{where}._target_={target} on the command line)")  # fmt: skip


def _file_targets(config_dirs: Iterable[Path], group: str, choice: str) -> set[Offer]:
    """The (path, `_target_`)s that the group file <group>/<choice>.yaml offers in the group's node, in any dir."""
    files = [_offers_by_file(Path(d).resolve()).get(f"{group}/{choice}", frozenset()) for d in config_dirs]
    return {(w, t) for offers in files for w, t in offers if w == group or w.startswith(group + ".")}


def check_choices(cfg: DictConfig, choices: dict[str, Any], config_dirs: Iterable[Path], overrides: Iterable[str],
                  path: Path) -> None:  # fmt: skip
    """Refuse a checkpoint whose config builds another class than its group choices name (act=relu building Tanh,
    init=kaiming drawing orthogonal_, scheduler=step building CosineAnnealingLR): its record would name a run it is
    not. A `..._target_=...` override of the run or this command stands."""
    named = parsed.given(overrides)
    for group, choice in choices.items():
        if group not in RUN_KEYS or not isinstance(choice, str) or not isinstance(cfg.get(group), DictConfig):
            continue  # the groups that name the run (loggers and callbacks come from the command)
        offers = _file_targets(config_dirs, group, choice)
        built = dict(_targets(OmegaConf.to_container(cfg[group], resolve=True), group))
        for where in {w for w, _ in offers}:  # the places the choice's file fills
            target = built.get(where)
            if (where, target) not in offers and f"{where}._target_" not in named:
                want = ", ".join(sorted(t for w, t in offers if w == where))
                raise CheckpointError(f"ckpt_path={str(path)!r} is refused: its config builds {where} {target}, but "
                                      f"its choice {group}={choice} builds {want}: its record would name another "
                                      "run")  # fmt: skip
