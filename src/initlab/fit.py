"""Build the data, model and Trainer from a config, then fit and evaluate: the part that needs torch.

Imported only once a job has passed the config checks (initlab.job), so a bad command line answers
before torch and Lightning load.
"""

import atexit
import gc
import importlib
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from initlab import checks, events, resume
from initlab.errors import ConfigError, OutputError
from initlab.record import parse_overrides

log = logging.getLogger(__name__)


def import_frameworks() -> None:
    """Import torch and Lightning with the cyclic GC paused, then freeze what the imports allocated.

    The imports create millions of long-lived objects, and every full collection during them walks them all
    again: ~7 passes, ~0.7 s a process here. Frozen objects are never scanned again. Once a process, before
    any job: a job's trainer, model and data stay collectable (a sweep worker runs many jobs).
    """
    modules = ("initlab.module", "initlab.diagnostics", "initlab.runstate")  # torch, Lightning, torchmetrics
    if all(m in sys.modules for m in modules):
        return
    # At exit, skip the final cyclic-GC sweep over torch/Lightning's millions of objects (~1 s a process, sweep
    # workers included); objects are still freed and files closed as usual.
    atexit.register(gc.freeze)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for name in modules:
            importlib.import_module(name)
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def quiet_frameworks(parallel: bool) -> None:
    """Every line once, no banners: Lightning's handlers go (Hydra's root handler prints and files its lines),
    its platform lines and tips are dropped; a parallel sweep job keeps only warnings and its final line."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric", "lightning.pytorch.trainer.connectors",
                 "lightning.pytorch.accelerators", "lightning.fabric.utilities.distributed"):  # fmt: skip
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec")  # Lightning calls a deprecated torch API
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")  # resuming
    quiet = logging.WARNING if parallel else logging.NOTSET
    for name in ("initlab", "lightning.pytorch"):
        logging.getLogger(name).setLevel(quiet)
    logging.getLogger("initlab.evaluate").setLevel(logging.INFO)  # the job's one line: how it ended


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads(cfg: DictConfig, parallel_jobs: int) -> int:
    """auto: the cores this process may use, shared among the launcher's parallel jobs."""
    if cfg.num_threads != "auto":
        return int(cfg.num_threads)
    return max(1, usable_cores() // max(1, parallel_jobs))


def locate(path: str) -> Any:
    """The object a `_target_` names (module.attr...), imported without Hydra's error logging."""
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"no module in {path!r}")


def dry_run(cfg: DictConfig) -> None:
    """Build the optimizer and scheduler on a stand-in parameter: their own checks (Nesterov without momentum,
    a bad value of a `+key`) answer now, in one line, not after the data is loaded."""
    import torch
    from hydra.utils import instantiate

    try:
        optimizer = instantiate(cfg.optimizer, _partial_=True)([torch.nn.Parameter(torch.zeros(1))])
    except Exception as e:
        raise ConfigError(f"optimizer: {type(e).__name__}: {str(e).strip().splitlines()[0]}") from e
    if OmegaConf.select(cfg, "scheduler.scheduler", default=None):
        try:
            instantiate(cfg.scheduler.scheduler, _partial_=True)(optimizer)
        except Exception as e:
            raise ConfigError(f"scheduler.scheduler: {type(e).__name__}: {str(e).strip().splitlines()[0]}") from e


def check_arguments(cfg: DictConfig) -> None:
    """Keyword arguments of the optimizer, scheduler, activation and init must be ones their targets take."""
    groups = {"optimizer": ("params",), "scheduler.scheduler": ("optimizer",), "act": (), "init.weight": ("tensor",),
              "model": ("act",), "data": ("seed",)}  # fmt: skip
    for key, skip in groups.items():
        node = OmegaConf.select(cfg, key, default=None)
        if node is not None and node.get("_target_"):
            try:
                target = locate(node._target_)
            except Exception as e:  # not importable: say which key names it
                raise ConfigError(f"{key}._target_={node._target_!r} cannot be imported: {e}") from e
            checks.check_arguments(key, target, OmegaConf.to_container(node, resolve=True), skip=skip)


