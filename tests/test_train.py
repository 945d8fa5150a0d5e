"""End to end: a short run writes metrics.json, TensorBoard events and checkpoints that reload."""

import json
from pathlib import Path

import pytest
import torch

from initlab.errors import ConfigError
from initlab.module import Classifier
from tests.conftest import FAST, run, run_cli


def test_short_run_writes_results(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("init=xavier", "act=tanh", "seed=0")
    record = run(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == record
    assert metrics["status"] == "ok" and 0.0 <= metrics["test/acc"] <= 1.0 and 0.0 <= metrics["val/acc"] <= 1.0
    assert metrics["test/acc"] > 0.5  # the tiny digits are easy; chance is 0.1
    assert metrics["train/loss"] > 0 and metrics["val/acc_best"] >= metrics["val/acc"] - 1e-6
    assert {k: metrics[k] for k in ("init", "act", "optimizer", "scheduler", "seed")} == {
        "init": "xavier", "act": "tanh", "optimizer": "sgd", "scheduler": "step", "seed": 0,
    }  # fmt: skip
    assert metrics["steps"] == 2 * 5  # 500 train images / batch 100, 2 epochs
    assert list(tmp_path.glob("events.out.tfevents.*")), "TensorBoard events missing"
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file() and (tmp_path / "checkpoints" / "best.ckpt").is_file()


def test_tensorboard_has_scalars_and_hparams(make_cfg, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run(make_cfg())
    acc = EventAccumulator(str(tmp_path)).Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/acc", "lr", "val/acc_best"} <= tags
    assert "hp_metric" not in tags
    diag = {"diag/act1/act_std", "diag/act1/dead_frac", "diag/fc1/weight_std", "diag/fc1/grad_norm"}
    assert diag <= tags and acc.Scalars("diag/fc1/grad_norm")[0].step == 0  # the init's story, before any update
    assert "diag/fc1/weight" in acc.Tags()["histograms"] and "diag/act1/activation" in acc.Tags()["histograms"]
    from tensorboard.plugins.hparams import plugin_data_pb2

    plugins = acc.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(plugins["_hparams_/experiment"]).experiment
    assert sorted(h.name for h in experiment.hparam_infos)[:5] == ["act", "batch_size", "init", "lr", "optimizer"]
    metrics = {m.name.tag for m in experiment.metric_infos}
    assert metrics == {"test/acc", "val/acc", "val/acc_best", "train/loss"}  # results are metrics, not hparams
    start = plugin_data_pb2.HParamsPluginData.FromString(plugins["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["init"].string_value == "kaiming" and start.hparams["act"].string_value == "relu"
    assert not any("acc" in k or "steps" in k or "startup" in k for k in start.hparams)


def test_checkpoint_reloads_with_weights_only(make_cfg, tmp_path: Path) -> None:
    run(make_cfg("act=leaky_relu", "init=lecun"))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    torch.load(ckpt, weights_only=True)  # raises UnpicklingError if a callable was pickled
    model = Classifier.load_from_checkpoint(ckpt, weights_only=True)
    assert model.hparams.init["weight"]["nonlinearity"] == "linear" and model.hparams.act["negative_slope"] == 0.01
    assert isinstance(model.net[1], torch.nn.LeakyReLU) and model.net[1].negative_slope == 0.01


def test_divergence_stops_early_and_is_recorded(make_cfg, tmp_path: Path) -> None:
    record = run(make_cfg("optimizer.lr=1e30", "init=normal", "trainer.max_epochs=5"))
    assert record["status"] == "diverged" and record["steps"] < 25  # stopped at the first NaN it logged
    metrics = json.loads((tmp_path / "metrics.json").read_text())  # strict JSON: NaN became null
    assert metrics["status"] == "diverged" and metrics["train/loss"] is None and "NaN" in metrics["reason"]


@pytest.mark.parametrize(("final", "status"), [(4.5, "ok"), (4.7, "diverged"), (50.0, "diverged"), (1.0, "ok")])
def test_divergence_is_a_final_loss_over_twice_the_first(final: float, status: str) -> None:
    from initlab.job import judge

    record = {"train/loss": final}
    judge(record, first_loss=2.3, diverged=False)
    assert record["status"] == status and ("reason" in record) == (status == "diverged")
    nan = {"train/loss": float("nan")}
    judge(nan, first_loss=2.3, diverged=False)
    assert nan["status"] == "diverged" and "NaN" in nan["reason"]


def test_a_loss_that_ends_far_above_its_start_is_diverged(make_cfg, tmp_path: Path) -> None:
    record = run(make_cfg("optimizer.lr=1000"))  # finite, but the net is wrecked: the lr=1000 case
    assert record["status"] == "diverged" and "train/loss rose from" in record["reason"]
    assert record["train/loss"] > 2 * 2.0  # started near ln(10) = 2.3
    fine = run(make_cfg("optimizer.lr=0.1", out=tmp_path / "fine"))
    assert fine["status"] == "ok" and "reason" not in fine


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=-1", "optimizer.lr=-1 is not allowed: a finite number > 0"),
        ("data.batch_size=0", "data.batch_size=0"),
        ("model.hidden_dims=[0]", "model.hidden_dims[0]=0 is not allowed"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0"),
        ("data.val_size=0", "data.val_size=0 is not allowed: an integer >= 1"),
    ],
)
def test_bad_values_fail_before_training(make_cfg, tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        run(make_cfg(override))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "test/acc" not in metrics


@pytest.mark.slow
def test_cli_unknown_choice_lists_valid_ones(tmp_path: Path) -> None:
    proc = run_cli("init=bogus", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode != 0
    assert "init/bogus" in proc.stderr and "kaiming" in proc.stderr and "xavier" in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_cli_bad_value_is_one_line(tiny_mnist: Path, tmp_path: Path) -> None:
    proc = run_cli(f"data.data_dir={tiny_mnist}", "optimizer.lr=-0.1", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "optimizer.lr=-0.1 is not allowed: a finite number > 0" in errors[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_missing_data_is_one_line(tmp_path: Path) -> None:
    proc = run_cli(f"data.data_dir={tmp_path}/empty", "data.download=false", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 1
    assert "MNIST not found in" in proc.stderr and "data.data_dir=" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_sweep_survives_a_failed_job(tiny_mnist: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", "optimizer.lr=0.1,-1", f"data.data_dir={tiny_mnist}", *FAST, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1  # the sweep says something failed...
    status = {p.parent.name: json.loads(p.read_text())["status"] for p in sweep.glob("*/metrics.json")}
    assert sorted(status.values()) == ["failed", "ok"]  # ...but the good job still ran
    assert "1 of 2 jobs failed" in proc.stderr
    summary = (sweep / "summary.md").read_text()
    assert "failed" in summary and "optimizer.lr=-1 is not allowed: a finite number > 0" in summary


@pytest.mark.slow
def test_cli_multirun_2x2_writes_four_runs(tiny_mnist: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", "init=lecun,kaiming", "act=tanh,relu", f"data.data_dir={tiny_mnist}", *FAST,
                   f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [set(p.parent.name.split(",")) for p in sweep.glob("*/metrics.json")]  # dir = override_dirname
    grid = {"act=relu", "act=tanh", "init=lecun", "init=kaiming"}
    assert sorted(tuple(sorted(r & grid)) for r in runs) == [
        ("act=relu", "init=kaiming"),
        ("act=relu", "init=lecun"),
        ("act=tanh", "init=kaiming"),
        ("act=tanh", "init=lecun"),
    ]
    for p in sweep.glob("*/metrics.json"):
        assert json.loads(p.read_text())["status"] == "ok"
    assert len((sweep / "summary.csv").read_text().splitlines()) == 5  # header + 4 jobs
    assert (sweep / "summary.md").is_file() and (sweep / "summary.png").is_file()
