"""SIGTERM (SLURM time-outs, preemption, `kill`), SIGINT (Ctrl-C), SIGHUP (a closed terminal or ssh session) and
SIGUSR1 (SLURM's `--signal=USR1@secs` warning before a time limit; uncaught, it would kill the process) end a run
with a record that says so, and exit status 128 + the signal's number.

The handler only notes the signal; the job stops at the next safe point: the start of training, the end of a
batch or of its validation (where a checkpoint resumes exactly: initlab.run.runstate.RunState), or the end of the
run. A second signal, seconds later, stops it at once.
In a sweep the parent notes the signal, forwards it to the jobs running in other processes (joblib workers)
and leaves a marker so that jobs not yet started skip themselves; the summary then lists them as not run.
"""

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from initlab.files import not_a_file, write_atomic

log = logging.getLogger(__name__)
HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
MARKER = ".interrupted"  # in a sweep dir: the sweep was interrupted; holds the signal's name
JOBS = ".jobs"  # in a sweep dir: a pid file for each job running, so an interrupted parent can forward signals
FAILED = ".failed"  # in JOBS: a job of the sweep's last run that failed; holds why


class Interrupted(BaseException):
    """A run stopped by a signal. BaseException, like KeyboardInterrupt: `except Exception` lets it through."""

    def __init__(self, signum: int, step: int | None = None, results: dict | None = None) -> None:
        self.signum, self.step = signum, step  # step: where training stopped, if it had started
        self.results = results or {}  # the numbers, when the signal came after the final test had run
        super().__init__(f"interrupted by {self.name}")

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process killed by that signal


@dataclass
class SignalState:
    received: int | None = None  # the first signal this process got
    received_at: float = 0.0
    sweep_dir: Path | None = None  # in a sweep: where to mark it interrupted; its JOBS dir lists running jobs
    summarise: Callable[[Path], object] | None = None  # in a sweep: its summary writer, set by its summary callback

    def handle(self, signum: int, frame: object) -> None:
        first = self.received is None
        if first:
            self.received, self.received_at = signum, time.monotonic()
            log.warning("received %s: stopping at the next safe point", signal.Signals(signum).name)
            self._mark_sweep(signum)
        # Noted only: the job stops at the next point where that is safe and resumable (training's start, a batch
        # end, a validation's end, the end of the run). Raising here could land inside an import or a C call.
        # A second signal means "now", unless it is the same event arriving twice (Ctrl-C reaches a whole process
        # group, and a sweep parent forwards what it gets to its jobs).
        if not first and time.monotonic() - self.received_at > 2.0:
            raise Interrupted(self.received)

    def _mark_sweep(self, signum: int) -> None:
        if self.sweep_dir is None:
            return
        try:
            (self.sweep_dir / MARKER).write_text(signal.Signals(signum).name + "\n")
        except OSError as e:
            log.error("could not mark %s as interrupted: %s", self.sweep_dir, e)
        for pid_file in (self.sweep_dir / JOBS).glob("*.pid"):
            pid = int(pid_file.stem)
            if pid != os.getpid():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)  # a job in another process: it records "interrupted" itself


STATE = SignalState()


def install() -> None:
    """Route the HANDLED signals through STATE (main thread only, as Python requires: elsewhere, a no-op)."""
    try:
        for s in HANDLED:
            signal.signal(s, STATE.handle)
    except ValueError:
        log.debug("not the main thread: signals keep their handlers")


def register_job(sweep_dir: Path) -> Path | None:
    """Note this process in the sweep's job registry, so an interrupted sweep parent can forward signals to it."""
    jobs = sweep_dir / JOBS
    try:
        jobs.mkdir(exist_ok=True)
        pid_file = jobs / f"{os.getpid()}.pid"
        pid_file.touch()
        return pid_file
    except OSError:
        return None


def mark_failed(sweep_dir: Path, job_dir: Path, why: str) -> None:
    """Note in the sweep's registry that this job failed: its dir may hold an older record, or none it could write,
    and the sweep must still say so."""
    try:
        (sweep_dir / JOBS).mkdir(exist_ok=True)
        write_atomic(sweep_dir / JOBS / f"{job_dir.name}{FAILED}", why + "\n")
    except OSError as e:  # a full disk: the job's own line said why it failed
        log.error("could not note in %s that %s failed: %s", sweep_dir, job_dir.name, e)


def failed_jobs(sweep_dir: Path) -> dict[str, str]:
    """The jobs of the sweep's last run that failed: {job dir name: why}."""
    found = {}
    for mark in (sweep_dir / JOBS).glob(f"*{FAILED}"):
        if not_a_file(mark, follow=False) is None:  # a link is not the sweep's own: never followed
            with contextlib.suppress(OSError, UnicodeDecodeError):
                found[mark.name.removesuffix(FAILED)] = mark.read_text().strip()
    return found


def clear_sweep_marks(sweep_dir: Path) -> None:
    (sweep_dir / MARKER).unlink(missing_ok=True)
    for mark in [*(sweep_dir / JOBS).glob("*.pid"), *(sweep_dir / JOBS).glob(f"*{FAILED}")]:
        mark.unlink(missing_ok=True)


def sweep_interrupted(sweep_dir: Path) -> str | None:
    """The signal that interrupted the sweep in sweep_dir (its name), or None."""
    marker = sweep_dir / MARKER
    return marker.read_text().strip() or "SIGTERM" if marker.is_file() else None
