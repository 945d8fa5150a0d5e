"""Fit (or load) the model, evaluate its final weights on val and test, and put the numbers in the record."""

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

import initlab
from initlab.errors import CheckpointError
from initlab.job import judge
from initlab.record import RESULTS, hparams, identity, write_atomic
from initlab.signals import STATE, Interrupted

log = logging.getLogger(__name__)


def _fit(dm: Any, module: Any, trainer: Any, ckpt: Path | None, state: Any) -> float | None:
    """trainer.fit, resuming from ckpt; -> the last logged training loss. A signal ends it with Interrupted."""
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt) if ckpt else None, weights_only=True)
    except SystemExit:  # Lightning's SIGTERMException: it stopped the loop after a batch (and its validation)
        if STATE.received:
            state.commit()
            raise Interrupted(STATE.received, trainer.global_step) from None
        raise
    state.discard()  # the run finished: its final weights are the checkpoint
    if trainer.checkpoint_callback is not None:  # last.ckpt = the final weights, not the last validation's
        trainer.save_checkpoint(Path(trainer.checkpoint_callback.dirpath) / "last.ckpt")
    return module.last_loss  # kept in checkpoints: a run stopped during its final test resumes with it


def _keep_if_best(trainer: Any, final_acc: float) -> None:
    """The final validation competes too: if it beats every one during training, best.ckpt becomes the final
    weights (last.ckpt), so best.ckpt and val/acc_best always describe the same model."""
    ckpt = trainer.checkpoint_callback
    best = ckpt.best_model_score if ckpt is not None else None
    if ckpt is None or not ckpt.dirpath or (best is not None and final_acc <= float(best)):
        return
    last, target = Path(ckpt.dirpath) / "last.ckpt", Path(ckpt.dirpath) / "best.ckpt"
    if last.is_file() and trainer.is_global_zero:
        write_atomic(target, last.read_bytes())


def _load(module: Any, saved: dict[str, Any], ckpt: Path) -> None:
    try:
        module.load_state_dict(saved["state_dict"])
    except (RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:200]
        raise CheckpointError(f"ckpt_path={str(ckpt)!r} holds another architecture: {first}") from e


def log_results(trainer: Any, params: dict[str, Any], results: dict[str, float]) -> None:
    """HParams: the chosen hyperparameters, with the run's results as its metrics (their scalar tags)."""
    from lightning.pytorch.loggers import TensorBoardLogger
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    for lg in trainer.loggers:
        lg.log_metrics({"val/acc_best": results["val/acc_best"]}, step=trainer.global_step)  # a scalar tag too
        if isinstance(lg, TensorBoardLogger):
            writer = lg.experiment
            for summary in hparams_summary(params, results):  # experiment, session start, session end
                writer.file_writer.add_summary(summary)
        else:
            lg.log_hyperparams(params)
        lg.finalize("success")  # flush: the event writer otherwise holds these until it is garbage-collected


def fit_and_test(cfg: DictConfig, dm: Any, module: Any, trainer: Any, ckpt: Path | None,
                 saved: dict[str, Any] | None, state: Any) -> dict[str, Any]:  # fmt: skip
    """Train (unless train=false), then evaluate the final weights on val and test; -> the run's record."""
    train_loss = None
    if saved is not None:
        _load(module, saved, ckpt)  # a checkpoint of another shape fails here, in one line, not inside fit
    if cfg.train:
        train_loss = _fit(dm, module, trainer, ckpt, state)
    val = trainer.validate(module, datamodule=dm, verbose=False)[0]
    if cfg.train:
        _keep_if_best(trainer, float(val["val/acc"]))
    test = trainer.test(module, datamodule=dm, verbose=False)[0]
    history = [list(p) for p in module.val_history]
    if cfg.train and (not history or history[-1][0] != trainer.global_step):
        history.append([trainer.global_step, float(val["val/acc"])])  # the final validation counts too
    first_step = getattr(module, "first_step_unix", None)
    record = {
        **identity(cfg, state.run["choices"]),
        "val_history": history,
        "first_step_unix": first_step,
        "startup_s": round(first_step - initlab.IMPORTED_AT, 3) if first_step else None,
        **{k: float(v) for k, v in {**val, **test}.items()},
        "val/acc_best": max(p[1] for p in history) if history else float(val["val/acc"]),
        "train/loss": train_loss,
        "steps": trainer.global_step if cfg.train else saved["global_step"],  # evaluated: the checkpoint's
        "overrides": state.run["overrides"],
    }
    if state.run.get("resumed"):
        record["resumed"] = state.run["resumed"]
    judge(record, module.first_loss, module.diverged)
    if trainer.is_global_zero:  # other DDP ranks' loggers are stand-ins
        log_results(trainer, hparams(cfg, record), {k: record[k] for k in RESULTS if record.get(k) is not None})
    log.info("%s/%s %s: test/acc=%.4f val/acc=%.4f", record["init"], record["act"], record["status"],
             record["test/acc"], record["val/acc"])  # fmt: skip
    return record
