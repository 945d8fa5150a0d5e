"""The LightningModule: a classifier built from plain-value hparams, the chosen configs as dicts.

init, act, optimizer and scheduler are `_target_` configs stored as plain values (so checkpoints load with
torch's `weights_only` unpickler) and instantiated here, not pickled.
"""

import math
import time
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torchmetrics import MeanMetric

from initlab.errors import ConfigError, describe
from initlab.inits import apply_init, calibrate

STAGES = ("val", "test")


def _eval_metrics() -> torch.nn.ModuleDict:
    """Per-sample means over a whole evaluation, exact under DDP (sum states, gathered once an epoch)."""
    metrics = {"acc": MeanMetric(), "loss": MeanMetric(nan_strategy=math.nan)}  # nan kept: a diverged loss shows
    return torch.nn.ModuleDict({k: m.set_dtype(torch.float64) for k, m in metrics.items()})


class Classifier(pl.LightningModule):
    def __init__(
        self,
        model: dict[str, Any],
        init: dict[str, Any],
        act: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        log_every_n_steps: int = 50,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)  # plain dicts only; the HParams tab gets a chosen few at the end
        self.net = instantiate(model, act=instantiate(act, _partial_=True))  # act(): a new activation module
        apply_init(self.net, init)
        self.metrics = torch.nn.ModuleDict({stage: _eval_metrics() for stage in STAGES})
        self.log_every_n_steps = log_every_n_steps
        self.val_history: list[list[float]] = []  # [[step, val acc], ...]: how fast each init learns
        self.diverged = False
        self.first_loss: float | None = None  # the training loss at step 0
        self.last_loss: float | None = None  # the last logged one (or the last step's): the record's train/loss
        self.step_loss: torch.Tensor | None = None  # the last step's, kept without a sync

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "Classifier":
        """Build from a composed config, keeping only plain containers of the hparam groups."""
        groups = ("model", "init", "act", "optimizer", "scheduler")
        plain = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in groups}
        return cls(**plain, log_every_n_steps=cfg.trainer.log_every_n_steps)

    def on_train_start(self) -> None:
        self.first_step_unix = time.time()  # start-up ends here: data loaded, loop about to run
        if self.global_step == 0 and self.hparams.init.get("calibrate"):  # data-dependent inits: once, never on resume
            x, _ = next(iter(self.trainer.datamodule.train_dataloader()))  # the first training batch, as the run's
            calibrate(self.net, self.hparams.init, x.to(self.device))
            with torch.no_grad():  # under DDP every process calibrated on its own batch: rank 0's weights for all
                for p in self.net.parameters():
                    p.copy_(self.trainer.strategy.broadcast(p.detach(), src=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # [B, C, H, W] images -> [B, classes] logits

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch  # [B, C, H, W], [B]
        try:
            logits = self(x)
        except Exception as e:  # a model's or activation's own code failing mid-run: one line naming them
            raise self.failed(stage, e) from e
        loss = F.cross_entropy(logits, y)
        if stage != "train":  # accumulated over the whole set: each sample counts once, whatever the batches
            self.metrics[stage]["acc"].update((logits.argmax(dim=1) == y).double())
            self.metrics[stage]["loss"].update(loss.detach().double(), weight=len(y))
            return loss
        if self.first_loss is None:
            self.first_loss = loss.item()  # where training started: a run that ends far above it diverged
        self.step_loss = loss.detach()
        if (self.global_step + 1) % self.log_every_n_steps:
            return loss  # log only on the steps the logger writes: self.log costs ~0.3 ms a call
        self.last_loss = loss.item()  # on logging steps only: a sync costs
        if not math.isfinite(self.last_loss):
            self.diverged = self.trainer.should_stop = True  # stop; metrics.json says "diverged"
        acc = (logits.argmax(dim=1) == y).float().mean()
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(y))
        self.log("train/acc", acc, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(y))
        return loss

    def failed(self, where: str, e: Exception) -> ConfigError:
        """The model's or activation's own code failing (in a stage, or the diagnostics): one line naming them."""
        model, act = self.hparams.model.get("_target_"), self.hparams.act.get("_target_")
        return ConfigError(f"the model ({model}, act {act}) failed in {where} at step {self.global_step}: "
                           f"{describe(e)}")  # fmt: skip

    def _end_evaluation(self, stage: str) -> float:
        """Log the stage's accuracy and loss over every sample (all ranks); -> the accuracy as logged."""
        acc, loss = (self.metrics[stage][k].compute().float() for k in ("acc", "loss"))  # float32, as logged
        for metric in self.metrics[stage].values():
            metric.reset()
        self.log(f"{stage}/loss", loss, prog_bar=True, on_epoch=True, sync_dist=False)  # already global
        self.log(f"{stage}/acc", acc, prog_bar=True, on_epoch=True, sync_dist=False)
        return acc.item()  # the same float32 the logger and metrics.json get

    def on_validation_epoch_end(self) -> None:
        acc = self._end_evaluation("val")
        if not self.trainer.sanity_checking and self.trainer.state.fn == "fit":
            self.val_history.append([self.global_step, acc])

    def on_test_epoch_end(self) -> None:
        self._end_evaluation("test")

    def on_train_end(self) -> None:
        if self.last_loss is None and self.step_loss is not None:  # fewer steps than trainer.log_every_n_steps
            self.last_loss = self.step_loss.item()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["val_history"] = [list(p) for p in self.val_history]  # the record survives a resume
        checkpoint["first_loss"], checkpoint["last_loss"] = self.first_loss, self.last_loss

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.val_history = [list(p) for p in checkpoint.get("val_history", [])]
        self.first_loss, self.last_loss = checkpoint.get("first_loss"), checkpoint.get("last_loss")

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")  # Lightning steps, clips, accumulates and schedules

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def configure_optimizers(self) -> Any:
        optimizer = instantiate(self.hparams.optimizer, _partial_=True)(self.parameters())
        sched = dict(self.hparams.scheduler or {})
        if not sched.get("scheduler"):
            return optimizer
        scheduler = instantiate(sched.pop("scheduler"), _partial_=True)(optimizer)
        # interval (epoch | step), frequency, monitor (ReduceLROnPlateau): Lightning's scheduler config keys. A
        # monitored val/ metric is missing until the first validation: the step is skipped then, with a warning
        if "monitor" in sched:
            sched.setdefault("strict", False)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "name": "lr", **sched}}
