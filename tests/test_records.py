"""What a run writes: metrics.json (every key, strict JSON, its verdict), TensorBoard's scalars and HParams,
checkpoints that load as data, files that follow the umask, and a run that fails when its record cannot be written."""

import json
import math
import os
import stat
from pathlib import Path

import pytest
import torch

from initlab.errors import ConfigError, OutputError
from initlab.files import write_atomic, write_json_atomic
from initlab.module import Classifier
from initlab.run.record import judge
from tests.conftest import FAST, build, run, run_cli, scalars

RECORD_KEYS = {"init", "act", "model", "data", "optimizer", "scheduler", "seed", "mode", "status", "val_history",
               "first_step_unix", "startup_s", "val/acc", "val/loss", "test/acc", "test/loss", "val/acc_best",
               "train/loss", "steps", "wall_time_s", "overrides", "diagnostics"}  # fmt: skip


def test_the_record_has_exactly_its_keys_and_says_what_ran(make_cfg, tmp_path: Path) -> None:
    record = run(make_cfg("init=xavier", "act=tanh"))
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert set(on_disk) == RECORD_KEYS and on_disk == record
    assert {k: on_disk[k] for k in ("init", "act", "model", "data", "optimizer", "scheduler", "seed", "mode")} == {
        "init": "xavier", "act": "tanh", "model": "mlp", "data": "mnist", "optimizer": "sgd", "scheduler": "step",
        "seed": 0, "mode": "train"}  # fmt: skip
    assert on_disk["status"] == "ok" and 0.2 < on_disk["test/acc"] < 0.95  # learns; the tiny data is hard
    assert on_disk["steps"] == 2 * 5  # 500 train images / batch 100, 2 epochs
    assert on_disk["val/acc_best"] == max(acc for _, acc in on_disk["val_history"])  # the final validation too
    assert on_disk["val_history"][-1] == [on_disk["steps"], on_disk["val/acc"]]
    assert [s for s, _ in on_disk["val_history"]] == [3, 6, 9, 10]
    assert on_disk["diagnostics"]["act1/saturated_frac"] >= 0 and on_disk["diagnostics"]["fc1/weight_std"] > 0
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file() and (tmp_path / "checkpoints" / "best.ckpt").is_file()


