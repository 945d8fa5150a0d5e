"""The Hydra entry point and its error policy: `python train.py ...` and `initlab-train ...` run `main`.

    python train.py init=kaiming act=relu                              # one run -> outputs/<date>/<time>_.../
    python train.py -m init=normal,lecun,xavier,kaiming act=tanh,relu  # grid -> outputs/multirun/<date>/<time>/<job>/
    python train.py data.data_dir=../shared/data                       # use an existing MNIST copy (offline)
    tensorboard --logdir outputs

Bad input and faults the user can fix end in one line on stderr and exit status 1; a signal ends a run with
its record saying so and exit status 128 + the signal's number.
"""

import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from initlab.errors import InitLabError, describe
from initlab.run import overrides as parsed
from initlab.run import rundir, signals
from initlab.run.job import Job, run

log = logging.getLogger(__name__)
STARTED = False  # set when Hydra first calls the task: errors before it are the command line's or a config's
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")  # shipped inside the package: works from any install


def _parallel_jobs(hydra_cfg: DictConfig) -> int:
    """How many jobs the launcher runs at once on this machine (joblib's n_jobs; 1 for a single run)."""
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return 1
    n_jobs = OmegaConf.select(hydra_cfg, "launcher.n_jobs", default=None) or 1
    if n_jobs < 0:  # joblib's -1 means one job per core
        from initlab.run.build import usable_cores

        return usable_cores()
    return n_jobs


def job_from_hydra(hydra_cfg: DictConfig) -> Job:
    """Everything a job needs from Hydra, read once here."""
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    return Job(
        out=Path(hydra_cfg.runtime.output_dir),
        choices=dict(hydra_cfg.runtime.choices),
        overrides=parsed.listed(hydra_cfg.overrides.task),
        parallel_jobs=_parallel_jobs(hydra_cfg),
        sweep_dir=Path(hydra_cfg.sweep.dir).absolute() if multirun else None,
        config_dirs=[Path(s.path) for s in hydra_cfg.runtime.config_sources if s.schema == "file"],
    )


def _one_line(e: BaseException, where: Path) -> str:
    notes = "".join(f"; {note}" for note in getattr(e, "__notes__", []))  # e.g. that no record could be written
    if isinstance(e, OSError):  # a fault outside our writers (a logger's file, say): what failed, where
        return f"{os.fsdecode(e.filename) if e.filename else where}: {e.strerror or e}{notes}"
    return f"{e}{notes}"


def disk_fault(e: BaseException) -> OSError | None:
    """The OSError (a full disk, a dir gone) behind an exception a library raised for it, with `e`'s notes."""
    cause = e.__cause__ or e.__context__
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None and cause is not e:
        for note in getattr(e, "__notes__", []):  # e.g. that no record could be written either
            cause.add_note(note)
    return cause


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def task(cfg: DictConfig) -> float:
    """One run or one sweep job; returns val/acc, what a sweeper (e.g. Optuna) maximises."""
    global STARTED
    STARTED = True
    hydra_cfg = HydraConfig.get()
    job = job_from_hydra(hydra_cfg)
    signals.install()  # also in sweep workers, which never ran main()
    pid_file = None
    if job.sweep_dir is not None:
        signals.STATE.sweep_dir = job.sweep_dir
        pid_file = signals.register_job(job.sweep_dir)
    try:
        try:
            return run(cfg, job).get("val/acc", float("nan"))
        except Exception as e:  # a disk fault a library wrapped (Lightning's logging turns it into a ValueError)
            fault = None if isinstance(e, InitLabError | OSError) else disk_fault(e)  # ours already say what failed
            if fault is None:
                raise
            raise fault from e
    except signals.Interrupted:
        if job.sweep_dir is None:
            raise  # main() exits with 128 + the signal
        return float("nan")  # the record says "interrupted"; the sweep skips what is left and says so
    except (InitLabError, OSError) as e:
        if job.sweep_dir is None:
            log.error("%s", _one_line(e, job.out))
            sys.exit(1)
        line = _one_line(e, job.out)
        log.error("job failed: %s", line)
        signals.mark_failed(job.sweep_dir, job.out, line)  # the summary lists it, the sweep exits 1
        return float("nan")
    except Exception as e:
        if job.sweep_dir is None:
            raise  # a bug: the traceback is what helps
        log.error("job failed: %s", e, exc_info=True)
        signals.mark_failed(job.sweep_dir, job.out, describe(e))
        return float("nan")
    finally:
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)


def hydra_error_line(e: BaseException) -> str:
    """Hydra's multi-line composition errors (unknown choice, misspelt key, bad syntax) as one line."""
    options = getattr(e, "options", None)  # MissingConfigException: the choices there are
    lines = [line.strip().rstrip(".") for part in (e, e.__cause__) if part for line in str(part).splitlines()]
    lines = [line for line in lines if line and not line.startswith(("Available options", "Config search path",
             "provider=", "full_key:", "object_type=", "See https://")) and line not in (options or [])]  # fmt: skip
    message = "; ".join(dict.fromkeys(lines))
    if isinstance(e, OverrideParseException):
        message = f"cannot parse the command line: {message}"
    return message + (f"; choose one of: {', '.join(options)}" if options else "")


