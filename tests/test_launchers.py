"""Scaling out on existing engines: sweeps through joblib and submitit, and Lightning DDP on CPU (gloo)."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import FAST, run, run_cli, start

pytestmark = pytest.mark.slow


def test_submitit_local_sweep(tiny_mnist: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", "act=tanh,relu", "hydra/launcher=submitit_local", f"data.data_dir={tiny_mnist}", *FAST,
                   f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = [json.loads(p.read_text())["status"] for p in sweep.glob("*/metrics.json")]
    assert status == ["ok", "ok"]
    assert (sweep / ".submitit").is_dir() and (sweep / "summary.csv").is_file()


def test_joblib_sweep_runs_jobs_in_parallel_workers(tiny_mnist: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", "init=lecun,kaiming", "hydra/launcher=joblib", f"data.data_dir={tiny_mnist}", *FAST,
                   f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [json.loads(p.read_text())["status"] for p in sweep.glob("*/metrics.json")] == ["ok", "ok"]
    assert "Joblib.Parallel" in proc.stderr and (sweep / "summary.md").is_file()


def test_slurm_preset_composes(make_cfg) -> None:
    launcher = make_cfg("hydra/launcher=slurm").hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.timeout_min > 0 and launcher.cpus_per_task >= 1


def test_ddp_counts_every_sample_once_and_batches_are_per_process(make_cfg, tiny_mnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    half_trained = ["init=normal", "optimizer.lr=0.001", "trainer.max_epochs=1"]  # accuracy well below 100 %
    proc = run_cli("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=3", f"data.data_dir={tiny_mnist}",
                   *FAST, "data.eval_batch_size=30", *half_trained, f"hydra.run.dir={out}")  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    ddp = json.loads((out / "metrics.json").read_text())
    assert ddp["status"] == "ok" and 0.05 < ddp["test/acc"] < 0.95
    assert ddp["steps"] == 2  # 500 images over 3 processes: 167 each, whole batches of 100 (Lightning's convention)
    assert ddp["val_history"][-1][1] == ddp["val/acc"]  # the record agrees with itself
    # 100 val and 200 test images do not split evenly over 3: a single process must count exactly the same
    single = run(make_cfg("train=false", f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}", "trainer.devices=1",
                          "+trainer.strategy=auto", out=tmp_path / "eval"))  # fmt: skip
    assert single["test/acc"] == ddp["test/acc"] and single["val/acc"] == ddp["val/acc"]
    assert single["test/loss"] == pytest.approx(ddp["test/loss"], rel=1e-6)


def test_a_joblib_worker_killed_fails_the_sweep_with_its_summary(tiny_mnist: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    long = ["data.batch_size=1", "data.val_size=100", "trainer.max_epochs=8", "trainer.val_check_interval=100",
            "trainer.enable_progress_bar=false"]  # fmt: skip
    proc = start("-m", "init=lecun,kaiming", "act=tanh,relu", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                 f"data.data_dir={tiny_mnist}", *long, f"hydra.sweep.dir={sweep}")  # fmt: skip
    end = time.monotonic() + 120
    while not list(sweep.glob("*/checkpoints/last.ckpt")):
        assert proc.poll() is None and time.monotonic() < end, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    workers = subprocess.run(
        ["pgrep", "-P", str(proc.pid), "-f", "LokyProcess"], capture_output=True, text=True
    ).stdout.split()
    os.kill(int(workers[-1]), signal.SIGKILL)  # as the OOM killer would
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err, err[-3000:]
    assert "sweep stopped: TerminatedWorkerError" in err
    rows = (sweep / "summary.csv").read_text().splitlines()[1:]
    assert len(rows) == 4 and not all(",ok," in r for r in rows)  # every planned job listed, the lost ones not ok
