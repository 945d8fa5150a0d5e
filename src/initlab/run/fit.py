"""Train: Lightning's fit, resumed from the plan's checkpoint; a signal ends it where a resume is exact."""

import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from initlab.errors import ConfigError, InitLabError, describe
from initlab.run.build import Parts
from initlab.run.resume import Plan
from initlab.run.signals import STATE, Interrupted


@dataclass
class Fitted:
    train_loss: float | None  # the last logged training loss (None: not trained here, an evaluation)
    stopped: str | None  # why training ended before its planned length, if it did


def _stopped_early(parts: Parts, plan: Plan) -> str | None:
    """Why training ended short of trainer.max_epochs / max_steps (trainer.max_time, a callback), or None."""
    trainer, module = parts.trainer, parts.module
    planned = trainer.estimated_stepping_batches  # max_steps, or the epochs' batches over accumulation
    if module.diverged or trainer.global_step >= planned:
        return None
    max_time = plan.cfg.trainer.get("max_time")
    cause = f"trainer.max_time={max_time} was reached" if max_time else "a callback stopped training"
    return (f"{cause} at step {trainer.global_step} of {planned}; continue it with ckpt_path=last"
            + (" and a longer trainer.max_time (or null)" if max_time else ""))  # fmt: skip


def between_epochs(trainer: Any) -> None:
    """Training ended with its epoch: set the epoch's batch counters to the next epoch's start, as Lightning does
    when an epoch begins. Left at the last batch, a run extended with trainer.max_steps went on inside the ended
    epoch (one batch past trainer.limit_train_batches, then a short epoch): 101 steps of 120 instead of 120."""
    loop = trainer.fit_loop.epoch_loop
    if loop.batch_progress.is_last_batch:
        loop.batch_progress.reset_on_run()
        loop.scheduler_progress.reset_on_run()
        loop.automatic_optimization.optim_progress.reset_on_run()


OPTIM = f"{os.sep}torch{os.sep}optim{os.sep}"  # torch's optimizers and lr schedulers


def _raised_in(e: BaseException, where: str) -> bool:
    """Whether the innermost frame of e's traceback is code whose path holds `where`."""
    frames = traceback.extract_tb(e.__traceback__)
    return bool(frames) and where in frames[-1].filename


def fit(parts: Parts, plan: Plan) -> Fitted:
    """trainer.fit (unless train=false), resuming from the plan's checkpoint; last.ckpt = the final weights."""
    if not plan.cfg.train:
        return Fitted(None, None)
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    trainer, state = parts.trainer, parts.state
    try:
        trainer.fit(parts.module, datamodule=parts.dm, ckpt_path=str(plan.ckpt) if plan.ckpt else None,
                    weights_only=True)  # fmt: skip
    except MisconfigurationException as e:  # Lightning refusing a setting of trainer, callbacks or scheduler
        raise ConfigError(f"trainer, callbacks or scheduler: {describe(e)}") from e
    except Exception as e:
        if isinstance(e, InitLabError) or not _raised_in(e, OPTIM):
            raise
        chosen = f"optimizer={plan.choices.get('optimizer')} scheduler={plan.choices.get('scheduler')}"
        raise ConfigError(f"{chosen} failed at step {trainer.global_step}: {describe(e)}") from e
    except (SystemExit, KeyboardInterrupt) as e:  # Lightning's SIGTERMException: it stopped after a batch
        if STATE.received:
            state.commit()
            raise Interrupted(STATE.received, trainer.global_step) from None
        # no signal came: code the run called (a model's forward, a callback) exited; Lightning turns a
        # KeyboardInterrupt raised in it into SystemExit(1)
        raise ConfigError(f"training stopped at step {trainer.global_step}: code of model={plan.choices.get('model')}"
                          f" or a callback raised {type(e).__name__}: {e}, with no signal") from e  # fmt: skip
    if state.pending is not None:  # stopped early between validations: that batch's end is where it resumes
        state.commit()
    elif (
        not state.stopped and trainer.checkpoint_callback is not None
    ):  # last.ckpt = the final weights, not the last validation's
        between_epochs(trainer)
        trainer.save_checkpoint(Path(trainer.checkpoint_callback.dirpath) / "last.ckpt")
    if trainer.global_step == 0:
        raise ConfigError("training ran no step (trainer.limit_train_batches, or no training batches): "
                          "the model would be recorded untrained")  # fmt: skip
    return Fitted(parts.module.last_loss, _stopped_early(parts, plan))
