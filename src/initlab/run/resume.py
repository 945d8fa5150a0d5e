"""Resume or start: the config a run goes with, and the checkpoint it continues or evaluates.

A resumed or evaluated run is the checkpoint's: its model, init, act, optimizer, scheduler, data split and seed.
A checkpoint is data: it is read with weights_only=True, and its `_target_`s are trusted only where a config
offers them (initlab.run.trust). The command line may change only RESUMABLE keys; any other value it gives must
equal the checkpoint's, or the resume is refused in one line.
"""

import contextlib
import logging
import pickle
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from initlab.errors import CheckpointError, ConfigError, InitLabError
from initlab.files import not_a_file, write_atomic
from initlab.run import checkpoint_state, checks, events, trust
from initlab.run import overrides as parsed
from initlab.run.checkpoint_state import CKPT_KEY  # the run's config, choices and overrides, in every checkpoint
from initlab.run.record import read_metrics

log = logging.getLogger(__name__)
RESUMABLE = (  # what a resume may change: each changes no number (a test shows it for every key)
    "ckpt_path", "train", "data.data_dir", "data.download", "trainer.max_epochs", "trainer.max_steps",
    "trainer.max_time", "trainer.enable_progress_bar", "trainer.enable_model_summary",
)  # fmt: skip
EVALUATING = (  # what an evaluation (train=false) may change too: where and how it evaluates; it trains nothing
    "data.eval_batch_size", "num_threads", "trainer.accelerator", "trainer.devices", "trainer.strategy",
    "trainer.num_nodes", "trainer.limit_val_batches", "trainer.limit_test_batches",  # (all of val and test, say)
)  # fmt: skip
FROM_COMMAND = ("logger", "callbacks", "trainer.default_root_dir", "summary")  # they write files, change no number
EXTENDING = ("trainer.max_epochs", "trainer.max_steps", "trainer.max_time")  # they continue a finished run


@dataclass
class Plan:
    """What a run goes with: this command's config, or the checkpoint's with this command's resumable changes."""

    cfg: DictConfig
    choices: dict[str, Any]  # config group choices (their file names)
    overrides: list[str]  # the run's own command-line overrides (the first segment's, when resumed)
    ckpt: Path | None = None  # the checkpoint to resume or evaluate
    saved: dict[str, Any] | None = None  # its contents
    resumed: list[dict[str, Any]] = field(default_factory=list)  # each resume: {from_step, overrides}
    prior_s: float = 0.0  # wall time of the segments before this one
    finished: bool = False  # a finished run asked to resume: nothing to do


def resumable(key: str, evaluating: bool = False) -> bool:
    """Whether a config key may differ between a run and its resume, or its evaluation (Hydra's own keys too)."""
    return (key in RESUMABLE or (evaluating and key in EVALUATING) or key in FROM_COMMAND
            or key.startswith(("hydra.", *(f"{k}." for k in FROM_COMMAND))))  # fmt: skip


def _fixed(overrides: list[str]) -> list[str]:
    """The overrides a resume must repeat: those of keys that are not resumable."""
    return [o for o, k in zip(overrides, parsed.keys(overrides), strict=True) if not resumable(k)]


def _checkpoint_path(cfg: DictConfig, job: Any, out: Path) -> Path | None:
    """The checkpoint to resume or evaluate; None to start fresh (ckpt_path=last with none saved yet)."""
    if cfg.ckpt_path is None:
        return None
    if cfg.ckpt_path != "last":
        path = Path(cfg.ckpt_path)
        kind = not_a_file(path)
        if kind == "missing":
            raise CheckpointError(f"ckpt_path={cfg.ckpt_path!r} does not exist (a .ckpt path, or last to resume)")
        if kind:
            raise CheckpointError(f"ckpt_path={cfg.ckpt_path!r} is {kind}, not a checkpoint file")
        return path
    if not cfg.train:
        raise CheckpointError("ckpt_path=last resumes training in this run dir; to evaluate, give the path: "
                              "train=false ckpt_path=RUN_DIR/checkpoints/last.ckpt")  # fmt: skip
    path = out / "checkpoints" / "last.ckpt"
    kind = not_a_file(path, follow=False)
    if kind is None:
        return path
    if kind != "missing":
        raise CheckpointError(f"{path} is {kind}, not a checkpoint file the run wrote; remove it to start afresh")
    prior = read_metrics(out)
    before = (prior or {}).get("overrides")
    earlier = _fixed([str(o) for o in before] if isinstance(before, list) else [])
    if prior is not None and earlier != _fixed(job.overrides):
        again = " ".join(earlier) or "(none)"
        raise CheckpointError(f"{out} holds a {prior.get('status')} run with no checkpoint to resume; start it "
                              f"again with its own overrides: {again} ckpt_path=last")  # fmt: skip
    log.info("ckpt_path=last: no checkpoint in %s yet; starting fresh", path.parent)
    events.carry_over(out, out, 0)  # what a killed attempt logged goes: the fresh start logs it again
    return None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """torch.load(weights_only=True) with every failure as one line; the run's record must be inside."""
    import torch

    try:
        with warnings.catch_warnings():  # torch warns before it refuses a pickle: the one line below says it all
            warnings.simplefilter("ignore")
            saved = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        raise CheckpointError(f"ckpt_path={str(path)!r} cannot be read: {e.strerror or e}") from e
    except pickle.UnpicklingError as e:  # torch's message offers weights_only=False, which would run its code
        raise CheckpointError(
            f"ckpt_path={str(path)!r} is not a readable checkpoint: it holds objects a "
            "checkpoint must not (only tensors and plain values are read; it was not loaded)"
        ) from e
    except Exception as e:  # garbage bytes make the unpickler fail in many ways (EOF, Index, Runtime...)
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e):  # torch's text about its weights_only default leads to advice never to take
            reason = f"torch.load cannot read it as a checkpoint ({type(e).__name__}); it was not loaded"
        raise CheckpointError(f"ckpt_path={str(path)!r} is not a readable checkpoint: {reason}") from e
    parts = {CKPT_KEY: "run record", "state_dict": "state_dict (its weights)"}
    missing = [what for key, what in parts.items() if not isinstance(saved, dict) or key not in saved]
    if missing:
        raise CheckpointError(f"ckpt_path={str(path)!r} is not an initlab checkpoint (no {' and no '.join(missing)} "
                              "in it)")  # fmt: skip
    checkpoint_state.check_saved(saved, path)  # data, checked like input: every value the run uses, before any is used
    return saved


