"""One run, one directory: a run dir is claimed with a lock before anything is written into it.

A default run dir (a timestamp) that is taken gets a suffix (-1, -2, ...); one given on the command line
(hydra.run.dir=..., hydra.sweep.dir=...) is refused when another process holds it, or when it already holds
another run's record and the command does not resume it (ckpt_path=...). A dir that holds a link the run did not
make is refused, and a dir this process made for a run that failed before training is removed again.
"""

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from initlab.errors import ConfigError, InitLabError, OutputError, describe
from initlab.files import not_a_file
from initlab.run import checks
from initlab.run import overrides as parsed

log = logging.getLogger(__name__)
LOCK = ".lock"  # holds "pid N on HOST" while a process runs in the dir
RUN_FILES = ("metrics.json", "checkpoints/*.ckpt", "events.out.tfevents.*")  # what makes a dir a run's
SWEEP_FILES = ("multirun.yaml", "summary.csv", "*/metrics.json")  # what makes a dir a sweep's


@dataclass
class Claim:
    fd: int  # the lock's file descriptor: held until released or the process exits (even by kill -9)
    made: list[Path]  # the dirs this process created for it, innermost first: removed if the run leaves nothing


HELD: dict[Path, Claim] = {}  # dirs this process holds


def unwritable_reason(path: Path) -> str | None:
    """Why `path` cannot be created or written, or None if it can."""
    if path.is_symlink() and not path.exists():  # mkdir would say only "File exists"
        return f"{str(path)!r} is a symbolic link to {os.readlink(path)!r}, which does not exist"
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{str(existing)!r} is a file"
    return None if os.access(existing, os.W_OK | os.X_OK) else f"{str(existing)!r} is not writable"


def _first(path: Path, patterns: tuple[str, ...]) -> str | None:
    for pattern in patterns:
        found = next((p for p in path.glob(pattern) if p.is_file()), None)  # a dir named metrics.json is no record
        if found is not None:
            return str(found.relative_to(path))
    return None


def holds_run(path: Path) -> str | None:
    """What in `path` is a run's record (metrics, checkpoints, event files), or None."""
    return _first(path, RUN_FILES)


def holds_sweep(path: Path) -> str | None:
    """What in `path` makes it a sweep dir (multirun.yaml, a summary, jobs with records), or None."""
    return _first(path, SWEEP_FILES)


def planted(path: Path, depth: int) -> tuple[Path, str] | None:
    """Something inside `path` (down to `depth` levels) the run did not make and must not write through, and what
    it is: a symbolic link; a hard link (a plain file with another name: `.lock` and `train.log` are written in
    place, so the writes would land in the file outside); a FIFO, socket or device (opening a FIFO as `train.log`
    blocks until a reader comes)."""
    if not path.is_dir() or path.is_symlink():
        return None
    for entry in path.iterdir():
        kind = not_a_file(entry, follow=False)
        if kind == "a directory":
            found = planted(entry, depth - 1) if depth > 1 else None
            if found is not None:
                return found
        elif kind not in (None, "missing"):  # missing: gone since the listing
            return entry, kind
        elif entry.stat(follow_symlinks=False).st_nlink > 1:
            return entry, "a hard link (a file with another name elsewhere)"
    return None


def _lock(path: Path) -> int | None:
    """Take the dir's lock without waiting: its fd, or None if another process holds it. The lock file is never
    followed through a link (O_NOFOLLOW) and must be a plain file."""
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path / LOCK} is not a plain file")
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


def _mkdirs(path: Path) -> list[Path]:
    """mkdir -p; -> the dirs it created, innermost first."""
    made = []
    missing = path
    while not missing.exists() and missing != missing.parent:
        made.append(missing)
        missing = missing.parent
    path.mkdir(parents=True, exist_ok=True)
    return made


