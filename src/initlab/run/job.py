"""One run, top to bottom: check the config, claim the run dir, resume or start, build, fit, evaluate, record.

The Hydra entry point (initlab.run.cli) calls `run` once per run or sweep job, with what it needs from Hydra in
a `Job`; nothing here reads Hydra's global state. Each step is one call into this package (the machinery) or
the science it builds (initlab.module, initlab.models, initlab.data, ...); the config goes down, step by step.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from initlab.run import build, checks, evaluate, fit, resume, rundir
from initlab.run.record import Record
from initlab.run.signals import sweep_interrupted


@dataclass
class Job:
    out: Path  # the run dir
    choices: dict[str, Any]  # the config group choices (Hydra's runtime.choices)
    overrides: list[str] = field(default_factory=list)  # the command line's, as Hydra parsed them
    parallel_jobs: int = 1  # jobs running at once on this machine (joblib's n_jobs)
    sweep_dir: Path | None = None  # set in a multirun
    config_dirs: list[Path] = field(default_factory=list)  # where configs come from: their _target_s are trusted


def run(cfg: DictConfig, job: Job) -> dict[str, Any]:
    """Run one job; -> its record, which it also leaves in its dir as metrics.json."""
    with (
        rundir.claimed(job.out, resuming=rundir.resumes(cfg, job.out), sweep_job=job.sweep_dir is not None) as out,
        Record(out, cfg, job) as record,
    ):
        checks.validate(cfg, job.overrides)  # bad input: one line, before torch loads (a single run's was checked
        if job.sweep_dir is not None and sweep_interrupted(job.sweep_dir):  # before Hydra made its dir)
            return record.not_run("the sweep was interrupted before this job started")
        plan = resume.plan(cfg, job, out)  # this command's config, or the checkpoint's it resumes or evaluates
        record.begin(plan)
        if plan.finished:
            return record.keep()  # a finished run asked to resume: its record stays, nothing to do
        with resume.blamed(plan, job.overrides):  # a refused value the checkpoint gave says so
            parts = build.build(plan, job)  # data, model, Trainer: torch and Lightning load here
            record.watch(parts.state)  # from here on a failure is the run's, and its record says so
            fitted = fit.fit(parts, plan)  # train, unless train=false; a signal stops it where a resume is exact
            return record.finish(evaluate.evaluate(parts, plan, fitted))  # the final weights on val and test
