"""Build the data, model and Trainer of a plan: the part that needs torch and Lightning.

Imported only once a job has passed the config checks, so a bad command line answers before torch and Lightning
load. Every part is built here, from config; mistakes a config can hold (an argument its target does not take, a
model whose output does not fit the data) are found here, in one line, before training starts.
"""

import atexit
import contextlib
import fcntl
import gc
import importlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from initlab.errors import CheckpointError, ConfigError, describe
from initlab.inits import USER_EXITS
from initlab.run import checks
from initlab.run.resume import Plan

log = logging.getLogger(__name__)
FRAMEWORKS = ("initlab.module", "initlab.diagnostics", "initlab.run.runstate")  # torch, Lightning, torchmetrics
ARGUMENTS = {"optimizer": ("params",), "scheduler.scheduler": ("optimizer",), "act": (), "init.weight": ("tensor",),
             "init.calibrate": ("model", "x"), "model": ("act",), "data": ("seed",), "data.load": ()}  # fmt: skip


def import_frameworks() -> None:
    """Import torch and Lightning with the cyclic GC paused, then freeze what the imports allocated.

    The imports create millions of long-lived objects, and every full collection during them walks them all
    again: ~7 passes, ~0.7 s a process here. Frozen objects are never scanned again. Once a process, before
    any job: a job's trainer, model and data stay collectable (a sweep worker runs many jobs).
    """
    if all(m in sys.modules for m in FRAMEWORKS):
        return
    # At exit, skip the final cyclic-GC sweep over torch/Lightning's millions of objects (~1 s a process, sweep
    # workers included); objects are still freed and files closed as usual.
    atexit.register(gc.freeze)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for name in FRAMEWORKS:
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
    warnings.filterwarnings("ignore", message=r".*callbacks used to create the checkpoint need to be provided")
    quiet = logging.WARNING if parallel else logging.NOTSET
    for name in ("initlab", "lightning.pytorch"):
        logging.getLogger(name).setLevel(quiet)
    logging.getLogger("initlab.run.evaluate").setLevel(logging.INFO)  # the job's one line: how it ended


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads(cfg: DictConfig, parallel_jobs: int) -> int:
    """auto: the cores this process may use, shared among the launcher's parallel jobs."""
    if cfg.num_threads != "auto":
        return int(cfg.num_threads)
    return max(1, usable_cores() // max(1, parallel_jobs))


def check_arguments(cfg: DictConfig) -> None:
    """Keyword arguments of every built part must be ones its target takes; its target must import."""
    from hydra.utils import get_object

    nodes = {**ARGUMENTS, **{f"logger.{k}": () for k in cfg.logger}, **{f"callbacks.{k}": () for k in cfg.callbacks}}
    for key, skip in nodes.items():
        node = OmegaConf.select(cfg, key, default=None)
        if isinstance(node, DictConfig) and node.get("_target_"):
            hydra_log = logging.getLogger("hydra.utils")  # it logs the failure on 3 lines before raising it
            level = hydra_log.level
            hydra_log.setLevel(logging.CRITICAL)
            try:
                target = get_object(node._target_)
            except (Exception, *USER_EXITS) as e:  # not importable (or its import exits): say which key names it
                raise ConfigError(f"{key}._target_={node._target_!r} cannot be imported: {describe(e)}") from e
            finally:
                hydra_log.setLevel(level)
            checks.check_arguments(key, target, OmegaConf.to_container(node, resolve=True), skip=skip)


def dry_run(cfg: DictConfig) -> None:
    """Build the optimizer and scheduler on a stand-in parameter and take one step: their own checks (Nesterov
    without momentum, a bad value of a `+key`: `+optimizer.maximize=yes` passes the constructor and fails the fused
    step) answer now, in one line, not after the data is loaded."""
    import torch
    from hydra.utils import instantiate

    stand_in = torch.nn.Parameter(torch.zeros(1))
    stand_in.grad = torch.zeros(1)
    try:
        optimizer = instantiate(cfg.optimizer, _partial_=True)([stand_in])
        optimizer.step()
    except Exception as e:
        raise ConfigError(f"optimizer: {describe(e)}") from e
    if OmegaConf.select(cfg, "scheduler.scheduler", default=None):
        try:
            instantiate(cfg.scheduler.scheduler, _partial_=True)(optimizer)
        except Exception as e:
            raise ConfigError(f"scheduler.scheduler: {describe(e)}") from e


def build_module(cfg: DictConfig, choices: dict[str, Any]) -> Any:
    """The LightningModule (model, act, init), checked on an empty batch of the data's images: a model with nothing to
    train, or whose output is not [N, classes] logits for the data, is one line now, not an error deep in training."""
    import torch
    from hydra.utils import instantiate

    from initlab.activations import profile
    from initlab.module import Classifier

    where = f"model={choices.get('model')} act={choices.get('act')} init={choices.get('init')}"
    try:
        module = Classifier.from_config(cfg)
    except (Exception, *USER_EXITS) as e:  # a nonlinearity torch does not know, a user's init that raises or exits...
        raise ConfigError(f"cannot build the model ({where}): {describe(e)}") from e
    profile(instantiate(module.hparams.act))  # not elementwise (Softmax over units): one line now, not at step 0
    model, data = f"model={choices.get('model')}", f"data={choices.get('data')}"
    if not any(p.requires_grad for p in module.net.parameters()):  # else the optimizer refuses it, deep in Lightning
        raise ConfigError(f"{model} has no trainable parameters: the optimizer would have nothing to train")
    shape, classes = list(cfg.data.image_shape), cfg.data.num_classes
    was_training = module.training
    try:
        with torch.enable_grad():  # to see that the outputs depend on the parameters
            out = module.eval()(torch.zeros(2, *shape))  # [2, C, H, W] -> [2, classes]
    except (Exception, *USER_EXITS) as e:
        raise ConfigError(f"{where} cannot take {data}'s {shape} images: {describe(e)}") from e
    finally:
        module.train(was_training)
    if not torch.is_tensor(out):  # a tuple (logits, features), a dict: the loss needs the logits alone
        raise ConfigError(f"{model} gives a {type(out).__name__} for 2 images, not a tensor of shape [2, {classes}] "
                          f"(the logits for {data}'s {classes} classes)")  # fmt: skip
    if tuple(out.shape) != (2, classes):
        raise ConfigError(f"{model} gives outputs of shape {list(out.shape)} for 2 images; {data} has "
                          f"{classes} classes, so it must give [2, {classes}]")  # fmt: skip
    if not out.dtype.is_floating_point:  # the cross-entropy's log-softmax needs floats
        raise ConfigError(f"{model} gives outputs of dtype {str(out.dtype).removeprefix('torch.')}; logits are float")
    if not out.requires_grad:  # detached (or computed without the parameters): no gradient would reach them
        raise ConfigError(f"{model} gives outputs that do not depend on its parameters (no gradient reaches them)")
    return module


def load_weights(module: Any, saved: dict[str, Any], ckpt: Any) -> None:
    """The checkpoint's weights, each of the model's shape and dtype (load_state_dict would cast float16 silently:
    a resume that no longer continues the run it names)."""
    own = module.state_dict()
    for name, t in saved["state_dict"].items():
        if name in own and getattr(t, "dtype", None) != own[name].dtype:
            raise CheckpointError(f"ckpt_path={str(ckpt)!r} is refused: its training state is malformed (state_dict"
                                  f"[{name!r}] is {getattr(t, 'dtype', type(t).__name__)}; the model's is "
                                  f"{own[name].dtype}): not the weights a run of it writes")  # fmt: skip
    try:
        module.load_state_dict(saved["state_dict"])
    except (RuntimeError, KeyError, TypeError) as e:
        raise CheckpointError(f"ckpt_path={str(ckpt)!r} holds another architecture: {describe(e, limit=200)}") from e


def make_trainer(cfg: DictConfig, **extra: Any) -> Any:
    """instantiate(cfg.trainer); a Trainer argument it refuses is blamed on its own key."""
    from hydra.utils import instantiate
    from lightning.pytorch import Trainer

    given = {k: v for k, v in cfg.trainer.items() if k != "_target_"}
    checks.check_arguments("trainer", Trainer, given)
    try:
        return instantiate(cfg.trainer, **extra)
    except Exception as e:  # e.g. trainer=gpu on a machine without one: Lightning says which accelerators exist
        cause = describe(e.__cause__ or e).split(": ", 1)[-1]
        named = [k for k in given if k in cause] or [k for k, v in given.items() if isinstance(v, str) and v in cause]
        key = named[0] if named else None
        where = f"trainer.{key}={given[key]!r}" if key else "trainer"
        raise ConfigError(f"{where} cannot run here: {cause}") from e


def instantiate_all(group: str, node: DictConfig) -> list[Any]:
    """Every logger or callback of a group, each refusal blamed on its own key. A logger's writer is made now
    (TensorBoard's SummaryWriter, an MLflow run): an argument it refuses is a mistake found before training. Writers
    are made one process at a time on this machine: parallel sweep jobs creating one MLflow store at once race in
    its schema migration."""
    from hydra.utils import instantiate
    from lightning.pytorch import Callback
    from lightning.pytorch.loggers import Logger

    kind = Logger if group == "logger" else Callback
    built = []
    for name, c in node.items():
        alone = one_at_a_time(Path(tempfile.gettempdir()) / "initlab-loggers.lock") if kind is Logger else None
        try:
            with alone or contextlib.nullcontext():
                built.append(instantiate(c))
                if not isinstance(built[-1], kind):
                    raise TypeError(f"{c.get('_target_')} built {type(built[-1]).__name__}, not a Lightning "
                                    f"{kind.__name__}")  # fmt: skip
                if kind is Logger:
                    _ = built[-1].experiment
        except Exception as e:
            raise ConfigError(f"{group}.{name}: {describe(e.__cause__ or e)}") from e
    return built


@contextlib.contextmanager
def one_at_a_time(lock: Path) -> Iterator[None]:
    """An exclusive lock on `lock` (an flock, waited for) for the block."""
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass
class Parts:
    dm: Any  # the LightningDataModule
    module: Any  # the LightningModule
    trainer: Any  # the Trainer
    state: Any  # the RunState callback: the run's state in checkpoints, its stop on a signal


def build(plan: Plan, job: Any) -> Parts:
    """-> the run's data, module, Trainer and RunState, all from the plan's config."""
    import_frameworks()
    import lightning.pytorch as pl
    import torch
    from hydra.utils import instantiate

    from initlab.run.checkpoints import AtomicCheckpointIO
    from initlab.run.runstate import RunState

    cfg, parallel_jobs = plan.cfg, job.parallel_jobs
    check_arguments(cfg)
    dry_run(cfg)
    torch.set_num_threads(threads(cfg, parallel_jobs))
    quiet_frameworks(parallel_jobs > 1)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = instantiate(cfg.data, seed=cfg.seed, _recursive_=False, _convert_="all")  # plain values; `load` runs later
    module = build_module(cfg, plan.choices)
    state = RunState({k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"},
                     plan.choices, plan.overrides)  # fmt: skip
    state.run["resumed"] = plan.resumed
    loggers = instantiate_all("logger", cfg.logger)
    callbacks = instantiate_all("callbacks", cfg.callbacks)
    unwanted: list[type] = [] if loggers else [pl.callbacks.LearningRateMonitor]  # it refuses to run without one
    # A bar redrawn with carriage returns is noise in a log file or a SLURM job's output, and parallel jobs share
    # one terminal: their metrics.json, TensorBoard runs and a line per finished job say how they went.
    if parallel_jobs > 1 or not sys.stderr.isatty() or not cfg.trainer.get("enable_progress_bar", True):
        unwanted.append(pl.callbacks.ProgressBar)  # Lightning refuses a bar it was told not to show
    if job.sweep_dir is not None or not cfg.trainer.get("enable_model_summary", True):
        unwanted.append(pl.callbacks.ModelSummary)  # every job of a sweep has the same table
    # trainer.max_time through a Timer of ours, placed before the RunState: it sees the stop in the same batch
    max_time = cfg.trainer.get("max_time")  # "DD:HH:MM:SS" or {hours: 12}: a DictConfig is no dict to Lightning
    max_time = OmegaConf.to_object(max_time) if isinstance(max_time, DictConfig) else max_time
    timer = [pl.callbacks.Timer(duration=max_time)] if max_time else []
    callbacks = [c for c in callbacks if not isinstance(c, tuple(unwanted))] + timer + [state]
    quiet = {"enable_progress_bar": False} if pl.callbacks.ProgressBar in unwanted else {}
    quiet |= {"enable_model_summary": False} if pl.callbacks.ModelSummary in unwanted else {}
    plugins = {} if "plugins" in cfg.trainer else {"plugins": [AtomicCheckpointIO()]}
    trainer = make_trainer(cfg, callbacks=callbacks, logger=loggers or False, max_time=None, **quiet, **plugins)
    if plan.saved is not None:  # a checkpoint of another shape fails here, in one line; its dtype is the precision's
        load_weights(trainer.precision_plugin.convert_module(module), plan.saved, plan.ckpt)
    return Parts(dm, module, trainer, state)