def _refuse(key: str, path: Path, candidate: Path, resuming: bool, explicit: bool) -> str | None:
    """Why `candidate` cannot hold this run (None if it can): a planted link, a sweep dir, another run's record."""
    for folder, what in (("checkpoints", "checkpoints"), (".hydra", "Hydra's copy of the run's config")):
        if (candidate / folder).exists() and not (candidate / folder).is_dir():
            return (
                f"{candidate / folder} is a file; the run needs a directory there ({what}): remove it or choose "
                "another dir"
            )
    if key == "hydra.run.dir" and (candidate / "multirun.yaml").exists():
        return (f"{key}={str(path)!r} is a sweep dir (multirun.yaml); resume its jobs with `-m` and the sweep's "
                f"own overrides, hydra.sweep.dir={path} ckpt_path=last, or choose another dir")  # fmt: skip
    single = key == "hydra.sweep.dir" and holds_run(candidate)  # a single run's own files, resumed or not
    if single:
        return (f"{key}={str(path)!r} holds a single run ({single}), not a sweep; choose another {key}=..."
                if explicit else "taken")  # fmt: skip
    other = None if resuming else holds_run(candidate) or holds_sweep(candidate)
    if other and explicit:
        what = "a sweep" if key == "hydra.sweep.dir" else "a run"  # a sweep run again resumes each of its jobs
        return (f"{key}={str(path)!r} already holds {what} ({other}); resume it with ckpt_path=last, or choose "
                f"another {key}=...")  # fmt: skip
    return "taken" if other else None


def given_dir(node: DictConfig, key: str) -> Path:
    """hydra.run.dir / hydra.sweep.dir as a path; an empty one (`hydra.run.dir=` or an unset shell variable) would be
    the working directory, so it is refused."""
    if not str(node.dir).strip():
        raise ConfigError(f"{key}={str(node.dir)!r} is empty; give a directory, or leave {key} out for the default")
    return Path(node.dir)


def whole(path: Path) -> Path:
    """One spelling of a dir (absolute, `.` and `..` taken out): Hydra hands the callback one and the job another,
    and a run must not find its own lock under the second (`r/x/./sub/../sub`)."""
    return Path(os.path.abspath(path))


def claim(path: Path, key: str, *, explicit: bool, resuming: bool) -> Path:
    """Lock `path` (or, when it is a default dir that is taken, the first free `path-N`) for this process.

    DDP processes of rank > 0 share rank 0's dir and take no lock: rank 0 holds it for them all.
    """
    path = whole(path)
    if path in HELD or secondary_rank():
        return path
    for n in range(1000):
        candidate = path if n == 0 else path.with_name(f"{path.name}-{n}")
        try:
            reason = unwritable_reason(candidate)
            if reason:
                raise OutputError(f"{key}={str(path)!r} cannot be created: {reason}; choose another with {key}=...")
            made = _mkdirs(candidate)
            found = planted(candidate, depth=3)  # before the lock: .lock itself may be one
            if found is not None:
                raise OutputError(f"{key}={str(path)!r} holds {found[0].relative_to(candidate)}, {found[1]} the run "
                                  "did not make; remove it or choose another dir")  # fmt: skip
            fd = _lock(candidate)
        except OutputError:
            raise
        except OSError as e:  # a name too long for the file system (ENAMETOOLONG), a read-only one, ...
            what = f"{Path(e.filename).name}: " if e.filename and Path(e.filename) != candidate else ""  # .lock
            raise OutputError(f"{key}={str(path)!r} cannot be used: {what}{e.strerror or e}") from e
        if fd is None:
            if explicit:
                owner = (candidate / LOCK).read_text().strip() or "another process"
                raise OutputError(f"{key}={str(path)!r} is in use by {owner}; wait for it or choose another dir")
            continue
        refusal = _refuse(key, path, candidate, resuming, explicit)
        if refusal is None:
            HELD[candidate] = Claim(fd, made)
            return candidate
        os.close(fd)
        if refusal != "taken":
            raise OutputError(refusal)
    raise OutputError(f"{key}={str(path)!r}: no free directory beside it")