def group_value(e: BaseException) -> str | None:
    """Hydra's "Config group override must be a string or a list. Got int" names no key: the command line's
    `act=null`, `init=1` or `data=255` (a user's 255.yaml, read as a number) does."""
    if "Config group override must be" not in str(e):
        return None
    try:
        given = parsed.given(a for a in sys.argv[1:] if not a.startswith("-"))
    except Exception:  # the command line did not parse: Hydra's own line says so
        return None
    groups = {d.name for d in Path(CONF_DIR).iterdir() if d.is_dir()}
    for key, value in given.items():
        if (key in groups or "/" in key) and not isinstance(value, str | list):
            shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            return (f"{key}={shown} is not allowed: a config group takes one of its files' names (a name that reads "
                    f"as a number or a flag is quoted: {key}='{shown}')")  # fmt: skip
    return None


def missing_searchpath(argv: list[str]) -> str | None:
    """A hydra.searchpath entry on the command line that is not there (Hydra only warns, and then cannot find the
    choice that lives there), as one line naming it; None when every entry exists."""
    import importlib.util

    try:
        paths = parsed.given(a for a in argv if not a.startswith("-")).get("hydra.searchpath") or []
    except Exception:  # the command line did not parse: Hydra's own line says so
        return None
    for entry in paths if isinstance(paths, list) else [paths]:
        scheme, _, where = str(entry).partition("://")
        if scheme == "file" and not Path(where).is_dir():
            return f"hydra.searchpath: {entry} is not a directory; give file://DIR of a dir that holds config groups"
        if scheme == "pkg":
            top = where.split("/")[0].split(".")[0]  # the package to import: pkg://mypkg.conf -> mypkg
            try:
                found = importlib.util.find_spec(top) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return f"hydra.searchpath: {entry}: no package {top!r} to import (pkg://PACKAGE.conf)"
    return None


def _thread_error(args: threading.ExceptHookArgs) -> None:
    """A writer thread's disk fault (TensorBoard's event writer on a full disk) goes to the log file, not the
    console: the run's own error line names it. Anything else keeps Python's traceback."""
    if isinstance(args.exc_value, OSError):
        log.debug("thread %s: %s", args.thread.name if args.thread else "?", describe(args.exc_value))
    else:
        threading.__excepthook__(args)


def main() -> None:
    signals.install()
    threading.excepthook = _thread_error
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # Hydra raises its errors to us, which we make one line
    logging.raiseExceptions = False  # a log file on a full disk must not print a traceback per line
    missing = missing_searchpath(sys.argv[1:])
    if missing:
        print(f"cannot start: {missing}", file=sys.stderr)
        sys.exit(1)
    try:
        task()
    except signals.Interrupted as e:
        log.error("%s", e)
        sys.exit(e.exit_code)
    except HydraException as e:
        rundir.discard_all()  # a sweep whose job could not be composed (`-m act=relu,bogus`), before any job ran
        print(hydra_error_line(e), file=sys.stderr)
        sys.exit(1)
    except Exception as e:
        if signals.STATE.sweep_dir is not None:  # the launcher or sweeper broke (a worker killed, say)
            summarise_broken_sweep(signals.STATE.sweep_dir, e, signals.STATE.summarise)
        if STARTED:
            raise  # a bug in a job: the traceback is what helps
        # before any job ran: Hydra composing the config (a bad value for a group, broken YAML, a log file that
        # cannot be opened), so it is the command line or a config file
        held = list(rundir.HELD)
        where = f" (setting up {held[0]})" if isinstance(e, OSError) and not e.filename and held else ""
        rundir.discard_all()  # nothing that looks like a run is left
        print(f"cannot start: {group_value(e) or hydra_error_line(e) or type(e).__name__}{where}", file=sys.stderr)
        sys.exit(1)


def summarise_broken_sweep(sweep_dir: Path, e: Exception, summarise: Callable[[Path], object] | None) -> None:
    """A sweep its launcher could not finish: say why, and summarise what ran (the rest listed as not run) with the
    sweep's own summary writer (handed down by its callback, so the run machinery imports no reporting)."""
    log.error("sweep stopped: %s", describe(e))
    if any(sweep_dir.glob("*/.hydra")):
        if summarise is None:  # a sweep without the summary callback
            sys.exit(1)
        try:
            summarise(sweep_dir)
            log.error("its summary lists the jobs that did not finish: %s", sweep_dir / "summary.md")
        except Exception as s:
            log.error("could not write the sweep's summary: %s", describe(s))
    else:
        rundir.discard_all()  # no job began: no sweep dir is left
    sys.exit(1)


if __name__ == "__main__":
    main()