def test_tensorboard_has_scalars_and_hparams_that_say_what_ran(make_cfg, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run(make_cfg("model.depth=2", "model.width=30"))
    acc = EventAccumulator(str(tmp_path)).Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/acc", "lr", "val/acc_best"} <= tags
    assert "hp_metric" not in tags
    diag = {"diag/act1/act_std", "diag/act1/dead_frac", "diag/fc1/weight_std", "diag/fc1/grad_norm"}
    assert diag <= tags and acc.Scalars("diag/fc1/grad_norm")[0].step == 0  # the init's story, before any update
    assert "diag/fc1/weight" in acc.Tags()["histograms"] and "diag/act1/activation" in acc.Tags()["histograms"]
    plugins = acc.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(plugins["_hparams_/experiment"]).experiment
    assert {h.name for h in experiment.hparam_infos} >= {"act", "init", "lr", "model", "data", "depth", "width", "mode"}
    assert {m.name.tag for m in experiment.metric_infos} == {"test/acc", "val/acc", "val/acc_best", "train/loss"}
    start = plugin_data_pb2.HParamsPluginData.FromString(plugins["_hparams_/session_start_info"]).session_start_info
    shown = {k: v.string_value or v.number_value for k, v in start.hparams.items()}
    assert shown["model"] == "mlp" and shown["data"] == "mnist" and shown["mode"] == "train"
    assert (shown["depth"], shown["width"], shown["init"], shown["act"]) == (2, 30, "kaiming", "relu")
    assert not any("acc" in k or "steps" in k or "startup" in k for k in start.hparams)


def test_an_evaluation_says_so(make_cfg, tmp_path: Path) -> None:
    trained = run(make_cfg("init=lecun", "act=tanh", "seed=2", out=tmp_path / "train"))
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"
    how = ["data.eval_batch_size=30", "num_threads=2"]  # an evaluation may change how it evaluates
    evaluated = run(make_cfg("train=false", f"ckpt_path={ckpt}", *how, out=tmp_path / "eval"))  # config: kaiming/relu
    assert (evaluated["init"], evaluated["act"], evaluated["mode"]) == ("lecun", "tanh", "evaluate")
    assert evaluated["test/acc"] == trained["test/acc"] and evaluated["val/acc"] == trained["val/acc"]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["test/acc"] == trained["test/acc"]


def test_checkpoints_load_as_data_and_rebuild_the_model(make_cfg, tmp_path: Path) -> None:
    run(make_cfg("act=leaky_relu", "init=lecun"))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    torch.load(ckpt, weights_only=True)  # raises UnpicklingError if a callable was pickled
    model = Classifier.load_from_checkpoint(ckpt, weights_only=True)
    assert model.hparams.init["weight"]["nonlinearity"] == "linear" and model.hparams.act["negative_slope"] == 0.01
    assert isinstance(model.net[1], torch.nn.LeakyReLU) and model.net[1].negative_slope == 0.01


def test_a_run_shorter_than_the_logging_interval_records_its_last_steps_loss(make_cfg, tmp_path: Path) -> None:
    every = run(make_cfg("trainer.log_every_n_steps=1", out=tmp_path / "every"))  # logs its last step, step 10
    never = run(make_cfg("trainer.log_every_n_steps=1000", out=tmp_path / "never"))  # logs none of its 10
    assert never["steps"] == every["steps"] == 10 and never["train/loss"] == every["train/loss"] > 0


@pytest.mark.parametrize("monitor", ["val/acc", "val/loss"])
def test_best_ckpt_holds_the_weights_its_score_names(make_cfg, tmp_path: Path, monitor: str) -> None:
    """The final validation competes by the callback's own monitor and mode (val/acc compared with a best val/loss
    made best.ckpt the final weights)."""
    mode = "max" if monitor == "val/acc" else "min"
    chosen = [f"callbacks.model_checkpoint.monitor={monitor}", f"callbacks.model_checkpoint.mode={mode}"]
    run(make_cfg(*chosen, "optimizer.lr=0.05", out=tmp_path / "run"))
    seen = [v for _, v in scalars(tmp_path / "run")[monitor]]  # every validation's, the final one's included
    best = tmp_path / "run" / "checkpoints" / "best.ckpt"
    evaluated = run(make_cfg(f"ckpt_path={best}", "train=false", out=tmp_path / "evaluated"))
    assert len(seen) >= 3 and evaluated[monitor] == pytest.approx(max(seen) if mode == "max" else min(seen), rel=1e-5)


def test_a_nan_loss_stops_training_and_the_record_is_strict_json(make_cfg, tmp_path: Path) -> None:
    record = run(make_cfg("optimizer.lr=1e30", "init=normal", "trainer.max_epochs=5"))
    assert record["status"] == "diverged" and record["steps"] < 25  # stopped at the first NaN it logged
    metrics = json.loads((tmp_path / "metrics.json").read_text())  # strict JSON: NaN became null
    assert metrics["status"] == "diverged" and metrics["train/loss"] is None and "NaN" in metrics["reason"]


def test_weights_that_start_infinite_are_diverged_and_their_histograms_skipped(make_cfg, tmp_path: Path) -> None:
    record = run(make_cfg("init=gaussian", "init.sigma_w2=1e300", "callbacks.diagnostics.histogram_every_n_steps=1"))
    assert record["status"] == "diverged" and "NaN" in record["reason"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(tmp_path), size_guidance={"histograms": 0}).Reload().Tags()
    assert tags["histograms"] == []  # std 1e149 is inf in float32: inf and nan have no bins, so none are drawn
    assert "diag/act1/act_std" in tags["scalars"]  # the run went on to its verdict


@pytest.mark.slow
def test_activations_float64_cannot_bin_get_no_histogram_and_the_run_goes_on(make_cfg, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    hist = "callbacks.diagnostics.histogram_every_n_steps=1"  # softplus, beta 1e-30: every activation is 6.9e29
    record = run(make_cfg("act=softplus", "act.beta=1e-30", hist))  # numpy: "Too many bins for data range"
    assert record["status"] in ("ok", "diverged")  # judged, not a traceback
    tags = EventAccumulator(str(tmp_path), size_guidance={"histograms": 0}).Reload().Tags()["histograms"]
    assert "diag/fc1/weight" in tags and "diag/act1/activation" not in tags


@pytest.mark.slow
def test_model_code_that_fails_mid_run_is_one_line_naming_it(make_cfg, tmp_path: Path) -> None:
    from tests.user_models import FailLate

    FailLate.calls = 0
    with pytest.raises(ConfigError) as info:  # a 160-line traceback before
        run(make_cfg("act._target_=tests.user_models.FailLate"))
    said = str(info.value)
    assert said.startswith("the model (initlab.models.MLP, act tests.user_models.FailLate) failed in train at step ")
    assert said.endswith("RuntimeError: my activation broke second line of its message") and "\n" not in said
    with pytest.raises(ConfigError, match=r"^act \(Softmax\) failed on a 1-D probe of 4 values: IndexError"):
        run(make_cfg("act._target_=torch.nn.Softmax", "+act.dim=1", out=tmp_path / "softmax"))
    assert not (tmp_path / "softmax" / "metrics.json").exists()  # refused as it was built: nothing trained


def test_model_code_that_fails_in_the_diagnostics_is_one_line_naming_it(make_cfg, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:  # a traceback from the diagnostics callback before
        run(make_cfg("act._target_=tests.user_models.FailInDiagnostics"))
    assert str(info.value) == ("the model (initlab.models.MLP, act tests.user_models.FailInDiagnostics) failed in "
                               "the diagnostics at step 0: ValueError: no gradient here")  # fmt: skip


def test_a_scheduler_that_fails_mid_run_is_one_line_naming_it(make_cfg, tmp_path: Path) -> None:
    onecycle = ["~scheduler.scheduler.step_size", "~scheduler.scheduler.gamma", "scheduler.interval=step",
                "scheduler.scheduler._target_=torch.optim.lr_scheduler.OneCycleLR", "+scheduler.scheduler.max_lr=0.2",
                "+scheduler.scheduler.total_steps=3"]  # fmt: skip
    with pytest.raises(ConfigError) as info:  # torch's ValueError from the 4th step of 10: a traceback before
        run(make_cfg(*onecycle))
    assert str(info.value).startswith("optimizer=sgd scheduler=step failed at step ")
    assert str(info.value).endswith("ValueError: Tried to step 4 times. The specified number of total steps is 3")


def test_a_calibration_that_raises_is_one_line_in_a_failed_record(make_cfg, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        run(make_cfg("+init.calibrate={_target_:math.sqrt}"))  # sqrt(net, x): a TypeError on the first batch
    assert str(info.value).startswith("init.calibrate (math.sqrt) failed on the first training batch: TypeError")
    assert "\n" not in str(info.value)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "failed" and "init.calibrate (math.sqrt)" in record["error"]


@pytest.mark.parametrize(("final", "status"), [(4.5, "ok"), (4.7, "diverged"), (50.0, "diverged"), (1.0, "ok")])
def test_divergence_is_a_final_loss_over_twice_the_first(final: float, status: str) -> None:
    record = {"train/loss": final}
    judge(record, first_loss=2.3, diverged=False, stopped=None)
    assert record["status"] == status and ("reason" in record) == (status == "diverged")
    nan = {"train/loss": float("nan")}
    judge(nan, first_loss=2.3, diverged=False, stopped=None)
    assert nan["status"] == "diverged" and "NaN" in nan["reason"]
    early = {"train/loss": 1.0}
    judge(early, first_loss=2.3, diverged=False, stopped="trainer.max_time=00:00:00:01 was reached at step 4 of 10")
    assert early["status"] == "stopped" and "max_time" in early["reason"]


@pytest.mark.parametrize(("max_time", "seconds"), [("{hours:12}", 43200), ("{minutes:1.5}", 90), ("00:00:02:00", 120)])
def test_max_time_as_a_dict_or_a_string_sets_the_timer(make_cfg, max_time: str, seconds: float) -> None:
    from lightning.pytorch.callbacks import Timer

    _, _, trainer = build(make_cfg(f"trainer.max_time={max_time}"))  # a dict crashed once torch had loaded
    (timer,) = [c for c in trainer.callbacks if isinstance(c, Timer)]
    assert timer.time_remaining() == pytest.approx(seconds)


def test_a_loss_that_ends_far_above_its_start_is_diverged(make_cfg, tmp_path: Path) -> None:
    record = run(make_cfg("optimizer.lr=1000"))  # finite, but the net is wrecked: the lr=1000 case
    assert record["status"] == "diverged" and "train/loss rose from" in record["reason"]
    assert record["train/loss"] > 2 * 2.0  # started near ln(10) = 2.3
    fine = run(make_cfg("optimizer.lr=0.1", out=tmp_path / "fine"))
    assert fine["status"] == "ok" and "reason" not in fine


def test_a_fifo_or_device_where_a_file_goes_is_never_replaced(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "summary.md")
    with pytest.raises(OutputError, match=r"summary.md: it is a named pipe \(FIFO\), not a file"):
        write_atomic(tmp_path / "summary.md", "x")  # the rename would replace it: /dev/full, once, by a report
    assert stat.S_ISFIFO(os.lstat(tmp_path / "summary.md").st_mode) and len(list(tmp_path.iterdir())) == 1


def test_files_follow_the_umask(make_cfg, tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        run(make_cfg())
        write_atomic(tmp_path / "summary.md", "x")
    finally:
        os.umask(old)
    for f in ("metrics.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt", "summary.md"):
        assert stat.S_IMODE((tmp_path / f).stat().st_mode) == 0o640, f


def test_a_record_is_written_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"status": "ok", "test/acc": 0.9, "loss": float("nan")})
    assert json.loads(target.read_text()) == {"status": "ok", "test/acc": 0.9, "loss": None}  # strict JSON

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("initlab.files.os.replace", crash)
    with pytest.raises(OutputError, match=r"could not write .*metrics\.json: disk full"):
        write_json_atomic(target, {"status": "half"})
    assert json.loads(target.read_text())["status"] == "ok"  # the old file is intact...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # ...and no temp file is left


def test_a_run_whose_record_cannot_be_written_fails(make_cfg, tmp_path: Path, monkeypatch) -> None:
    real = os.replace

    def full_at_the_end(src: str, dst: str) -> None:
        if str(dst).endswith("metrics.json"):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr("initlab.files.os.replace", full_at_the_end)
    with pytest.raises(OutputError, match=r"could not write .*metrics\.json: No space left on device"):
        run(make_cfg())  # trained to the end: the numbers exist, but not the record, so the run failed
    monkeypatch.undo()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "metrics.json").mkdir()  # the record's place is a directory: found before training
    with pytest.raises(OutputError, match=r"metrics\.json is a directory; the run's record goes there"):
        run(make_cfg(out=tmp_path / "other"))
    assert not (tmp_path / "other" / "checkpoints").exists()


def test_a_checkpoint_write_that_fails_ends_the_run_in_one_line(make_cfg, tmp_path: Path, monkeypatch) -> None:
    real = os.fsync
    calls = {"n": 0}

    def fills_up(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # the first checkpoints fit, the third does not; then space is freed again
            raise OSError(28, "No space left on device")
        real(fd)

    monkeypatch.setattr("initlab.files.os.fsync", fills_up)
    with pytest.raises(OutputError, match=r"could not write .*\.ckpt: No space left on device"):
        run(make_cfg())
    for ckpt in tmp_path.glob("checkpoints/*"):
        torch.load(ckpt, weights_only=True)  # whatever is there is whole
    assert not list(tmp_path.rglob("*.tmp"))
    failed = json.loads((tmp_path / "metrics.json").read_text())  # a small failed record, as the disk allows
    assert failed["status"] == "failed" and "No space left on device" in failed["error"] and "test/acc" not in failed


def test_the_lr_monitor_and_the_logged_loss_match_the_run(make_cfg, tmp_path: Path) -> None:
    record = run(make_cfg("trainer.log_every_n_steps=1"))
    logged = dict(scalars(tmp_path)["train/loss"])
    assert math.isclose(logged[record["steps"] - 1], record["train/loss"], rel_tol=1e-6)  # the last logged loss
    module = build(make_cfg())[1]
    assert module.log_every_n_steps == 2  # the module logs only on the steps the logger writes


def test_a_disk_fault_a_library_wraps_is_still_one_line(tiny_mnist: Path, tmp_path: Path) -> None:
    from initlab.run.cli import disk_fault

    try:
        try:
            raise OSError(28, "No space left on device", b"/full/x")
        except OSError as inner:
            raise ValueError("you tried to log -1 which is currently not supported") from inner
    except ValueError as e:
        e.add_note("no record was left either")
        fault = disk_fault(e)
    assert isinstance(fault, OSError) and fault.errno == 28 and fault.__notes__ == ["no record was left either"]
    assert disk_fault(ValueError("a bug")) is None  # no disk behind it: a bug keeps its traceback


@pytest.mark.slow
def test_a_full_disk_while_lightning_logs_is_one_line(tiny_mnist: Path, tmp_path: Path) -> None:
    proc = run_cli(f"data.data_dir={tiny_mnist}", *FAST, f"hydra.run.dir={tmp_path / 'run'}",
                   "+callbacks.disk_full={_target_: tests.user_models.DiskFullAtTest}")  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].endswith("/full/events.out.tfevents.x: No space left on device")


def test_json_nested_past_pythons_stack_is_no_record(tmp_path: Path) -> None:
    from initlab.files import read_json

    (tmp_path / "metrics.json").write_text("[" * 200_000 + "]" * 200_000)
    assert read_json(tmp_path / "metrics.json") is None  # read as "not valid JSON", never a RecursionError
