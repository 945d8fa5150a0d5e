"""One run, one directory: a run dir is claimed with a lock before anything is written into it.

A default run dir (a timestamp) that is taken gets a suffix (-1, -2, ...); one given on the command line
(hydra.run.dir=..., hydra.sweep.dir=...) is refused when another process holds it, or when it already holds
another run's record and the command does not resume it (ckpt_path=...).
"""

import fcntl
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

from initlab.errors import OutputError
from initlab.record import parse_overrides

log = logging.getLogger(__name__)
LOCK = ".lock"  # holds "pid N on HOST" while a process runs in the dir
HELD: dict[Path, int] = {}  # dirs this process holds -> the lock's file descriptor (released when it exits)


def unwritable_reason(path: Path) -> str | None:
    """Why `path` cannot be created or written, or None if it can."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{str(existing)!r} is a file"
    return None if os.access(existing, os.W_OK | os.X_OK) else f"{str(existing)!r} is not writable"


def holds_run(path: Path) -> str | None:
    """What in `path` is another run's record (metrics, checkpoints, event files, a summary), or None."""
    for pattern in ("metrics.json", "summary.csv", "checkpoints/*.ckpt", "events.out.tfevents.*", "*/metrics.json"):
        found = next(path.glob(pattern), None)
        if found is not None:
            return str(found.relative_to(path))
    return None


def _lock(path: Path) -> int | None:
    """Take the dir's lock without waiting: its fd, or None if another process holds it."""
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
    return fd


def secondary_rank() -> bool:
    """A DDP process other than global rank 0 (Lightning starts them with these variables set)."""
    return any(os.environ.get(v, "0") != "0" for v in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID"))


def claim(path: Path, key: str, *, explicit: bool, resuming: bool) -> Path:
    """Lock `path` (or, when it is a default dir that is taken, the first free `path-N`) for this process.

    DDP processes of rank > 0 share rank 0's dir and take no lock: rank 0 holds it for them all.
    """
    path = path.absolute()
    if path in HELD or secondary_rank():
        return path
    for n in range(1000):
        candidate = path if n == 0 else path.with_name(f"{path.name}-{n}")
        reason = unwritable_reason(candidate)
        if reason:
            raise OutputError(f"{key}={str(path)!r} cannot be created: {reason}; choose another with {key}=...")
        try:
            candidate.mkdir(parents=True, exist_ok=True)
            fd = _lock(candidate)
        except OSError as e:
            raise OutputError(f"{key}={str(path)!r} cannot be created: {e.strerror or e}") from e
        if fd is None:
            if explicit:
                owner = (candidate / LOCK).read_text().strip() or "another process"
                raise OutputError(f"{key}={str(path)!r} is in use by {owner}; wait for it or choose another dir")
            continue
        other = None if resuming else holds_run(candidate)
        if other is None:
            HELD[candidate] = fd
            return candidate
        os.close(fd)
        if explicit:
            raise OutputError(f"{key}={str(path)!r} already holds a run ({other}); resume it with ckpt_path=last, "
                              f"or choose another {key}=...")  # fmt: skip
    raise OutputError(f"{key}={str(path)!r}: no free directory beside it")


def release(path: Path) -> None:
    fd = HELD.pop(path.absolute(), None)
    if fd is not None:
        os.close(fd)


def resumes(ckpt_path: str | None, train: bool, run_dir: Path) -> bool:
    """Whether a command continues the run in `run_dir`: training from its own checkpoint (ckpt_path=last, or a
    path inside it). Evaluating, or resuming another run's checkpoint, into a dir that holds a run is refused."""
    if not ckpt_path or not train:
        return False
    return ckpt_path == "last" or run_dir.absolute() in Path(ckpt_path).absolute().parents


def _given(config: DictConfig, key: str) -> bool:
    return key in parse_overrides(list(config.hydra.overrides.hydra))


class ClaimRunDir(Callback):
    """Hydra callback: claim the run (or sweep) dir before Hydra writes into it; refuse in one line."""

    def _claim(self, config: DictConfig, key: str) -> None:
        node = config.hydra.run if key == "hydra.run.dir" else config.hydra.sweep
        if key == "hydra.sweep.dir":  # each job resumes its own dir with ckpt_path=last
            resuming = config.get("ckpt_path") == "last"
        else:
            resuming = resumes(config.get("ckpt_path"), config.get("train", True), Path(node.dir))
        try:
            path = claim(Path(node.dir), key, explicit=_given(config, key), resuming=resuming)
        except OutputError as e:
            log.error("%s", e)
            sys.exit(1)  # Hydra turns a callback's exception into a warning; only exit stops it
        with read_write(node), open_dict(node):
            node.dir = str(path)  # the free dir claimed, which Hydra then creates the run in

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config, "hydra.sweep.dir")
