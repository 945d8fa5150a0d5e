"""Faults as a user or a cluster causes them, through the command line: signals, kill -9, two processes on one
dir, a full disk, an interrupted sweep. Each run's record must say what happened, and resuming must give the
record an uninterrupted run would have written."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import FAST, USER_CONF, record, run, run_cli, same_record, scalars, start, wait_for

pytestmark = pytest.mark.slow


def long_run(data: Path) -> list[str]:
    """~4000 small steps (a few seconds): long enough to be caught mid-run, with a checkpoint every 100."""
    return [f"data.data_dir={data}", "data.val_size=100", "data.batch_size=1", "optimizer.lr=0.001",
            "trainer.max_epochs=8", "trainer.val_check_interval=100", "trainer.enable_progress_bar=false"]  # fmt: skip


def live_processes(session: int, wait: float = 10) -> list[str]:
    """Processes of a session still running (zombies are dead: they only wait for init to reap them)."""
    end = time.monotonic() + wait
    while True:
        ps = subprocess.run(["ps", "-o", "stat=,cmd=", "-s", str(session)], capture_output=True, text=True).stdout
        live = [line for line in ps.splitlines() if line.strip() and not line.strip().startswith("Z")]
        if not live or time.monotonic() > end:
            return live
        time.sleep(0.2)


def test_sigterm_then_resume_gives_the_uninterrupted_record(make_cfg, tiny_mnist: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = start(*long_run(tiny_mnist), f"hydra.run.dir={run_dir}")
    wait_for(run_dir / "checkpoints" / "last.ckpt", proc)
    intruder = run_cli(*long_run(tiny_mnist), f"hydra.run.dir={run_dir}")  # a second process, same dir
    assert intruder.returncode == 1 and f"is in use by pid {proc.pid}" in intruder.stderr
    assert "Traceback" not in intruder.stderr
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    stopped = record(run_dir)
    step = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert stopped["status"] == "interrupted" and stopped["signal"] == "SIGTERM" and stopped["steps"] == step
    assert 100 <= step < 4000 and "test/acc" not in stopped  # last.ckpt is where it stopped, not a validation's
    overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()

    resumed = run_cli(f"hydra.run.dir={run_dir}", "ckpt_path=last")  # the README's command, nothing else
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {run_dir} from step {step}" in resumed.stderr  # one line: where and from which step
    whole = run(make_cfg(*long_run(tiny_mnist), fast=False, out=tmp_path / "whole"))
    same_record(record(run_dir), whole, skip=("overrides",))
    assert record(run_dir)["resumed"][0]["from_step"] == step
    assert record(run_dir)["wall_time_s"] > stopped["wall_time_s"]  # both segments
    assert scalars(run_dir) == scalars(tmp_path / "whole")
    assert (run_dir / ".hydra" / "overrides.yaml").read_text() == overrides

    before = (run_dir / "metrics.json").read_bytes()
    again = run_cli(f"hydra.run.dir={run_dir}", "ckpt_path=last")
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert (run_dir / "metrics.json").read_bytes() == before
    other = run_cli(*long_run(tiny_mnist), "seed=1", f"hydra.run.dir={run_dir}")  # a new run into a used dir
    assert other.returncode == 1 and "already holds a run" in other.stderr and "Traceback" not in other.stderr
    assert (run_dir / ".hydra" / "overrides.yaml").read_text() == overrides


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGHUP, signal.SIGKILL, pytest.param(signal.SIGUSR1, marks=pytest.mark.slow)]
)
def test_ctrl_c_hangup_and_kill_9_resume_exactly(make_cfg, tiny_mnist: Path, tmp_path: Path, sig: int) -> None:
    run_dir = tmp_path / "run"
    proc = start(*long_run(tiny_mnist), "init=xavier", "act=tanh", f"hydra.run.dir={run_dir}")
    wait_for(run_dir / "checkpoints" / "last.ckpt", proc)
    time.sleep(0.3)
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    if sig != signal.SIGKILL:  # Ctrl-C, or a closed terminal or ssh session: a record, and 128 + the signal
        assert proc.returncode == 128 + sig and record(run_dir)["signal"] == signal.Signals(sig).name
    else:
        assert proc.returncode == -signal.SIGKILL and not (run_dir / "metrics.json").exists()
    resumed = run_cli(f"hydra.run.dir={run_dir}", "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole = run(make_cfg(*long_run(tiny_mnist), "init=xavier", "act=tanh", fast=False, out=tmp_path / "whole"))
    same_record(record(run_dir), whole, skip=("overrides",))
    assert scalars(run_dir) == scalars(tmp_path / "whole")


def test_a_full_disk_is_one_line_and_leaves_no_half_file(tiny_mnist: Path, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=800k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root); test_rundir simulates ENOSPC instead")
    try:
        proc = run_cli(f"data.data_dir={tiny_mnist}", *FAST, f"hydra.run.dir={disk}/run")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].endswith("No space left on device")
        for ckpt in (disk / "run").glob("checkpoints/*"):
            torch.load(ckpt, weights_only=True)  # nothing half-written under a final name
        assert not list((disk / "run").rglob("*.tmp"))
        left = record(disk / "run")  # a small failed record, as the disk allows
        assert left["status"] == "failed" and "No space left" in left["error"] and "test/acc" not in left
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_disk_that_fills_at_any_point_of_start_up_is_one_line(tiny_mnist: Path, tmp_path: Path) -> None:
    """Hydra's own files, the log, TensorBoard's event file (a writer thread), the first checkpoint: whichever
    does not fit, one line says so, and what is left is either nothing or a failed record."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        for free_kb in (4, 12, 16, 20, 24, 32):
            (disk / "fill").write_bytes(bytes((64 - free_kb) * 1024))
            proc = run_cli(f"data.data_dir={tiny_mnist}", *FAST, "model.hidden_dims=[10]", f"hydra.run.dir={disk}/run")
            said = [line for line in proc.stderr.splitlines() if "ERROR" in line or line.startswith("cannot start")]
            assert proc.returncode == 1 and len(said) == 1 and "No space left on device" in said[0], proc.stderr
            assert "Traceback" not in proc.stderr and "Exception in thread" not in proc.stderr
            assert not (disk / "run").exists() or record(disk / "run")["status"] == "failed", free_kb
            subprocess.run(["rm", "-rf", str(disk / "run"), str(disk / "fill")], check=True)
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_interrupted_sweep_records_everything_and_resumes(tiny_mnist: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    grid = ["-m", "init=lecun,kaiming,xavier", "act=tanh,relu", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    proc = start(*grid, *long_run(tiny_mnist), f"hydra.sweep.dir={sweep}")
    end = time.monotonic() + 120
    while not list(sweep.glob("*/checkpoints/last.ckpt")):
        assert proc.poll() is None and time.monotonic() < end, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert not live_processes(proc.pid)  # no worker left behind
    rows = (sweep / "summary.csv").read_text().splitlines()
    status = [r.split(",")[-2] for r in rows[1:]]
    assert len(status) == 6 and "interrupted" in status and "not run" in status and "ok" not in status
    assert "sweep interrupted by SIGTERM" in err

    again = run_cli(*grid, *long_run(tiny_mnist), f"hydra.sweep.dir={sweep}", "ckpt_path=last")  # the requeue
    assert again.returncode == 0, again.stderr[-3000:]
    status = [json.loads(p.read_text())["status"] for p in sweep.glob("*/metrics.json")]
    assert status == ["ok"] * 6 and "not run" not in (sweep / "summary.md").read_text()


def test_the_console_says_each_thing_once(tiny_mnist: Path, tmp_path: Path) -> None:
    single = run_cli(f"data.data_dir={tiny_mnist}", *FAST[:-2], "trainer.enable_progress_bar=false",
                     f"hydra.run.dir={tmp_path}/one")  # fmt: skip
    lines = [line for line in (single.stdout + single.stderr).splitlines() if line.strip()]
    assert single.returncode == 0 and len(lines) <= 15, "\n".join(lines)
    logged = [line for line in lines if line.startswith("[")]
    assert len(logged) == len(set(logged))  # nothing twice
    assert not [line for line in lines if "Tip" in line or "GPU available" in line or "Warning" in line]
    assert "Total params" in single.stderr  # a single run keeps its model table
    sweep = run_cli("-m", "init=lecun,kaiming", "hydra/launcher=joblib", f"data.data_dir={tiny_mnist}", *FAST,
                    f"hydra.sweep.dir={tmp_path}/sweep")  # fmt: skip
    job_lines = [line for line in sweep.stderr.splitlines() if "][initlab." in line or "][lightning" in line]
    assert sweep.returncode == 0 and len(job_lines) == 2, "\n".join(job_lines)  # one line a parallel job
    assert all("test/acc=" in line for line in job_lines) and "Total params" not in sweep.stderr


@pytest.mark.slow
def test_a_sweep_whose_worker_is_killed_is_summarised_and_fails(tiny_mnist: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", "init=lecun,killed", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                   f"hydra.searchpath=[file://{USER_CONF}]", f"data.data_dir={tiny_mnist}", *FAST,
                   f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "sweep stopped: TerminatedWorkerError" in proc.stderr
    summary = (sweep / "summary.md").read_text()  # written by the sweep's own summary writer
    assert "init=killed" in summary and "metrics.json" in summary, summary
    assert "report.html" in {p.name for p in sweep.iterdir()}


def test_a_signal_during_start_up_stops_before_training(tiny_mnist: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = start(*long_run(tiny_mnist), f"hydra.run.dir={run_dir}")
    time.sleep(1.0)  # inside the imports of torch and Lightning
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err[-3000:]
    stopped = record(run_dir)
    assert stopped["status"] == "interrupted" and stopped["signal"] == "SIGTERM" and not stopped.get("steps")
    assert not list(run_dir.glob("checkpoints/*.ckpt"))  # nothing trained, nothing to resume


@pytest.mark.parametrize(("dup", "said"), [
    (["init=kaiming,kaiming"], "two jobs of this sweep would be the same run: init=kaiming and init=kaiming"),
    (["act=relu,'relu'"], "would be the same run: act=relu and act='relu'"),  # one choice, quoted or not
    pytest.param(["num_threads=1,2"], "two jobs of this sweep would share the dir", marks=pytest.mark.slow),
    pytest.param(["act=relu,tanh", "hydra.sweep.subdir=fixed"], "hydra.sweep.subdir='fixed' puts all 2 jobs of",
                 marks=pytest.mark.slow),  # the CLI's tests of shared_job_dirs; the fast suite keeps two
])  # fmt: skip
def test_jobs_that_are_one_run_or_share_a_dir_are_refused_up_front(tiny_mnist: Path, tmp_path: Path, dup, said):
    proc = run_cli("-m", f"data.data_dir={tiny_mnist}", *FAST, *dup, f"hydra.sweep.dir={tmp_path}/s")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert said in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "s").exists()  # refused before any job: no sweep dir


def test_every_job_that_fails_fails_the_sweep_and_is_listed(tiny_mnist: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    (sweep / "1" / "metrics.json").mkdir(parents=True)  # job 1's record cannot be written
    proc = run_cli("-m", "act=relu,tanh", f"data.data_dir={tiny_mnist}", *FAST, f"hydra.sweep.dir={sweep}",
                   "hydra.sweep.subdir=${hydra.job.num}", "ckpt_path=last")  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    rows = (sweep / "summary.csv").read_text().splitlines()
    assert len(rows) == 3 and any(",failed," in r and "metrics.json is a directory" in r for r in rows), rows
    assert "1 of 2 jobs did not run to their end: 1" in proc.stderr


def test_resuming_a_sweep_root_as_a_single_run_is_refused(tiny_mnist: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    assert (
        run_cli("-m", "act=relu,tanh", f"data.data_dir={tiny_mnist}", *FAST, f"hydra.sweep.dir={sweep}").returncode == 0
    )
    again = run_cli(f"data.data_dir={tiny_mnist}", *FAST, f"hydra.run.dir={sweep}")
    assert again.returncode == 1 and "is a sweep dir (multirun.yaml)" in again.stderr
    advice = run_cli(f"hydra.run.dir={sweep}", "ckpt_path=last")  # following the advice of a plain refusal
    assert advice.returncode == 1 and "is a sweep dir (multirun.yaml); resume its jobs with `-m`" in advice.stderr
    assert not (sweep / "checkpoints").exists() and not (sweep / "metrics.json").exists()
