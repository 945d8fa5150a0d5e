"""Evaluate the final weights on val and test, and put the run's numbers, its verdict and its HParams together."""

import logging
from pathlib import Path
from typing import Any

import initlab
from initlab.files import write_atomic
from initlab.run.build import Parts
from initlab.run.fit import Fitted
from initlab.run.record import RESULTS, hparams, identity, judge
from initlab.run.resume import Plan
from initlab.run.signals import STATE, Interrupted

log = logging.getLogger(__name__)


def _keep_if_best(trainer: Any, final: dict[str, float]) -> None:
    """The final validation competes too, by the checkpoint callback's own monitor and mode: if it beats every one
    during training, best.ckpt becomes the final weights (last.ckpt), so best.ckpt and its score always describe
    the same model (val/acc_best with the default monitor)."""
    ckpt = trainer.checkpoint_callback
    if ckpt is None or not ckpt.dirpath or ckpt.monitor not in final:
        return
    best, score = ckpt.best_model_score, float(final[ckpt.monitor])
    if best is not None and not (score > float(best) if ckpt.mode == "max" else score < float(best)):
        return
    last, target = Path(ckpt.dirpath) / "last.ckpt", Path(ckpt.dirpath) / "best.ckpt"
    if last.is_file() and trainer.is_global_zero:
        write_atomic(target, last.read_bytes())


def log_results(trainer: Any, params: dict[str, Any], results: dict[str, float]) -> None:
    """HParams: the chosen hyperparameters, with the run's results as its metrics (their scalar tags)."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
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
        if isinstance(lg, WandbLogger):
            lg.experiment.finish()  # W&B's run ends here, its summary written (at exit it can be lost)


def _numbers(parts: Parts, plan: Plan) -> dict[str, Any]:
    """Validate and test the final weights; -> the record's numbers, val_history with the final validation."""
    trainer, module, cfg = parts.trainer, parts.module, plan.cfg
    val = trainer.validate(module, datamodule=parts.dm, verbose=False)[0]
    if cfg.train:
        _keep_if_best(trainer, val)
    test = trainer.test(module, datamodule=parts.dm, verbose=False)[0]
    history = [list(p) for p in module.val_history]
    if cfg.train and (not history or history[-1][0] != trainer.global_step):
        history.append([trainer.global_step, float(val["val/acc"])])  # the final validation counts too
    first_step = getattr(module, "first_step_unix", None)
    return {
        "val_history": history,
        "first_step_unix": first_step,
        "startup_s": round(first_step - initlab.IMPORTED_AT, 3) if first_step else None,
        **{k: float(v) for k, v in {**val, **test}.items()},
        "val/acc_best": max(p[1] for p in history) if history else float(val["val/acc"]),
        "steps": trainer.global_step if cfg.train else plan.saved["global_step"],  # evaluated: the checkpoint's
    }


def evaluate(parts: Parts, plan: Plan, fitted: Fitted) -> dict[str, Any]:
    """The run's record: identity, numbers, train/loss, verdict; HParams and one line in the log."""
    from initlab.diagnostics import LayerDiagnostics  # torch and Lightning: loaded by now (initlab.run.build)

    record = {**identity(plan.cfg, plan.choices), **_numbers(parts, plan), "train/loss": fitted.train_loss}
    if plan.resumed:
        record["resumed"] = plan.resumed
    step0 = next((c.step0 for c in parts.trainer.callbacks if isinstance(c, LayerDiagnostics)), {})
    if step0:
        record["diagnostics"] = dict(sorted(step0.items()))  # step 0, per layer: the init's story at a glance
    judge(record, parts.module.first_loss, parts.module.diverged, fitted.stopped)
    if parts.trainer.is_global_zero:  # other DDP ranks' loggers are stand-ins
        params = hparams(plan.cfg, record)
        log_results(parts.trainer, params, {k: record[k] for k in RESULTS if record.get(k) is not None})
    log.info("%s/%s %s: test/acc=%.4f val/acc=%.4f", record["init"], record["act"], record["status"],
             record["test/acc"], record["val/acc"])  # fmt: skip
    if STATE.received:  # noted during the final validation or test: the numbers are whole, the run was stopped
        raise Interrupted(STATE.received, record["steps"], record)
    return record
