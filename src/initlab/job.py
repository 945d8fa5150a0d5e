"""One job: claim its dir, check the config, resume or start, fit, evaluate, and leave its record.

The Hydra entry point (initlab.cli) calls `run` once per run or sweep job, with what it needs from Hydra
in a `Job`; nothing here reads Hydra's global state.
"""

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from initlab import checks, resume, rundir
from initlab.errors import CheckpointError, InitLabError
from initlab.record import identity, read_metrics, write_json_atomic
from initlab.signals import STATE, Interrupted, sweep_interrupted

log = logging.getLogger(__name__)
DIVERGED_FACTOR = 2.0  # a training loss ending above this many times its start marks the run "diverged"


@dataclass
class Job:
    out: Path  # the run dir
    choices: dict[str, Any]  # the config group choices (Hydra's runtime.choices)
    overrides: list[str] = field(default_factory=list)  # the command line's, as Hydra parsed them
    parallel_jobs: int = 1  # jobs running at once on this machine (joblib's n_jobs)
    sweep_dir: Path | None = None  # set in a multirun
    config_dirs: list[Path] = field(default_factory=list)  # where configs come from: their _target_s are trusted


def _checkpoint_path(cfg: DictConfig, job: Job, prior: dict[str, Any] | None) -> Path | None:
    """The checkpoint to resume or evaluate; None to start fresh (ckpt_path=last with none saved yet)."""
    if cfg.ckpt_path is None:
        return None
    if cfg.ckpt_path != "last":
        path = Path(cfg.ckpt_path)
        if not path.exists():
            raise CheckpointError(f"ckpt_path={cfg.ckpt_path!r} does not exist (a .ckpt path, or last to resume)")
        return path
    if not cfg.train:
        raise CheckpointError("ckpt_path=last resumes training in this run dir; to evaluate, give the path: "
                              "train=false ckpt_path=RUN_DIR/checkpoints/last.ckpt")  # fmt: skip
    path = job.out / "checkpoints" / "last.ckpt"
    if path.is_file():
        return path
    earlier = [o for o in (prior or {}).get("overrides", []) if not resume.resumable(o)]
    if prior is not None and earlier != [o for o in job.overrides if not resume.resumable(o)]:
        again = " ".join(earlier) or "(none)"
        raise CheckpointError(f"{job.out} holds a {prior.get('status')} run with no checkpoint to resume; start it "
                              f"again with its own overrides: {again} ckpt_path=last")  # fmt: skip
    log.info("ckpt_path=last: no checkpoint in %s yet; starting fresh", path.parent)
    return None


def run(cfg: DictConfig, job: Job) -> dict[str, Any]:
    """Run one job; leaves metrics.json with a status in the dir it claimed. A run dir's earlier record is kept
    when this command fails before training (a refused resume must not erase what it refused to touch)."""
    start = time.perf_counter()
    resuming = rundir.resumes(cfg.get("ckpt_path"), cfg.get("train", True), job.out)
    job.out = rundir.claim(job.out, "hydra.run.dir", explicit=True, resuming=resuming)
    prior = read_metrics(job.out)
    record: dict[str, Any] = {"status": "failed", "overrides": list(job.overrides)}
    state, write = None, True
    try:
        record.update(identity(cfg, job.choices))
        if job.sweep_dir is not None and sweep_interrupted(job.sweep_dir):
            record.update(status="not run", error="the sweep was interrupted before this job started")
            return record
        checks.validate(cfg)
        checks.single_choices(job.choices)
        ckpt = _checkpoint_path(cfg, job, prior)
        from initlab.fit import execute  # torch and Lightning from here on

        result, state = execute(cfg, job, ckpt)
        if result is None:  # a finished run asked to resume: its record stays as it is
            write = False
            return record
        record = result
        if STATE.received:  # noted during the final validation or test: the numbers are whole, the run was stopped
            raise Interrupted(STATE.received, record["steps"])
    except Interrupted as e:
        record.update(status="interrupted", signal=e.name, error=f"stopped by {e.name}", steps=e.step)
        raise
    except BaseException as e:
        record["error"] = str(e) if isinstance(e, InitLabError) else f"{type(e).__name__}: {e}"
        write = prior is None or (state is not None and state.trained)  # keep the earlier record
        raise
    finally:
        if write and not rundir.secondary_rank():  # under DDP, rank 0 writes the record
            record["wall_time_s"] = round(time.perf_counter() - start + (state.prior_s if state else 0.0), 3)
            _write_record(job.out, record)
        if job.sweep_dir is not None:
            rundir.release(job.out)
    return record


def _write_record(out: Path, record: dict[str, Any]) -> None:
    try:
        write_json_atomic(out / "metrics.json", record)
    except InitLabError as e:
        log.error("%s", e)


def judge(record: dict[str, Any], first_loss: float | None, diverged: bool) -> None:
    """Set status: "diverged" (NaN/inf, or the loss ended far above its start, with the reason) or "ok"."""
    loss = record.get("train/loss")
    evaluated = [record.get(k) for k in ("val/loss", "test/loss")]
    if diverged or any(v is not None and not math.isfinite(v) for v in [loss, *evaluated]):
        record.update(status="diverged", reason="the training loss became NaN or inf")
    elif loss is not None and first_loss is not None and loss > DIVERGED_FACTOR * first_loss:
        record.update(status="diverged", reason=f"train/loss rose from {first_loss:.4g} to {loss:.4g}")
    else:
        record["status"] = "ok"