def release(path: Path) -> None:
    held = HELD.pop(whole(path), None)
    if held is not None:
        os.close(held.fd)


def discard(path: Path) -> None:
    """Remove a dir this process made when nothing of a run is in it (a mistake found before training)."""
    held = HELD.get(whole(path))
    if held is None or not held.made or _first(path, ("metrics.json", "checkpoints/*.ckpt", "*/.hydra")):
        return  # a record, a checkpoint or a sweep's job is something to keep (an empty TensorBoard file is not)
    release(path)
    shutil.rmtree(held.made[0], ignore_errors=True)
    for parent in held.made[1:]:  # the date dir of outputs/<date>/<time>, if it was made for this run alone
        with contextlib.suppress(OSError):
            parent.rmdir()


def discard_all() -> None:
    """discard() every dir this process holds (Hydra failed before the run began)."""
    for path in list(HELD):
        discard(path)


@contextlib.contextmanager
def claimed(path: Path, *, resuming: bool, sweep_job: bool) -> Iterator[Path]:
    """The run's dir, claimed (by the Hydra callback already, or now) for the block. A mistake (an exception other
    than a signal) before anything of a run was written removes a dir this process made; a sweep job's dir,
    which Hydra made and the summary reads, stays with its record."""
    out = claim(path, "hydra.run.dir", explicit=True, resuming=resuming)
    try:
        yield out
    except Exception:
        if not sweep_job:
            discard(out)
        raise
    finally:
        if sweep_job:
            release(out)


def resumes(cfg: DictConfig, run_dir: Path) -> bool:
    """Whether a command continues the run in `run_dir`: training from its own checkpoint (ckpt_path=last, or a
    path inside it). Evaluating, or resuming another run's checkpoint, into a dir that holds a run is refused."""
    ckpt_path = OmegaConf.select(cfg, "ckpt_path", default=None, throw_on_resolution_failure=False)
    train = OmegaConf.select(cfg, "train", default=True, throw_on_resolution_failure=False)
    if not isinstance(ckpt_path, str) or not ckpt_path or train is not True:
        return False
    return ckpt_path == "last" or run_dir.absolute() in Path(ckpt_path).absolute().parents


def _exit(e: Exception) -> None:
    key = getattr(e, "full_key", None)  # OmegaConf's errors span 3-4 lines, the key on one of them
    log.error("%s", e if isinstance(e, InitLabError) else f"{key}: {describe(e)}" if key else describe(e))
    sys.exit(1)  # Hydra turns a callback's exception into a warning; only exit stops it


def _given(config: DictConfig, key: str) -> bool:
    return key in parsed.given(parsed.listed(config.hydra.overrides.hydra))


