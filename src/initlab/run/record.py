"""The run's record, metrics.json: what identifies the run, how it ended, and its numbers.

`Record` holds it while the run goes: "failed" until the run ends well, written whole when the run ends, whatever
happens, except where writing would erase what it must not (a refused resume keeps the run's own record) or
leave a result-looking file for a mistake (a single run that failed before training leaves nothing). A record
that cannot be written makes the run fail: a run never exits 0 without its record.
"""

import logging
import math
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from initlab.errors import InitLabError, OutputError
from initlab.files import not_a_file, read_json, write_json_atomic
from initlab.run.rundir import secondary_rank
from initlab.run.signals import Interrupted

log = logging.getLogger(__name__)
RUN_KEYS = ("init", "act", "model", "data", "optimizer", "scheduler", "seed")  # what identifies a run
RESULTS = ("test/acc", "val/acc", "val/acc_best", "train/loss")  # the HParams tab's metrics
DIVERGED_FACTOR = 2.0  # a training loss ending above this many times its start marks the run "diverged"


def identity(cfg: DictConfig, choices: dict[str, Any]) -> dict[str, Any]:
    """What identifies a run in its record: the choice of each studied group (its config file's name), the seed,
    and the mode: train, or evaluate a checkpoint."""
    seed, train = (OmegaConf.select(cfg, k, default=None, throw_on_resolution_failure=False) for k in ("seed", "train"))
    seed = OmegaConf.to_container(seed) if OmegaConf.is_config(seed) else seed  # plain, even when it is bad
    plain = {k: choices.get(k) for k in RUN_KEYS if k != "seed"}
    named = {k: v if v is None or isinstance(v, str) else str(v) for k, v in plain.items()}
    return named | {"seed": seed, "mode": "evaluate" if train is False else "train"}


def hparams(cfg: DictConfig, record: dict[str, Any]) -> dict[str, Any]:
    """Flat hyperparameters for TensorBoard's HParams tab (it ticks the first five in name order): the run's
    choices, lr and batch size, and the model's depth and width where it has them."""
    shape = {k: OmegaConf.select(cfg, f"model.{k}", default=None) for k in ("depth", "width")}
    return {**{k: record.get(k) for k in (*RUN_KEYS, "mode")}, "lr": cfg.optimizer.lr,
            "batch_size": cfg.data.batch_size, **{k: v for k, v in shape.items() if v is not None}}  # fmt: skip


def judge(record: dict[str, Any], first_loss: float | None, diverged: bool, stopped: str | None) -> None:
    """Set status: "diverged" (NaN/inf, or the loss ended far above its start, with the reason), "stopped" (it
    ended before its planned length: trainer.max_time, a callback), or "ok"."""
    loss = record.get("train/loss")
    evaluated = [record.get(k) for k in ("val/loss", "test/loss")]
    if diverged or any(v is not None and not math.isfinite(v) for v in [loss, *evaluated]):
        record.update(status="diverged", reason="the training loss became NaN or inf")
    elif loss is not None and first_loss is not None and loss > DIVERGED_FACTOR * first_loss:
        record.update(status="diverged", reason=f"train/loss rose from {first_loss:.4g} to {loss:.4g}")
    elif stopped:
        record.update(status="stopped", reason=stopped)
    else:
        record["status"] = "ok"


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """A run dir's metrics.json, or None when it has none, or it is not a plain file holding a JSON object."""
    found = read_json(run_dir / "metrics.json")
    return found if isinstance(found, dict) else None


class Record:
    """The run's metrics.json, kept while the run goes (a context manager around the run's steps)."""

    def __init__(self, out: Path, cfg: DictConfig, job: Any) -> None:
        if not_a_file(out / "metrics.json", follow=False) == "a directory":  # found now, not after training
            raise OutputError(f"{out / 'metrics.json'} is a directory; the run's record goes there: remove it")
        self.out, self.sweep_job = out, job.sweep_dir is not None
        self.prior = read_metrics(out)  # a run's earlier record, when this command resumes (or refuses to)
        self.started, self.prior_s = time.perf_counter(), 0.0
        self.data: dict[str, Any] = {"status": "failed", "overrides": list(job.overrides), **identity(cfg, job.choices)}
        self.state: Any = None  # the run's RunState once built: it knows whether this segment trained
        self.write = True

    def __enter__(self) -> "Record":
        return self

    def begin(self, plan: Any) -> None:
        """The run's identity and time so far: the checkpoint's when it resumes or evaluates one."""
        self.data.update(identity(plan.cfg, plan.choices), overrides=list(plan.overrides))
        self.prior_s = plan.prior_s

    def watch(self, state: Any) -> None:
        self.state = state

    def not_run(self, why: str) -> dict[str, Any]:
        self.data.update(status="not run", error=why)
        return self.data

    def keep(self) -> dict[str, Any]:
        """A finished run asked to resume: its record stays as it is."""
        self.write = False
        return self.prior or {}

    def finish(self, results: dict[str, Any]) -> dict[str, Any]:
        self.data = {**results, "overrides": self.data["overrides"]}
        return self.data

    def __exit__(self, kind: type | None, error: BaseException | None, tb: Any) -> None:
        if error is not None:
            self._failed(error)
        if not self.write or secondary_rank():  # under DDP, rank 0 writes the record
            return
        self.data["wall_time_s"] = round(time.perf_counter() - self.started + self.prior_s, 3)
        try:
            write_json_atomic(self.out / "metrics.json", self.data)
        except OutputError as e:
            if error is None:
                raise  # the run's numbers exist but not its record: it failed
            error.add_note(f"no record was left either ({e})")  # one line: the error that ended the run, then this

    def _failed(self, error: BaseException) -> None:
        if isinstance(error, Interrupted):
            self.data.update(error.results)
            self.data.update(
                status="interrupted", signal=error.name, error=f"stopped by {error.name}", steps=error.step
            )
            return
        self.data["error"] = str(error) if isinstance(error, InitLabError) else f"{type(error).__name__}: {error}"
        trained = self.state is not None and self.state.trained
        # keep an earlier record (a refused resume); a single run's mistake before training leaves no record
        self.write = trained or (self.prior is None and self.sweep_job)