def make_trainer(cfg: DictConfig, **extra: Any) -> Any:
    """instantiate(cfg.trainer); a Trainer argument it refuses is blamed on its own key."""
    from hydra.utils import instantiate
    from lightning.pytorch import Trainer

    given = {k: v for k, v in cfg.trainer.items() if k != "_target_"}
    checks.check_arguments("trainer", Trainer, given)
    try:
        return instantiate(cfg.trainer, **extra)
    except Exception as e:  # e.g. trainer=gpu on a machine without one: Lightning says which accelerators exist
        cause = str(e.__cause__ or e).strip().splitlines()[0]
        named = [k for k in given if k in cause] or [k for k, v in given.items() if isinstance(v, str) and v in cause]
        key = named[0] if named else None
        where = f"trainer.{key}={given[key]!r}" if key else "trainer"
        raise ConfigError(f"{where} cannot run here: {cause}") from e


def build(cfg: DictConfig, state: Any, parallel: bool) -> tuple[Any, Any, Any]:
    """-> (datamodule, LightningModule, Trainer), all from config."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from initlab.checkpointing import AtomicCheckpointIO
    from initlab.module import Classifier

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = instantiate(cfg.data, seed=cfg.seed)
    try:
        module = Classifier.from_config(cfg)  # instantiates model and act, applies init
    except (ValueError, TypeError, RuntimeError, OverflowError) as e:  # e.g. a nonlinearity torch does not know
        raise ConfigError(f"cannot build the model from model/init/act: {type(e).__name__}: {e}") from e
    loggers = [instantiate(c) for c in cfg.logger.values()]
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    unwanted: list[type] = [] if loggers else [pl.callbacks.LearningRateMonitor]  # it refuses to run without one
    # Parallel jobs share one terminal, where their bars and model tables would interleave: their metrics.json,
    # TensorBoard runs and a line per finished job say how they went.
    if parallel or not cfg.trainer.get("enable_progress_bar", True):
        unwanted.append(pl.callbacks.ProgressBar)  # Lightning refuses a bar it was told not to show
    callbacks = [c for c in callbacks if not isinstance(c, tuple(unwanted))] + [state]
    quiet = {"enable_progress_bar": False, "enable_model_summary": False} if parallel else {}
    plugins = {} if "plugins" in cfg.trainer else {"plugins": [AtomicCheckpointIO()]}
    trainer = make_trainer(cfg, callbacks=callbacks, logger=loggers or False, **quiet, **plugins)
    return dm, module, trainer


def execute(cfg: DictConfig, job: Any, ckpt: Path | None) -> tuple[dict[str, Any] | None, Any]:
    """Resume or start, fit, evaluate: -> (the result, the RunState), or (None, None) for a finished run."""
    import_frameworks()
    import torch

    from initlab.runstate import RunState

    choices, saved, run_info = dict(job.choices), None, None
    if ckpt is not None:
        saved = resume.read_checkpoint(ckpt)
        cfg, choices = resume.merge(cfg, saved, job.overrides, ckpt)
        given = {v for k, v in parse_overrides(job.overrides).items() if k.endswith("_target_")}  # typed: trusted
        resume.check_targets(cfg, resume.config_targets(job.config_dirs) | given, ckpt)
        checks.validate(cfg)
        run_info = saved[resume.CKPT_KEY] if cfg.train else None  # a run to continue, not a model to evaluate
        if run_info and ckpt.parent.parent.resolve() == job.out.resolve():
            done = resume.finished(job.out, saved, cfg, job.overrides)
            if done is not None:
                # Hydra rewrote .hydra/ for this command: put the run's back
                resume.save_hydra_files(job.out, OmegaConf.create(run_info["config"]), run_info["overrides"])
                log.info(
                    "%s already finished (%s after %d steps): nothing to do", job.out, done["status"], done["steps"]
                )
                return None, None
    check_arguments(cfg)
    dry_run(cfg)
    if (job.out / "checkpoints").exists() and not (job.out / "checkpoints").is_dir():
        raise OutputError(f"{job.out / 'checkpoints'} is a file; checkpoints need a directory there")
    overrides = run_info["overrides"] if run_info else list(job.overrides)
    plain = {k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"}
    state = RunState(plain, choices, overrides)
    if run_info:
        state.run["resumed"] = [*run_info.get("resumed", []), {"from_step": saved["global_step"],
                                                              "overrides": list(job.overrides)}]  # fmt: skip
        resume.save_hydra_files(job.out, cfg, overrides)
        old_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else job.out
        events.carry_over(old_dir, job.out, saved["global_step"])  # curves with no gap and no step twice
    torch.set_num_threads(threads(cfg, job.parallel_jobs))
    quiet_frameworks(job.parallel_jobs > 1)
    dm, module, trainer = build(cfg, state, job.parallel_jobs > 1)
    from initlab.evaluate import fit_and_test

    return fit_and_test(cfg, dm, module, trainer, ckpt, saved, state), state
