"""The trackers and the tuner people use, as optional extras (pip install -e ".[trackers]"), each read back:
logger=mlflow (a SQLite store under outputs/), logger=wandb (offline), hparams_search=optuna (a resumable study)."""

import json
from pathlib import Path

import pytest

from tests.conftest import FAST, read_wandb, run_cli

pytestmark = pytest.mark.slow


def test_mlflow_holds_each_runs_choices_and_metrics(tiny_mnist: Path, tmp_path: Path) -> None:
    client = pytest.importorskip("mlflow.tracking").MlflowClient
    proc = run_cli("-m", "logger=mlflow", "init=lecun,kaiming", "act=tanh", f"data.data_dir={tiny_mnist}", *FAST,
                   "hydra/launcher=joblib", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = client(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    runs = store.search_runs([store.get_experiment_by_name("initlab").experiment_id])
    assert sorted(r.data.params["init"] for r in runs) == ["kaiming", "lecun"]  # both jobs, side by side
    for r in runs:
        assert r.data.params["act"] == "tanh" and float(r.data.params["lr"]) == 0.1 and r.info.status == "FINISHED"
        record = json.loads(next(tmp_path.glob(f"outputs/multirun/*/*init={r.data.params['init']}*/metrics.json"))
                            .read_text())  # fmt: skip
        assert r.data.metrics["test/acc"] == pytest.approx(record["test/acc"])
        assert r.data.metrics["val/acc"] == pytest.approx(record["val/acc"])
        assert "diag/act1/act_std" in r.data.metrics and "train/loss" in r.data.metrics


def test_wandb_offline_records_the_choices_and_results(tiny_mnist: Path, tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    run_dir = tmp_path / "run"
    proc = run_cli("logger=[tensorboard,wandb]", "init=xavier", f"data.data_dir={tiny_mnist}", *FAST,
                   f"hydra.run.dir={run_dir}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (log,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")  # offline: nothing left this machine
    seen = read_wandb(log)
    record = json.loads((run_dir / "metrics.json").read_text())
    assert seen["config"]["init"] == "xavier" and seen["config"]["lr"] == 0.1 and seen["config"]["model"] == "mlp"
    assert seen["history"]["test/acc"] == pytest.approx(record["test/acc"])
    assert seen["history"]["val/acc"] == pytest.approx(record["val/acc"]) and "diag/act1/act_std" in seen["history"]
    assert list(run_dir.glob("events.out.tfevents.*"))  # TensorBoard beside it


def test_optuna_tunes_lr_and_momentum_and_its_study_resumes(tiny_mnist: Path, tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "sweep"
    args = ["-m", "hparams_search=optuna", "init=kaiming", "act=relu", f"data.data_dir={tiny_mnist}", *FAST,
            f"hydra.sweep.dir={sweep}"]  # fmt: skip
    proc = run_cli(*args, "hydra.sweeper.n_trials=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="initlab", storage=f"sqlite:///{sweep / 'optuna.db'}")
    trials = [t for t in study.trials if t.value is not None]
    assert len(trials) == 3 and set(trials[0].params) == {"optimizer.lr", "optimizer.momentum"}
    records = {round(json.loads(p.read_text())["val/acc"], 6) for p in sweep.glob("*/metrics.json")}
    assert {round(t.value, 6) for t in trials} == records  # the objective is each job's final val/acc
    assert all(0.003 <= t.params["optimizer.lr"] <= 0.5 and 0.5 <= t.params["optimizer.momentum"] <= 0.95
               for t in trials)  # fmt: skip
    md = (sweep / "summary.md").read_text()
    assert "Optuna study `initlab`" in md and f"val/acc {study.best_value:.4f}" in md
    assert "Optuna study" in (sweep / "report.html").read_text()
    again = run_cli(*args, "hydra.sweeper.n_trials=4", "ckpt_path=last")  # the study goes on in the same file
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(optuna.load_study(study_name="initlab", storage=f"sqlite:///{sweep / 'optuna.db'}").trials) == 7
    assert "nothing to do" in again.stderr  # the seeded sampler's first trials again: answered from their records
