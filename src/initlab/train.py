"""Train and test one model from the composed config; a Hydra multirun calls this once per job.

    python train.py init=kaiming act=relu                              # one run -> outputs/<date>/<time>/
    python train.py -m init=normal,lecun,xavier,kaiming act=tanh,relu  # grid -> outputs/multirun/<date>/<time>/<job>/
    python train.py data.data_dir=../shared/data                       # use an existing MNIST copy (offline)
    tensorboard --logdir outputs

Each run dir gets metrics.json, TensorBoard events and checkpoints/{last,best}.ckpt.
"""

import atexit
import gc
import importlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import initlab
from initlab.errors import ConfigError, InitLabError
from initlab.results import hparams, run_choices, write_json_atomic

log = logging.getLogger(__name__)
# At exit, skip the final cyclic-GC sweep over torch/Lightning's millions of objects (~1 s a process,
# sweep workers included); objects are still freed and files closed as usual.
atexit.register(gc.freeze)
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")  # repo-root conf/ (editable install)


def import_frameworks() -> None:
    """Import torch and Lightning with the cyclic GC paused, then freeze what the imports allocated.

    The imports create millions of long-lived objects, and every full collection during them walks them all
    again: ~7 passes, ~0.7 s a process here. Frozen objects are never scanned again. Once a process, before
    any job: a job's trainer, model and data stay collectable (a sweep worker runs many jobs).
    """
    modules = ("initlab.module", "initlab.diagnostics")  # these pull in torch, Lightning, torchmetrics
    if all(m in sys.modules for m in modules):
        return
    gc.collect()  # cheap before torch is loaded; nothing collectable gets frozen below
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for name in modules:
            importlib.import_module(name)
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _parallel_jobs() -> int:
    """How many jobs the launcher runs at once on this machine (joblib's n_jobs; 1 for a single run)."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return 1
    n_jobs = OmegaConf.select(hydra_cfg, "launcher.n_jobs", default=None) or 1
    return usable_cores() if n_jobs < 0 else n_jobs  # joblib's -1 means one job per core


def _threads(cfg: DictConfig) -> int:
    """auto: the cores this process may use, shared among the launcher's parallel jobs."""
    if cfg.num_threads != "auto":
        return int(cfg.num_threads)
    return max(1, usable_cores() // max(1, _parallel_jobs()))


def build(cfg: DictConfig) -> tuple[Any, Any, Any]:
    """-> (datamodule, LightningModule, Trainer), all from config; heavy imports happen here."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from initlab.data import MNISTDataModule
    from initlab.module import Classifier

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = MNISTDataModule(**OmegaConf.to_container(cfg.data), seed=cfg.seed)
    module = Classifier.from_config(cfg)
    loggers = [instantiate(c) for c in cfg.logger.values()]
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    unwanted: list[type] = []
    if not loggers:
        unwanted.append(pl.callbacks.LearningRateMonitor)  # it refuses to run without a logger
    # Parallel jobs share one terminal, where their bars and model tables would interleave: their metrics.json,
    # TensorBoard runs and a line per finished job say how they went.
    parallel = _parallel_jobs() > 1
    if parallel or not cfg.trainer.get("enable_progress_bar", True):
        unwanted.append(pl.callbacks.ProgressBar)  # Lightning refuses a bar it was told not to show
    callbacks = [c for c in callbacks if not isinstance(c, tuple(unwanted))]
    quiet = {"enable_progress_bar": False, "enable_model_summary": False} if parallel else {}
    try:
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **quiet)
    except Exception as e:  # e.g. trainer=gpu on a machine without one: Lightning says which accelerators exist
        cause = str(e.__cause__ or e).strip().splitlines()[0]
        raise ConfigError(f"trainer.accelerator={cfg.trainer.accelerator!r} cannot run here: {cause}") from e
    return dm, module, trainer


def fit_and_test(cfg: DictConfig, dm: Any, module: Any, trainer: Any) -> dict[str, Any]:
    """Train (unless train=false), then evaluate the final weights on val and test."""
    train_loss = None
    if cfg.train:
        trainer.fit(module, datamodule=dm, ckpt_path=cfg.ckpt_path)
        train_loss = trainer.callback_metrics.get("train/loss")  # read now: validate/test below reset it
        if trainer.checkpoint_callback is not None:  # last.ckpt = the final weights, not the last validation's
            trainer.save_checkpoint(Path(trainer.checkpoint_callback.dirpath) / "last.ckpt")
    else:  # evaluate a saved model, on the same validation split it was trained beside
        import torch

        saved = torch.load(cfg.ckpt_path, weights_only=True, map_location="cpu")  # read once: model and data split
        module = type(module)(**saved["hyper_parameters"])
        module.load_state_dict(saved["state_dict"])
        dm.seed, dm.val_size = (
            saved.get("datamodule_hyper_parameters", {}).get(k, getattr(dm, k)) for k in ("seed", "val_size")
        )
    val = trainer.validate(module, datamodule=dm, verbose=False)[0]
    test = trainer.test(module, datamodule=dm, verbose=False)[0]
    ckpt = trainer.checkpoint_callback
    best = ckpt.best_model_score if ckpt is not None else None
    first_step = getattr(module, "first_step_unix", None)
    return {
        "status": "diverged" if module.diverged else "ok",
        "init": module.hparams.init["name"],  # from the model itself: with train=false, the checkpoint's
        "act": module.hparams.act["name"],
        "val_history": module.val_history,
        "first_step_unix": first_step,
        "startup_s": round(first_step - initlab.IMPORTED_AT, 3) if first_step else None,
        **{k: float(v) for k, v in {**val, **test}.items()},
        "val/acc_best": max(float(val["val/acc"]), float(best) if best is not None else 0.0),  # final val counts
        "train/loss": float(train_loss) if train_loss is not None else None,
        "steps": trainer.global_step,
    }


def run(cfg: DictConfig) -> dict[str, Any]:
    """One job: validate, build, fit, test; always leaves metrics.json with a status."""
    start = time.perf_counter()
    out = Path(HydraConfig.get().runtime.output_dir)
    record: dict[str, Any] = {**run_choices(cfg, HydraConfig.get().runtime.choices), "status": "failed"}
    trainer = None
    try:
        import_frameworks()  # heavy imports here, not at module level: a sweep's parent process never needs them
        import torch

        from initlab.config import validate

        validate(cfg)

        torch.set_num_threads(_threads(cfg))
        dm, module, trainer = build(cfg)
        record.update(fit_and_test(cfg, dm, module, trainer))
        for lg in trainer.loggers:
            final = {"hp/test_acc": record["test/acc"], "hp/val_acc": record["val/acc"]}  # real metrics, not hp_metric
            lg.log_hyperparams(hparams(cfg, record), final)
            lg.finalize("success")  # flush: the event writer otherwise holds these until it is garbage-collected
    except Exception as e:
        record["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        record["wall_time_s"] = round(time.perf_counter() - start, 3)
        if trainer is None or trainer.is_global_zero:  # under DDP one process writes the record
            write_json_atomic(out / "metrics.json", record)
    log.info("%s/%s %s: test/acc=%.4f val/acc=%.4f -> %s", record["init"], record["act"], record["status"],
             record["test/acc"], record["val/acc"], out)  # fmt: skip
    return record


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        return run(cfg)["val/acc"]  # what a sweeper (e.g. Optuna) maximises
    except Exception as e:
        if HydraConfig.get().mode.name == "RUN":
            if isinstance(e, InitLabError):  # bad input: one line, no traceback
                log.error("%s", e)
                sys.exit(1)
            raise
        # In a sweep, one bad job must not stop the others: metrics.json says "failed" with the error, and the
        # SweepSummary callback makes the sweep exit non-zero once every job has run.
        log.error("job failed: %s", e, exc_info=not isinstance(e, InitLabError))
        return float("nan")


if __name__ == "__main__":
    main()
