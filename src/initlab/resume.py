"""Resuming a run: its checkpoint decides the model, init, act, optimizer, scheduler, data split and seed.

A checkpoint is data: it is read with weights_only=True, and a `_target_` in it is instantiated only if a
config could name it (the shipped configs and the user's config dirs) or it is an initlab, torch.optim or
torch.nn class. The command line may change only RESUMABLE keys; any other value it gives must equal the
checkpoint's, or the resume is refused in one line.
"""

import logging
import warnings
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from initlab.errors import CheckpointError
from initlab.record import parse_overrides, read_metrics, write_atomic

log = logging.getLogger(__name__)
RESUMABLE = (  # what a resume may change: where and how fast it runs, and how long (changes no number)
    "ckpt_path", "train", "num_threads", "data.data_dir", "data.download", "data.eval_batch_size",
    "trainer.max_epochs", "trainer.max_steps", "trainer.accelerator", "trainer.devices", "trainer.strategy",
    "trainer.num_nodes", "trainer.enable_progress_bar", "trainer.enable_model_summary",
)  # fmt: skip
FROM_COMMAND = ("logger", "callbacks", "trainer.default_root_dir")  # they write files; they change no number
EXTENDING = ("trainer.max_epochs", "trainer.max_steps")  # given larger, they continue a finished run
SAFE_PREFIXES = ("initlab.", "torch.optim.", "torch.nn.")
CKPT_KEY = "initlab"  # the run's config, choices and overrides, stored in every checkpoint


def resumable(override: str) -> bool:
    """Whether a command-line override may differ between a run and its resume (hydra's own keys too)."""
    key = str(override).lstrip("+~").partition("=")[0]
    return key in RESUMABLE or key.startswith(("hydra.", *(f"{k}." for k in FROM_COMMAND))) or key in FROM_COMMAND


def read_checkpoint(path: Path) -> dict[str, Any]:
    """torch.load(weights_only=True) with every failure as one line; the run's record must be inside."""
    import torch

    if path.is_dir():
        raise CheckpointError(f"ckpt_path={str(path)!r} is a directory, not a checkpoint file")
    try:
        with warnings.catch_warnings():  # torch warns before it refuses a pickle: the one line below says it all
            warnings.simplefilter("ignore")
            saved = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        raise CheckpointError(f"ckpt_path={str(path)!r} cannot be read: {e.strerror or e}") from e
    except Exception as e:  # garbage bytes make the unpickler fail in many ways (UnpicklingError, EOF, Index...)
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"ckpt_path={str(path)!r} is not a readable checkpoint: {reason}") from e
    if not isinstance(saved, dict) or CKPT_KEY not in saved or "state_dict" not in saved:
        raise CheckpointError(f"ckpt_path={str(path)!r} is not an initlab checkpoint (no run record in it)")
    return saved


def _value(cfg: DictConfig, key: str) -> Any:
    node = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else node


def merge(cfg: DictConfig, saved: dict[str, Any], overrides: list[str], path: Path) -> tuple[DictConfig, dict]:
    """-> (the checkpoint's config with the RESUMABLE values of `cfg`, the checkpoint's group choices)."""
    try:
        run = saved[CKPT_KEY]
        old = OmegaConf.create(run["config"])
        choices = dict(run.get("choices", {}))
        list(run["overrides"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"ckpt_path={str(path)!r} is not an initlab checkpoint (its run record is malformed)"
        ) from e
    for item in overrides:
        if str(item).startswith("~") and not resumable(item):
            raise CheckpointError(f"{item} conflicts with the checkpoint ({path}), which has it; drop it to resume")
    given = parse_overrides(overrides)
    for key, value in given.items():
        if resumable(key):
            continue
        if key in choices:  # a group: init=lecun
            ours, theirs = value, choices[key]
        else:
            ours, theirs = _value(cfg, key), _value(old, key)
        if ours != theirs:
            raise CheckpointError(f"{key}={ours!r} conflicts with the checkpoint's {key}={theirs!r} ({path}); "
                                  "drop it to resume, or start a new run")  # fmt: skip
    for key in RESUMABLE:
        if key in given or key in ("ckpt_path", "train"):  # others keep the checkpoint's value
            OmegaConf.update(old, key, _value(cfg, key), force_add=True)
    for key in FROM_COMMAND:  # where the run writes: this command's choice, never a checkpoint's
        OmegaConf.update(old, key, _value(cfg, key), merge=False)
    return old, choices


def config_targets(search_dirs: list[Path]) -> set[str]:
    """Every `_target_` that a YAML file in these config dirs names."""
    found: set[str] = set()
    for d in search_dirs:
        for f in d.rglob("*.yaml"):
            found.update(line.split(":", 1)[1].strip().strip("'\"") for line in f.read_text().splitlines()
                         if line.strip().startswith("_target_:"))  # fmt: skip
    return found


def check_targets(cfg: DictConfig, allowed: set[str], path: Path) -> None:
    """Refuse a checkpoint whose config names a `_target_` that no config offers (it could run any callable)."""

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            target = node.get("_target_")
            if target is not None and target not in allowed and not str(target).startswith(SAFE_PREFIXES):
                raise CheckpointError(f"ckpt_path={str(path)!r} names _target_ {target!r} at {where or 'top'}, "
                                      "which no config offers; refusing to run it (if you trust it, give "
                                      f"{where}._target_={target} on the command line)")  # fmt: skip
            for k, v in node.items():
                walk(v, f"{where}.{k}" if where else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(OmegaConf.to_container(cfg, resolve=False), "")


def finished(run_dir: Path, saved: dict[str, Any], cfg: DictConfig, overrides: list[str]) -> dict | None:
    """The run's record if `run_dir` holds this checkpoint's finished run and the command asks for no more."""
    metrics = read_metrics(run_dir)
    if not metrics or metrics.get("status") not in ("ok", "diverged") or metrics.get("steps") != saved["global_step"]:
        return None
    given, old = parse_overrides(overrides), OmegaConf.create(saved[CKPT_KEY]["config"])
    extends = any(k in given and _value(cfg, k) != _value(old, k) for k in EXTENDING)
    return None if extends else metrics


def save_hydra_files(run_dir: Path, cfg: DictConfig, overrides: list[str]) -> None:
    """Put the run's own config and overrides back in .hydra/ (Hydra rewrote them with the resume command's)."""
    hydra_dir = run_dir / ".hydra"
    if hydra_dir.is_dir():
        write_atomic(hydra_dir / "config.yaml", OmegaConf.to_yaml(cfg))
        write_atomic(hydra_dir / "overrides.yaml", yaml.safe_dump(list(overrides), default_flow_style=False))
