"""One run, one directory: a dir in use or holding another run is refused, default dirs never collide and are
named by what ran, a killed holder's dir is free again, a full disk never leaves half a file."""

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest

from initlab.errors import OutputError
from initlab.files import write_atomic
from initlab.run import rundir
from tests.conftest import FAST, ROOT, fake_job, run_cli, write_multirun

HOLD = "import sys, time; from pathlib import Path; from initlab.run.rundir import claim; "


def hold(path: Path) -> subprocess.Popen:
    """Another process that claims `path` and keeps it until killed."""
    code = HOLD + f"claim(Path({str(path)!r}), 'k', explicit=True, resuming=False); print('held', flush=True); " \
           "time.sleep(60)"  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_dir_in_use_is_refused_naming_the_process_and_defaults_move_on(tmp_path: Path) -> None:
    taken = tmp_path / "12-00-00_kaiming-relu"
    other = hold(taken)
    try:
        with pytest.raises(OutputError, match=rf"is in use by pid {other.pid} on "):
            rundir.claim(taken, "hydra.run.dir", explicit=True, resuming=False)
        with pytest.raises(OutputError, match=rf"is in use by pid {other.pid}"):
            rundir.claim(taken, "hydra.run.dir", explicit=True, resuming=True)  # not even to resume it
        fresh = rundir.claim(taken, "hydra.run.dir", explicit=False, resuming=False)  # two runs in one second
        assert fresh == taken.with_name(taken.name + "-1")
    finally:
        other.kill()
        other.wait()
    rundir.release(fresh)


def test_a_sweep_run_again_into_its_own_dir_is_refused_up_front_unless_resumed(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    fake_job(sweep, ["init=lecun"], {"init": "lecun", "act": "relu", "seed": 0, "status": "ok", "test/acc": 0.9})
    write_multirun(sweep, ["init=lecun"])
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file() and p.name != ".lock"}
    proc = run_cli("-m", "init=lecun", "data.data_dir=x", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].endswith(f"hydra.sweep.dir={str(sweep)!r} already holds a sweep "
                                                         "(multirun.yaml); resume it with ckpt_path=last, or choose "
                                                         "another hydra.sweep.dir=...")  # fmt: skip
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file() and p.name != ".lock"} == before  # untouched
    assert rundir.claim(sweep, "hydra.sweep.dir", explicit=True, resuming=True) == sweep.absolute()
    rundir.release(sweep)


def test_a_single_runs_dir_is_never_a_sweeps_even_resumed(tmp_path: Path) -> None:
    single = tmp_path / "single"
    single.mkdir()
    (single / "metrics.json").write_text('{"status": "ok"}')
    for resuming in (False, True):  # following the first refusal's advice (ckpt_path=last) changes nothing
        with pytest.raises(OutputError, match=r"holds a single run \(metrics.json\), not a sweep; choose another"):
            rundir.claim(single, "hydra.sweep.dir", explicit=True, resuming=resuming)
    assert rundir.claim(single, "hydra.sweep.dir", explicit=False, resuming=False).name == "single-1"  # a default
    rundir.release(tmp_path / "single-1")