def shared_job_dirs(config: DictConfig) -> str | None:
    """Two jobs of this sweep that would be the same run (a value given twice, quoted or not) or share a dir (a
    fixed hydra.sweep.subdir, or values of a key that is left out of dir names), as one line; None when every
    job is its own run in its own dir."""
    if config.hydra.runtime.choices.get("hydra/sweeper") != "basic":
        return None  # another sweeper's own scheme (Optuna asks for its trials one by one)
    subdir = str(OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir", ""))
    node = OmegaConf.select(config, "hydra.sweeper.params", default=None)
    params = OmegaConf.to_container(node, resolve=False) if node is not None else {}
    items = [f"{k}={v}" for k, v in params.items()] + parsed.listed(config.hydra.overrides.task)
    try:
        jobs = parsed.expand(items)
    except HydraException:  # glob(...) sweeps expand against the config groups, which only Hydra's sweeper reads
        return None
    if len(jobs) > 1 and "${" not in subdir:
        return (f"hydra.sweep.subdir={subdir!r} puts all {len(jobs)} jobs of this sweep in one dir; leave it out (a "
                "dir per job, named by its overrides) or make it differ per job, e.g. ${hydra.job.num}")  # fmt: skip
    swept = set(parsed.keys(parsed.sweeps(items)))
    same_run = _first_twice(jobs, lambda job: tuple(sorted((o.get_key_element(), repr(o.value()))
                                                           for o in parsed.parse(job))))  # fmt: skip  # 'relu' = relu
    if same_run:
        return (f"two jobs of this sweep would be the same run: {_swept(same_run[0], swept)} and "
                f"{_swept(same_run[1], swept)} (a value given twice); give each value once")  # fmt: skip
    spec = config.hydra.job.config.override_dirname

    def dirname(job: list[str]) -> str:
        return parsed.dirname(job, spec.exclude_keys, spec.item_sep, spec.kv_sep)

    same_dir = "override_dirname" in subdir and _first_twice(jobs, dirname)  # numbered dirs (job.num): one each
    if same_dir:
        return (f"two jobs of this sweep would share the dir {dirname(same_dir[0])!r}: "
                f"{_swept(same_dir[0], swept)} and {_swept(same_dir[1], swept)} (a key left out of dir names: "
                "hydra.job.config.override_dirname.exclude_keys); give it one value, or number the dirs: "
                "hydra.sweep.subdir=${hydra.job.num}")  # fmt: skip
    return None


def _first_twice(jobs: list[list[str]], key: Callable[[list[str]], Any]) -> tuple[list[str], list[str]] | None:
    """The first two jobs with the same key, or None."""
    seen: dict[Any, list[str]] = {}
    for job in jobs:
        k = key(job)
        if k in seen:
            return seen[k], job
        seen[k] = job
    return None


def _swept(job: list[str], swept: set[str]) -> str:
    """A job by its swept values."""
    return " ".join(item for item, key in zip(job, parsed.keys(job), strict=True) if key in swept)


def name_part(choice: str, default: str) -> str:
    """`_<choice>` in a run dir's name, or nothing for the default choice (the resolver `initlab.name_part` that
    train.yaml's hydra.run.dir uses: outputs/<date>/<time>_<init>-<act>[_<model>][_<data>])."""
    return "" if str(choice) == default else f"_{choice}"


class ClaimRunDir(Callback):
    """Hydra callback: before Hydra writes anything, check a single run's config (a mistake leaves no dir) and
    claim the run or sweep dir; refuse in one line. Hydra builds it before it resolves the run dir, so it also
    registers the resolver that names the dir."""

    def __init__(self) -> None:
        OmegaConf.register_new_resolver("initlab.name_part", name_part, replace=True)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        node = config.hydra.run
        HydraConfig.instance().set_config(config)  # as Hydra does for the job: ${hydra:runtime.cwd} resolves
        try:
            checks.launch(config, multirun=False)
            checks.validate(config, parsed.listed(config.hydra.overrides.task))
            run_dir = given_dir(node, "hydra.run.dir")
            path = claim(run_dir, "hydra.run.dir", explicit=_given(config, "hydra.run.dir"),
                         resuming=resumes(config, run_dir))  # fmt: skip
        except Exception as e:  # Hydra turns a callback's exception into a warning: every one ends here, one line
            _exit(e)
        with read_write(node), open_dict(node):
            node.dir = str(path)  # the free dir claimed, which Hydra then creates the run in

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        node = config.hydra.sweep
        HydraConfig.instance().set_config(config)
        try:
            checks.launch(config, multirun=True)
            task = parsed.listed(config.hydra.overrides.task)  # what every job shares is checked once, up front
            checks.validate(config, [o for o in task if o not in parsed.sweeps(task)])
            shared = shared_job_dirs(config)
            if shared:
                raise ConfigError(shared)
            # each job resumes its own dir with ckpt_path=last
            sweep_dir = given_dir(node, "hydra.sweep.dir")
            path = claim(sweep_dir, "hydra.sweep.dir", explicit=_given(config, "hydra.sweep.dir"),
                         resuming=config.get("ckpt_path") == "last")  # fmt: skip
        except Exception as e:
            _exit(e)
        with read_write(node), open_dict(node):
            node.dir = str(path)
