"""The run's own state in every checkpoint, and a clean stop when a signal arrives mid-training.

Besides Lightning's own (weights, optimizer, scheduler, loops, callbacks), a checkpoint holds the run's config,
choices and overrides, its wall time so far, every random number generator's state (torch CPU and CUDA, numpy,
Python: a model with dropout draws from them) and gradients accumulated mid-window: a resumed run continues
exactly where the checkpoint was taken.
"""

import random
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from initlab.errors import ConfigError
from initlab.run import checkpoint_state
from initlab.run.checkpoint_state import CKPT_KEY
from initlab.run.signals import STATE, Interrupted, install


def rng_states() -> dict[str, Any]:
    """Every generator's state as tensors and plain values, so it loads with weights_only=True."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, state, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "python": [version, list(state), gauss_next]}  # fmt: skip


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, state, gauss_next = states["python"]
    random.setstate((version, tuple(state), gauss_next))


def validation_fits(trainer: pl.Trainer) -> None:
    """A validation every trainer.val_check_interval steps of each epoch needs an epoch that long: said in one line
    as the data is set up, before the model summary prints (Lightning raises it once training starts)."""
    interval, limit = trainer.val_check_interval, trainer.limit_train_batches
    if trainer.check_val_every_n_epoch is None or not isinstance(interval, int) or trainer.datamodule is None:
        return
    batches = len(trainer.datamodule.train_dataloader())
    batches = min(batches, limit) if isinstance(limit, int) else int(batches * limit)
    if interval > batches:
        raise ConfigError(
            f"trainer.val_check_interval={interval} is not allowed: at most the epoch's {batches} "
            "training batches while trainer.check_val_every_n_epoch is set (null counts global steps)"
        )


class RunState(pl.Callback):
    """Stores the run's config, group choices, overrides, wall time and random states in each checkpoint.

    On a signal it saves last.ckpt where the run can resume exactly, then raises Interrupted: after the batch
    in progress, unless a validation follows that batch, in which case after the validation (Lightning, resumed
    from a checkpoint taken between a batch and its validation, would skip that validation). Training stopped
    early (trainer.max_time, a callback setting trainer.should_stop) is saved at the same kind of point, so it
    too resumes exactly.
    """

    def __init__(self, config: dict, choices: dict, overrides: list[str]) -> None:
        self.run = {"config": config, "choices": choices, "overrides": list(overrides)}
        self.started = time.perf_counter()
        self.prior_s = 0.0  # wall time of the segments before a resume
        self.pending: Path | None = None  # a checkpoint taken at a batch end, kept if no validation follows
        self.trained = False  # this segment reached training (so its record replaces an earlier one)
        self.restored: dict[str, Any] = {}  # the checkpoint's run state, applied at the start of training
        self.stopped = False  # stopped early after a validation (trainer.max_time, a callback): last.ckpt is there

    def elapsed(self) -> float:
        return self.prior_s + time.perf_counter() - self.started

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            validation_fits(trainer)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[CKPT_KEY] = {**self.run, "elapsed_s": round(self.elapsed(), 3), "rng": rng_states()}
        grads = {n: p.grad for n, p in pl_module.named_parameters() if p.grad is not None}
        if trainer.accumulate_grad_batches > 1 and grads:  # mid-window, they are part of the next step
            checkpoint[CKPT_KEY]["grads"] = grads

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        # the run state was checked when the checkpoint was read (checkpoint_state.check_saved); the optimizer's
        # only fits the model now: checked before Lightning restores it (a buffer of another shape crashed the process)
        checkpoint_state.check_optimizer(checkpoint, Path(trainer.ckpt_path or "the checkpoint"), pl_module)
        run = checkpoint.get(CKPT_KEY, {})
        self.prior_s = float(run.get("elapsed_s", 0.0))
        self.restored = run  # applied once Lightning has restored the rest, just before training goes on

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning has just put its own SIGTERM handler in place, which aborts a validation in progress; ours
        # lets it finish and stops after it, where a checkpoint resumes exactly. Lightning restores the
        # handlers it found when fit ends.
        install()
        self.trained = True
        if STATE.received is not None:  # arrived during start-up: nothing to save yet
            raise Interrupted(STATE.received, trainer.global_step)
        if "rng" in self.restored:  # last, so nothing between the restore and the first step draws from them
            set_rng_states(self.restored["rng"])
        for name, p in pl_module.named_parameters() if self.restored else ():
            grad = self.restored.get("grads", {}).get(name)
            p.grad = None if grad is None else grad.to(p.device)

    @staticmethod
    def _last(trainer: pl.Trainer) -> Path | None:
        ckpt = trainer.checkpoint_callback
        return Path(ckpt.dirpath) / "last.ckpt" if ckpt is not None and ckpt.dirpath else None

    @staticmethod
    def _validation_due(trainer: pl.Trainer, batch_idx: int) -> bool:
        """Whether Lightning validates after this batch on its own schedule (a stop forces one besides)."""
        every, n = trainer.check_val_every_n_epoch, trainer.num_training_batches
        if every is not None and (trainer.current_epoch + 1) % every:
            return False
        count = batch_idx if every is not None else trainer.current_epoch * n + batch_idx  # batches so far
        return (count + 1) % trainer.val_check_batch == 0 or (every is not None and batch_idx + 1 == n)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        last = self._last(trainer)
        if last is None or self.pending is not None:
            return
        # the resume point is this batch's end, unless a validation is due after it: then that validation's end.
        # A stop (trainer.max_time, a callback) forces a validation too, which a resumed run must not repeat.
        stop = trainer.should_stop and not self._validation_due(trainer, batch_idx)
        if STATE.received is not None or stop:
            self.pending = last.with_name("last.ckpt.pending")
            trainer.save_checkpoint(self.pending)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        install()  # as in training: a SIGTERM lets the final test finish; the record then says it was stopped

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn != "fit":
            install()
        if self.pending is not None and STATE.received is not None:  # a validation follows: stop after it instead
            self.discard()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking:
            return
        last = self._last(trainer)
        if (STATE.received is not None or (trainer.should_stop and self.pending is None)) and last is not None:
            trainer.save_checkpoint(last)  # the resume point: after this (scheduled) validation
            self.stopped = True
        if STATE.received is not None:
            raise Interrupted(STATE.received, trainer.global_step)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.pending is None:
            return
        if STATE.received is not None:  # no validation came: the batch-end checkpoint is the resume point
            self.commit()
            raise Interrupted(STATE.received, trainer.global_step)
        self.discard()  # a stop that Lightning overrode (min_steps, min_epochs): training goes on
        self.stopped = False

    def commit(self) -> None:
        """Make a pending signal-time checkpoint last.ckpt (Lightning stopped the loop itself, on SIGTERM)."""
        if self.pending is not None:
            self.pending.replace(self.pending.with_name("last.ckpt"))
            self.pending = None

    def discard(self) -> None:
        if self.pending is not None:
            self.pending.unlink(missing_ok=True)
            self.pending = None
