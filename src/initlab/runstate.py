"""The run's own state in every checkpoint, and a clean stop when a signal arrives mid-training."""

import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from initlab.resume import CKPT_KEY
from initlab.signals import STATE, Interrupted, install


class RunState(pl.Callback):
    """Stores the run's config, group choices, overrides and wall time so far in each checkpoint.

    On a signal it saves last.ckpt where the run can resume exactly, then raises Interrupted: after the batch
    in progress, unless a validation follows that batch, in which case after the validation (Lightning, resumed
    from a checkpoint taken between a batch and its validation, would skip that validation).
    """

    def __init__(self, config: dict, choices: dict, overrides: list[str]) -> None:
        self.run = {"config": config, "choices": choices, "overrides": list(overrides)}
        self.started = time.perf_counter()
        self.prior_s = 0.0  # wall time of the segments before a resume
        self.pending: Path | None = None  # a checkpoint taken at a batch end, kept if no validation follows
        self.trained = False  # this segment reached training (so its record replaces an earlier one)

    def elapsed(self) -> float:
        return self.prior_s + time.perf_counter() - self.started

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[CKPT_KEY] = {**self.run, "elapsed_s": round(self.elapsed(), 3)}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self.prior_s = float(checkpoint.get(CKPT_KEY, {}).get("elapsed_s", 0.0))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning has just put its own SIGTERM handler in place, which aborts a validation in progress; ours
        # lets it finish and stops after it, where a checkpoint resumes exactly. Lightning restores the
        # handlers it found when fit ends.
        install()
        self.trained = True
        if STATE.received is not None:  # arrived during start-up: nothing to save yet
            raise Interrupted(STATE.received, trainer.global_step)

    @staticmethod
    def _last(trainer: pl.Trainer) -> Path | None:
        ckpt = trainer.checkpoint_callback
        return Path(ckpt.dirpath) / "last.ckpt" if ckpt is not None and ckpt.dirpath else None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        last = self._last(trainer)
        if STATE.received is not None and self.pending is None and last is not None:
            self.pending = last.with_name("last.ckpt.pending")
            trainer.save_checkpoint(self.pending)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        install()  # as in training: a SIGTERM lets the final test finish; the record then says it was stopped

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn != "fit":
            install()
        if self.pending is not None:  # a validation follows the batch: stop after it instead
            self.pending.unlink(missing_ok=True)
            self.pending = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if STATE.received is not None and trainer.state.fn == "fit" and not trainer.sanity_checking:
            last = self._last(trainer)
            if last is not None:
                trainer.save_checkpoint(last)
            raise Interrupted(STATE.received, trainer.global_step)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.pending is not None:  # no validation came: the batch-end checkpoint is the resume point
            self.commit()
            raise Interrupted(STATE.received, trainer.global_step)

    def commit(self) -> None:
        """Make a pending signal-time checkpoint last.ckpt (Lightning stopped the loop itself, on SIGTERM)."""
        if self.pending is not None:
            self.pending.replace(self.pending.with_name("last.ckpt"))
            self.pending = None

    def discard(self) -> None:
        if self.pending is not None:
            self.pending.unlink(missing_ok=True)
            self.pending = None