def value(cfg: DictConfig, key: str) -> Any:
    node = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else node


def _run_record(saved: dict[str, Any], path: Path) -> tuple[DictConfig, dict[str, Any], list[str]]:
    """The checkpoint's (config, choices, overrides), each checked for shape."""
    try:
        run = saved[CKPT_KEY]
        config, choices, overrides = OmegaConf.create(run["config"]), dict(run.get("choices", {})), run["overrides"]
        whole = isinstance(config, DictConfig) and all(  # the groups a run reads as settings, each a dict
            isinstance(config.get(k), DictConfig) for k in ("data", "model", "init", "act", "optimizer", "trainer")
        )
        if not whole or not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise TypeError("not a run's config and a list of overrides")
        return config, choices, list(overrides)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"ckpt_path={str(path)!r} is not an initlab checkpoint (its run record is malformed)"
                              ) from e  # fmt: skip


def merge(cfg: DictConfig, saved: dict[str, Any], overrides: list[str], path: Path) -> tuple[DictConfig, dict]:
    """-> (the checkpoint's config with the RESUMABLE values of `cfg`, the checkpoint's group choices)."""
    old, choices, _ = _run_record(saved, path)
    evaluating = cfg.train is False
    for key in parsed.deleted(overrides):
        if not resumable(key, evaluating):
            raise CheckpointError(f"~{key} conflicts with the checkpoint ({path}), which has it; drop it to "
                                  f"{'evaluate it' if evaluating else 'resume'}")  # fmt: skip
    given = parsed.given(overrides)
    for key in given:
        if resumable(key, evaluating):
            continue
        ours, theirs = (given[key], choices[key]) if key in choices else (value(cfg, key), value(old, key))
        kinds = isinstance(ours, bool) != isinstance(theirs, bool) or (  # True is not 1; to Lightning, 1 batch
            key.startswith("trainer.") and type(ours) is not type(theirs)  # is not 1.0 (all of them)
        )
        if ours != theirs or kinds:
            raise CheckpointError(f"{key}={ours!r} conflicts with the checkpoint's {key}={theirs!r} ({path}); drop "
                                  f"it to {'evaluate it' if evaluating else 'resume'}, or start a new run")  # fmt: skip
    for key in RESUMABLE + (EVALUATING if evaluating else ()):
        if key in given or key in ("ckpt_path", "train"):  # others keep the checkpoint's value
            OmegaConf.update(old, key, value(cfg, key), force_add=True)
    for key in FROM_COMMAND:  # where the run writes: this command's choice, never a checkpoint's
        OmegaConf.update(old, key, value(cfg, key), merge=False)
    if "data.data_dir" not in given and OmegaConf.select(old, "data.download"):  # the checkpoint's dir: read only
        log.info("data is read from the checkpoint's data.data_dir=%s, and nothing is downloaded there (give "
                 "data.data_dir=... to choose the dir)", OmegaConf.select(old, "data.data_dir"))  # fmt: skip
        OmegaConf.update(old, "data.download", False)
    return old, choices


def _check_length(cfg: DictConfig, saved: dict[str, Any], path: Path) -> None:
    """A resume may lengthen a run, not cut it below where its checkpoint already is."""
    step = int(saved.get("global_step", 0))
    progress = saved.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    epochs = int(progress.get("started", saved.get("epoch", 0)))  # the epochs the checkpoint is in or has done
    max_steps, max_epochs = value(cfg, "trainer.max_steps"), value(cfg, "trainer.max_epochs")
    if isinstance(max_steps, int) and 0 < max_steps < step:
        raise CheckpointError(f"trainer.max_steps={max_steps} is below the checkpoint's step {step} ({path}); a "
                              f"resume can only go on: give at least {step}, or start a new run")  # fmt: skip
    if isinstance(max_epochs, int) and max_epochs < epochs:
        raise CheckpointError(f"trainer.max_epochs={max_epochs} is below the checkpoint's epoch {epochs} ({path}); "
                              f"a resume can only go on: give at least {epochs}, or start a new run")  # fmt: skip


