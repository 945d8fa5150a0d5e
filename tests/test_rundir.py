"""One run, one directory; files follow the umask; a full disk never leaves half a file under its final name."""

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from initlab import rundir
from initlab.errors import OutputError
from initlab.record import write_atomic
from tests.conftest import ROOT, run

HOLD = "import sys, time; from pathlib import Path; from initlab.rundir import claim; "


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


def test_a_killed_holder_releases_its_dir(tmp_path: Path) -> None:
    other = hold(tmp_path / "r")
    other.kill()  # kill -9: no clean-up runs, the kernel drops the lock
    other.wait()
    assert rundir.claim(tmp_path / "r", "hydra.run.dir", explicit=True, resuming=False) == tmp_path / "r"
    rundir.release(tmp_path / "r")


def test_files_follow_the_umask(make_cfg, tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        run(make_cfg())
        write_atomic(tmp_path / "summary.md", "x")
    finally:
        os.umask(old)
    for f in ("metrics.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt", "summary.md"):
        assert stat.S_IMODE((tmp_path / f).stat().st_mode) == 0o640, f


def test_a_full_disk_leaves_the_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "best.ckpt"
    write_atomic(target, b"old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("initlab.record.os.fsync", full)
    with pytest.raises(OutputError, match=r"could not write .*best.ckpt: No space left on device"):
        write_atomic(target, b"new" * 1000)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["best.ckpt"]


def test_a_checkpoint_write_that_fails_ends_the_run_in_one_line(make_cfg, tmp_path: Path, monkeypatch) -> None:
    real = os.fsync
    calls = {"n": 0}

    def fills_up(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # the first checkpoints fit, the third does not; then space is freed again
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr("initlab.record.os.fsync", fills_up)
    with pytest.raises(OutputError, match=r"could not write .*\.ckpt: No space left on device"):
        run(make_cfg())
    for ckpt in tmp_path.glob("checkpoints/*"):
        torch.load(ckpt, weights_only=True)  # whatever is there is whole
    assert not list(tmp_path.rglob("*.tmp"))
    record = json.loads((tmp_path / "metrics.json").read_text())  # a small failed record, as the disk allows
    assert record["status"] == "failed" and "No space left on device" in record["error"] and "test/acc" not in record


def test_logistic_regression_is_a_model_too(make_cfg) -> None:
    from tests.conftest import build

    cfg = make_cfg("model.hidden_dims=[]", "trainer.max_epochs=4")
    net = build(cfg)[1].net
    assert [type(m).__name__ for m in net] == ["Linear"] and net[0].in_features == 784
    record = run(cfg)
    assert record["status"] == "ok" and 0.3 < record["test/acc"] < 0.95  # learns; the tiny data is hard


@pytest.mark.slow
def test_two_default_runs_started_together_get_two_dirs(tiny_mnist: Path, tmp_path: Path) -> None:
    from tests.conftest import FAST

    args = [sys.executable, str(ROOT / "train.py"), f"data.data_dir={tiny_mnist}", *FAST]
    procs = [subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()[-2000:]
    runs = sorted(tmp_path.glob("outputs/*/*/metrics.json"))
    assert len(runs) == 2 and all(json.loads(r.read_text())["status"] == "ok" for r in runs)
    assert all(r.parent.name.split("_", 1)[1].startswith("kaiming-relu") for r in runs)  # named by its choices


def test_a_second_signal_insists_only_after_2_s() -> None:
    import signal

    from initlab.signals import Interrupted, SignalState

    s = SignalState()
    s.handle(signal.SIGINT, None)
    s.handle(signal.SIGINT, None)  # Ctrl-C reaching the process group twice: the same event, still only noted
    assert s.received == signal.SIGINT
    s.received_at -= 3
    with pytest.raises(Interrupted) as info:
        s.handle(signal.SIGTERM, None)  # seconds later: the user insists
    assert info.value.signum == signal.SIGINT and info.value.exit_code == 130