def test_a_dir_holding_a_run_is_refused_unless_resumed(tmp_path: Path) -> None:
    done = tmp_path / "done"
    (done / "checkpoints").mkdir(parents=True)
    (done / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(OutputError, match=r"already holds a run \(checkpoints/last.ckpt\); resume it with ckpt_path"):
        rundir.claim(done, "hydra.run.dir", explicit=True, resuming=False)
    assert rundir.claim(done, "hydra.run.dir", explicit=False, resuming=False).name == "done-1"
    assert rundir.claim(done, "hydra.run.dir", explicit=True, resuming=True) == done
    for held in (done, tmp_path / "done-1"):
        rundir.release(held)
    empty = tmp_path / "failed_before"  # a bad command left only its config: trying again is fine
    (empty / ".hydra").mkdir(parents=True)
    assert rundir.claim(empty, "hydra.run.dir", explicit=True, resuming=False) == empty
    rundir.release(empty)


def test_a_mistake_removes_only_the_dirs_made_for_it(tmp_path: Path) -> None:
    alone = tmp_path / "alone" / "2026-11-30" / "12-00-00"  # three dirs made for this run
    rundir.claim(alone, "hydra.run.dir", explicit=True, resuming=False)
    rundir.discard(alone)
    assert not (tmp_path / "alone").exists()  # the date dirs made for it alone go with it
    run = tmp_path / "outputs" / "2026-11-30" / "12-00-00"
    rundir.claim(run, "hydra.run.dir", explicit=True, resuming=False)
    beside = run.with_name("12-00-01")  # another run, started in the same second's date dir meanwhile
    beside.mkdir()
    (beside / "metrics.json").write_text("{}")
    rundir.discard(run)
    assert not run.exists() and json.loads((beside / "metrics.json").read_text()) == {}
    kept = tmp_path / "kept"
    rundir.claim(kept, "hydra.run.dir", explicit=True, resuming=False)
    (kept / "metrics.json").write_text("{}")  # a record is something to keep
    rundir.discard(kept)
    assert (kept / "metrics.json").exists()
    rundir.release(kept)


def test_a_killed_holder_releases_its_dir(tmp_path: Path) -> None:
    other = hold(tmp_path / "r")
    other.kill()  # kill -9: no clean-up runs, the kernel drops the lock
    other.wait()
    assert rundir.claim(tmp_path / "r", "hydra.run.dir", explicit=True, resuming=False) == tmp_path / "r"
    rundir.release(tmp_path / "r")


def test_a_full_disk_leaves_the_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "best.ckpt"
    write_atomic(target, b"old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("initlab.files.os.fsync", full)
    with pytest.raises(OutputError, match=r"could not write .*best.ckpt: No space left on device"):
        write_atomic(target, b"new" * 1000)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["best.ckpt"]


@pytest.mark.slow
def test_two_default_runs_started_together_get_two_dirs(tiny_mnist: Path, tmp_path: Path) -> None:
    args = [sys.executable, str(ROOT / "train.py"), f"data.data_dir={tiny_mnist}", *FAST]
    procs = [subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()[-2000:]
    runs = sorted(tmp_path.glob("outputs/*/*/metrics.json"))
    assert len(runs) == 2 and all(json.loads(r.read_text())["status"] == "ok" for r in runs)
    assert all(r.parent.name.split("_", 1)[1].startswith("kaiming-relu") for r in runs)  # named by its choices


def test_a_second_signal_insists_only_after_2_s() -> None:
    import signal

    from initlab.run.signals import Interrupted, SignalState

    s = SignalState()
    s.handle(signal.SIGINT, None)
    s.handle(signal.SIGINT, None)  # Ctrl-C reaching the process group twice: the same event, still only noted
    assert s.received == signal.SIGINT
    s.received_at -= 3
    with pytest.raises(Interrupted) as info:
        s.handle(signal.SIGTERM, None)  # seconds later: the user insists
    assert info.value.signum == signal.SIGINT and info.value.exit_code == 130


@pytest.mark.slow
def test_a_default_run_dir_names_the_model_and_data_when_they_are_not_the_defaults(tiny_cifar10: Path,
                                                                                  tmp_path: Path) -> None:  # fmt: skip
    proc = run_cli("data=cifar10", f"data.data_dir={tiny_cifar10}", "model=cnn", *FAST, "data.val_size=50",
                   "init=lecun", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = tmp_path.glob("outputs/*/*")
    assert run_dir.name.split("_", 1)[1] == "lecun-relu_cnn_cifar10"


def test_a_sweep_its_launcher_broke_is_summarised_and_fails(tmp_path: Path) -> None:
    from initlab.report.summary import write_summary
    from initlab.run.cli import summarise_broken_sweep

    fake_job(tmp_path, ["init=lecun"], {"init": "lecun", "act": "relu", "seed": 0, "status": "ok", "test/acc": 0.9})
    fake_job(tmp_path, ["init=kaiming"], None)  # its worker was killed: no record
    write_multirun(tmp_path, ["init=lecun,kaiming,xavier"])
    with pytest.raises(SystemExit) as exit_info:
        summarise_broken_sweep(tmp_path, RuntimeError("A worker process was unexpectedly terminated"), write_summary)
    assert exit_info.value.code == 1
    summary = (tmp_path / "summary.md").read_text()
    assert "`init=kaiming`: no metrics.json" in summary and "not run: `init=xavier`" in summary


def test_a_sweep_that_broke_before_any_job_leaves_no_dir(tmp_path: Path) -> None:
    from initlab.report.summary import write_summary
    from initlab.run.cli import summarise_broken_sweep

    sweep = rundir.claim(tmp_path / "multirun" / "12-00-00", "hydra.sweep.dir", explicit=True, resuming=False)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    with pytest.raises(SystemExit):
        summarise_broken_sweep(sweep, RuntimeError("the sweeper could not start"), write_summary)
    assert not (tmp_path / "multirun").exists()


def test_an_empty_or_overlong_run_dir_is_one_line_naming_its_key(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from initlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"hydra\.run\.dir='' is empty"):  # it would be the working directory
        rundir.given_dir(OmegaConf.create({"dir": ""}), "hydra.run.dir")
    assert rundir.given_dir(OmegaConf.create({"dir": "."}), "hydra.run.dir") == Path(".")  # said, so meant
    with pytest.raises(OutputError, match=r"hydra.sweep.dir='.*x{300}' cannot be used: File name too long"):
        rundir.claim(tmp_path / ("x" * 300), "hydra.sweep.dir", explicit=True, resuming=False)
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(OutputError, match=r"dangling' is a symbolic link to '.*gone', which does not exist"):
        rundir.claim(tmp_path / "dangling", "hydra.run.dir", explicit=True, resuming=False)


def test_one_dir_spelled_two_ways_is_one_claim(tmp_path: Path) -> None:
    """Hydra's callback and the job spell a run dir given as r/x/./sub/../sub differently: the second must not
    find the process's own lock ("in use by pid <its own>")."""
    spelled = tmp_path / "x" / "." / "sub" / ".." / "sub"
    first = rundir.claim(spelled, "hydra.run.dir", explicit=True, resuming=False)
    again = rundir.claim(tmp_path / "x" / "sub", "hydra.run.dir", explicit=True, resuming=False)
    assert first == again == tmp_path / "x" / "sub"
    rundir.release(spelled)
    assert first not in rundir.HELD  # released under either spelling


@pytest.mark.parametrize("folder", ["checkpoints", ".hydra"])
def test_a_file_where_the_run_needs_a_folder_is_one_line(tmp_path: Path, folder: str) -> None:
    """Hydra writes .hydra/ into the run dir: a file there was a bare `[Errno 17] File exists`."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / folder).write_text("")
    with pytest.raises(OutputError, match=rf"{folder} is a file; the run needs a directory there .*: remove it"):
        rundir.claim(tmp_path / "run", "hydra.run.dir", explicit=True, resuming=False)