def _finished(out: Path, saved: dict[str, Any], cfg: DictConfig, old: DictConfig, overrides: list[str]) -> bool:
    """Whether `out` holds this checkpoint's finished run and the command asks for no more of it."""
    metrics = read_metrics(out)
    if not metrics or metrics.get("status") not in ("ok", "diverged") or metrics.get("steps") != saved["global_step"]:
        return False
    given = parsed.given(overrides)
    return not any(k in given and value(cfg, k) != value(old, k) for k in EXTENDING)


def save_hydra_files(run_dir: Path, cfg: DictConfig, overrides: list[str]) -> None:
    """Put the run's own config and overrides back in .hydra/ (Hydra rewrote them with the resume command's)."""
    hydra_dir = run_dir / ".hydra"
    if hydra_dir.is_dir():
        write_atomic(hydra_dir / "config.yaml", OmegaConf.to_yaml(cfg))
        write_atomic(hydra_dir / "overrides.yaml", yaml.safe_dump(list(overrides), default_flow_style=False))


@contextlib.contextmanager
def blamed(plan: Plan, overrides: list[str]) -> Iterator[None]:
    """A one-line refusal of a setting found once the run builds its parts (`data.val_size=60001 must be in ...`,
    said by the data set) names the checkpoint when the value is the checkpoint's, not this command's."""
    try:
        yield
    except InitLabError as e:
        key = re.match(r"([A-Za-z_][\w.]*)=", str(e))
        ours = key is None or key[1] in parsed.given(overrides) or OmegaConf.select(plan.cfg, key[1]) is None
        if plan.ckpt is None or ours or "checkpoint" in str(e):
            raise
        raise type(e)(f"{e} (the value comes from the checkpoint {plan.ckpt})") from e


def _overrides_hold(config: DictConfig, choices: dict[str, Any], overrides: list[str], path: Path) -> None:
    """The checkpoint's overrides are what its config holds: a record copies them, and `optimizer.lr=0.5` over a
    config of lr 0.1 would name another run. Keys a resume may change since are left out."""
    changeable = (*RESUMABLE, *EVALUATING, *FROM_COMMAND, "hydra")
    raw = OmegaConf.to_container(config, resolve=False)
    for key, value in parsed.given(overrides).items():
        if any(key == k or key.startswith(f"{k}.") for k in changeable):
            continue
        held: Any = raw
        for part in key.split("."):
            held = held.get(part, _ABSENT) if isinstance(held, dict) else _ABSENT
        held = choices.get(key, held)  # a group's choice: its file's name
        if held is not _ABSENT and held != value:
            raise CheckpointError(f"ckpt_path={str(path)!r} is refused: its overrides say {key}={value!r}, but its "
                                  f"config holds {held!r}: its record would name another run")  # fmt: skip


_ABSENT = object()


def plan(cfg: DictConfig, job: Any, out: Path) -> Plan:
    """This command's plan, or the checkpoint's: refused in one line where the command conflicts with it."""
    ckpt = _checkpoint_path(cfg, job, out)
    if ckpt is None:
        return Plan(cfg, dict(job.choices), list(job.overrides))
    saved = read_checkpoint(ckpt)
    merged, choices = merge(cfg, saved, job.overrides, ckpt)
    trust.check_targets(merged, trust.offered(job.config_dirs, job.overrides), ckpt)
    try:
        checks.validate(merged)
    except ConfigError as e:
        raise CheckpointError(f"{e} (the value comes from the checkpoint {ckpt})") from e
    old, _, run_overrides = _run_record(saved, ckpt)
    trust.check_choices(merged, choices, job.config_dirs, [*run_overrides, *job.overrides], ckpt)
    _overrides_hold(old, choices, run_overrides, ckpt)
    if not cfg.train:  # a model to evaluate: its choices, not its run
        return Plan(merged, choices, list(job.overrides), ckpt, saved)
    _check_length(merged, saved, ckpt)
    if ckpt.parent.parent.resolve() == out.resolve() and _finished(out, saved, cfg, old, job.overrides):
        save_hydra_files(out, old, run_overrides)  # Hydra rewrote .hydra/ for this command: put the run's back
        log.info("%s already finished after %d steps: nothing to do", out, saved["global_step"])
        return Plan(merged, choices, run_overrides, ckpt, saved, finished=True)
    run = saved[CKPT_KEY]
    resumed = [*run.get("resumed", []), {"from_step": saved["global_step"], "overrides": list(job.overrides)}]
    save_hydra_files(out, merged, run_overrides)
    events.carry_over(ckpt.parent.parent if ckpt.parent.name == "checkpoints" else out, out, saved["global_step"])
    log.info("resuming %s from step %d (%s)", out, saved["global_step"], ckpt)
    return Plan(merged, choices, run_overrides, ckpt, saved, resumed, float(run.get("elapsed_s", 0.0)))
