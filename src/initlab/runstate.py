"""The run's own state in every checkpoint, and a clean stop when a signal arrives mid-training."""

import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from initlab.resume import CKPT_KEY
from initlab.signals import STATE, Interrupted


class RunState(pl.Callback):
    """Stores the run's config, group choices, overrides and wall time so far in each checkpoint.

    On a signal it saves last.ckpt at the end of the batch in progress (a consistent point: the loader's
    position and the loops' counters match the weights), then raises Interrupted.
    """

    def __init__(self, config: dict, choices: dict, overrides: list[str]) -> None:
        self.run = {"config": config, "choices": choices, "overrides": list(overrides)}
        self.started = time.perf_counter()
        self.prior_s = 0.0  # wall time of the segments before a resume

    def elapsed(self) -> float:
        return self.prior_s + time.perf_counter() - self.started

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[CKPT_KEY] = {**self.run, "elapsed_s": round(self.elapsed(), 3)}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self.prior_s = float(checkpoint.get(CKPT_KEY, {}).get("elapsed_s", 0.0))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        STATE.defer = True  # from here a signal stops the loop at a batch end

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        STATE.defer = False

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if STATE.received is None:
            return
        ckpt = trainer.checkpoint_callback
        if ckpt is not None and ckpt.dirpath:
            trainer.save_checkpoint(Path(ckpt.dirpath) / "last.ckpt")
        raise Interrupted(STATE.received, trainer.global_step)
