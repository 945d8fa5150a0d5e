"""Resume continues the checkpointed run exactly; a checkpoint is data, and a bad one is one clear error."""

import json
import logging
import os
import pickle
import shutil
import signal
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from initlab import signals
from initlab.errors import CheckpointError, ConfigError, OutputError
from tests.conftest import run
from tests.test_robust import CrashAt  # noqa: F401  (the callback the configs below name)

TIMING = ("wall_time_s", "first_step_unix", "startup_s", "resumed")
CRASH = "+callbacks.crash._target_=tests.test_robust.CrashAt"


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every TensorBoard scalar of a run dir as TensorBoard shows it (a restarted run's orphans purged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    return {t: sorted((e.step, e.value) for e in acc.Scalars(t)) for t in acc.Tags()["scalars"]}


def crashed(make_cfg, out: Path, monkeypatch: pytest.MonkeyPatch, step: int = 7) -> Path:
    """A run killed at `step` (between validations): -> its last.ckpt, written at the validation before."""
    monkeypatch.setenv("CRASH_AT", str(step))
    with pytest.raises(RuntimeError, match=f"killed at step {step}"):
        run(make_cfg(CRASH, "init=lecun", "act=tanh", "seed=3", out=out))
    monkeypatch.delenv("CRASH_AT")
    return out / "checkpoints" / "last.ckpt"


def test_resume_takes_everything_from_the_checkpoint(make_cfg, tmp_path: Path, monkeypatch) -> None:
    whole = run(make_cfg(CRASH, "init=lecun", "act=tanh", "seed=3", out=tmp_path / "whole"))
    saved = torch.load(crashed(make_cfg, tmp_path / "run", monkeypatch), weights_only=True)
    step, before = saved["global_step"], saved["initlab"]["elapsed_s"]
    # the README's command: nothing but the run dir and ckpt_path; the defaults (kaiming/relu, seed 0) must not win
    resumed = run(make_cfg(CRASH, "ckpt_path=last", out=tmp_path / "run"))  # the test's own callback: trusted
    assert {k: v for k, v in resumed.items() if k not in TIMING} == {k: v for k, v in whole.items() if k not in TIMING}
    assert (resumed["init"], resumed["act"], resumed["seed"]) == ("lecun", "tanh", 3)
    assert 0 < resumed["val/acc"] < 0.95  # the tiny data does not saturate: equal numbers mean something
    assert [r["from_step"] for r in resumed["resumed"]] == [step] and 0 < step < 7
    assert before > 0 and resumed["wall_time_s"] > before  # the time before the crash counts too
    assert resumed["resumed"][0]["overrides"][-2:] == [CRASH, "ckpt_path=last"]
    assert scalars(tmp_path / "run") == scalars(tmp_path / "whole")  # no gap, no step twice


def test_wall_time_adds_up_every_segment(make_cfg, tmp_path: Path, monkeypatch) -> None:
    last = crashed(make_cfg, tmp_path, monkeypatch)
    saved = torch.load(last, weights_only=True)
    saved["initlab"]["elapsed_s"] = 1000.0  # as if the first segment had run for 1000 s
    torch.save(saved, last)
    resumed = run(make_cfg(CRASH, "ckpt_path=last", out=tmp_path))
    assert 1000 < resumed["wall_time_s"] < 1100


def test_resume_into_another_dir_keeps_best_checkpoint_and_score(make_cfg, tmp_path: Path, monkeypatch) -> None:
    whole = run(make_cfg(CRASH, "init=lecun", "act=tanh", "seed=3", out=tmp_path / "whole"))
    last = crashed(make_cfg, tmp_path / "run", monkeypatch)
    resumed = run(make_cfg(CRASH, f"ckpt_path={last}", out=tmp_path / "elsewhere"))
    assert resumed["val/acc_best"] == whole["val/acc_best"] and resumed["val_history"] == whole["val_history"]
    best = torch.load(tmp_path / "elsewhere" / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["global_step"] == max(whole["val_history"], key=lambda p: p[1])[0]  # the final validation counts
    assert scalars(tmp_path / "elsewhere") == scalars(tmp_path / "whole")


def test_a_checkpoint_at_an_epoch_end_resumes_into_the_next_epoch(make_cfg, tmp_path: Path, monkeypatch) -> None:
    every_epoch = ["trainer.val_check_interval=5", "trainer.max_epochs=3"]  # 5 steps an epoch: val at each end
    whole = run(make_cfg(CRASH, *every_epoch, out=tmp_path / "whole"))
    monkeypatch.setenv("CRASH_AT", "7")
    with pytest.raises(RuntimeError):
        run(make_cfg(CRASH, *every_epoch, out=tmp_path / "run"))
    monkeypatch.delenv("CRASH_AT")
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5
    resumed = run(make_cfg(CRASH, *every_epoch, "ckpt_path=last", out=tmp_path / "run"))
    assert resumed["steps"] == whole["steps"] == 15 and resumed["val_history"] == whole["val_history"]
    assert resumed["test/loss"] == whole["test/loss"]


class SignalAt(pl.Callback):
    """Sends this process $SIGNAL_AT_SIGNAL during training step $SIGNAL_AT, as `kill` or SLURM would."""

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == int(os.environ.get("SIGNAL_AT", -1)):
            os.kill(os.getpid(), getattr(signal, os.environ["SIGNAL_AT_SIGNAL"]))


@pytest.mark.parametrize(
    ("step", "sig"), [(1, "SIGTERM"), (2, "SIGTERM"), (4, "SIGTERM"), (5, "SIGINT"), (8, "SIGINT")]
)  # validations follow steps 3, 6 and 9 (a signal in step 2 or 8 waits for them); epochs end at steps 5 and 10
def test_a_signal_at_any_step_stops_where_resuming_is_exact(make_cfg, tmp_path: Path, monkeypatch, step, sig) -> None:
    callback = "+callbacks.signal._target_=tests.test_resume.SignalAt"
    whole = run(make_cfg(callback, "init=xavier", "act=tanh", out=tmp_path / "whole"))
    monkeypatch.setenv("SIGNAL_AT", str(step))
    monkeypatch.setenv("SIGNAL_AT_SIGNAL", sig)
    signals.install()
    try:
        with pytest.raises(signals.Interrupted) as info:
            run(make_cfg(callback, "init=xavier", "act=tanh", out=tmp_path / "run"))
    finally:
        for s in signals.HANDLED:
            signal.signal(s, signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL)
        signals.STATE.received = None  # a new process would start clean
    stopped = json.loads((tmp_path / "run" / "metrics.json").read_text())
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert stopped["status"] == "interrupted" and stopped["signal"] == sig == info.value.name
    assert saved == stopped["steps"] and step < saved <= step + 2  # where it stopped, not a validation before
    assert not list((tmp_path / "run" / "checkpoints").glob("*.pending"))
    monkeypatch.delenv("SIGNAL_AT")
    resumed = run(make_cfg(callback, "ckpt_path=last", out=tmp_path / "run"))
    assert {k: v for k, v in resumed.items() if k not in TIMING} == {k: v for k, v in whole.items() if k not in TIMING}


def test_finished_run_is_left_alone(make_cfg, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run(make_cfg(out=tmp_path))
    before = (tmp_path / "metrics.json").read_bytes()
    with caplog.at_level(logging.INFO):
        run(make_cfg("ckpt_path=last", out=tmp_path))
    assert "already finished" in caplog.text and "nothing to do" in caplog.text
    assert (tmp_path / "metrics.json").read_bytes() == before
    longer = run(make_cfg("ckpt_path=last", "trainer.max_epochs=3", out=tmp_path))  # extending is allowed
    assert longer["steps"] == 15 and longer["resumed"][0]["from_step"] == 10


def test_last_without_checkpoint_starts_fresh_and_says_so(make_cfg, tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.INFO):
        record = run(make_cfg("ckpt_path=last"))
    assert "no checkpoint" in caplog.text and "starting fresh" in caplog.text
    assert record["status"] == "ok" and record["steps"] == 10 and "resumed" not in record


def test_a_conflicting_choice_is_refused(make_cfg, tmp_path: Path) -> None:
    run(make_cfg("init=lecun", out=tmp_path))
    (tmp_path / "metrics.json").unlink()  # as if killed
    with pytest.raises(CheckpointError, match=r"init='kaiming' conflicts with the checkpoint's init='lecun'"):
        run(make_cfg("ckpt_path=last", "init=kaiming", out=tmp_path))
    with pytest.raises(CheckpointError, match=r"optimizer.lr=0.5 conflicts with the checkpoint's optimizer.lr=0.1"):
        run(make_cfg("ckpt_path=last", "optimizer.lr=0.5", out=tmp_path))
    for key, value in (("seed", "5"), ("data.val_size", "50"), ("data.batch_size", "50"), ("act", "tanh")):
        with pytest.raises(CheckpointError, match=rf"{key}=.*conflicts with the checkpoint's {key}="):
            run(make_cfg("ckpt_path=last", f"{key}={value}", out=tmp_path))


def test_original_config_and_overrides_survive(make_cfg, tmp_path: Path, monkeypatch) -> None:
    crashed(make_cfg, tmp_path, monkeypatch)
    hydra_dir = tmp_path / ".hydra"
    hydra_dir.mkdir()
    (hydra_dir / "overrides.yaml").write_text("- ckpt_path=last\n")  # what Hydra writes for the resume command
    run(make_cfg(CRASH, "ckpt_path=last", out=tmp_path))
    saved = (hydra_dir / "overrides.yaml").read_text()
    assert "init=lecun" in saved and "act=tanh" in saved and "seed=3" in saved
    assert "nonlinearity: linear" in (hydra_dir / "config.yaml").read_text()  # lecun's, not the default kaiming


def real_checkpoint(make_cfg, tmp_path: Path) -> Path:
    run(make_cfg(out=tmp_path / "src"))
    return tmp_path / "src" / "checkpoints" / "last.ckpt"


def write_bad(kind: str, good: Path, path: Path) -> Path:
    data = good.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random bytes":
        path.write_bytes(os.urandom(5000))
    elif kind == "text file":
        path.write_text("model: mlp\n")
    elif kind == "foreign pickle":
        path.write_bytes(pickle.dumps(Path("/etc/passwd")))  # weights_only refuses any class it does not know
    elif kind == "plain dict":
        torch.save({"state_dict": {}, "epoch": 1}, path)  # a torch file, but no run record
    elif kind == "directory":
        path.mkdir()
    elif kind == "other architecture":
        saved = torch.load(good, weights_only=True)
        saved["state_dict"]["net.0.weight"] = torch.zeros(50, 784)
        torch.save(saved, path)
    return path


BAD_CKPT = {
    "empty": "is not a readable checkpoint",
    "truncated": "is not a readable checkpoint",
    "random bytes": "is not a readable checkpoint",
    "text file": "is not a readable checkpoint",
    "foreign pickle": "is not a readable checkpoint",
    "plain dict": "is not an initlab checkpoint",
    "directory": "is a directory",
    "other architecture": "holds another architecture",
}


@pytest.mark.parametrize(
    ("kind", "mode"),
    [(k, "resume") for k in BAD_CKPT] + [(k, "evaluate") for k in ("truncated", "plain dict", "other architecture")],
)
def test_bad_checkpoints_are_one_clear_error(make_cfg, tmp_path: Path, kind: str, mode: str) -> None:
    bad = write_bad(kind, real_checkpoint(make_cfg, tmp_path), tmp_path / "bad.ckpt")
    out = tmp_path / "out"
    with pytest.raises(CheckpointError, match=BAD_CKPT[kind]) as info:
        run(make_cfg(f"ckpt_path={bad}", *(["train=false"] if mode == "evaluate" else []), out=out))
    assert "\n" not in str(info.value) and str(bad) in str(info.value)
    assert "test/acc" not in json.loads((out / "metrics.json").read_text())  # a failed record, not a result
    assert not list(out.glob("checkpoints/*.ckpt"))


def test_a_checkpoint_cannot_run_code(make_cfg, tmp_path: Path) -> None:
    good = real_checkpoint(make_cfg, tmp_path)
    saved = torch.load(good, weights_only=True)
    victim = tmp_path / "pwned.txt"
    saved["initlab"]["config"]["optimizer"] = {
        "_target_": "pathlib.Path.write_text", "self": {"_target_": "pathlib.Path", "_args_": [str(victim)]},
        "data": "owned", "lr": 0.1,
    }  # fmt: skip
    torch.save(saved, tmp_path / "evil.ckpt")
    for extra in ([], ["train=false"]):
        with pytest.raises(CheckpointError, match=r"names _target_ 'pathlib.Path.write_text' at optimizer"):
            run(make_cfg(f"ckpt_path={tmp_path / 'evil.ckpt'}", *extra, out=tmp_path / f"out{len(extra)}"))
    assert not victim.exists()


def test_evaluating_last_needs_a_path(make_cfg) -> None:
    with pytest.raises(CheckpointError, match="to evaluate, give the path"):
        run(make_cfg("train=false", "ckpt_path=last"))


def test_checkpoints_path_that_is_a_file(make_cfg, tmp_path: Path) -> None:
    (tmp_path / "checkpoints").write_text("not a dir")
    with pytest.raises(Exception, match="checkpoints is a file"):
        run(make_cfg())
    shutil.rmtree(tmp_path / "checkpoints", ignore_errors=True)


def test_a_refused_resume_leaves_the_runs_record_alone(make_cfg, tmp_path: Path) -> None:
    run(make_cfg(out=tmp_path))
    before = (tmp_path / "metrics.json").read_bytes()
    for bad in (["optimizer.lr=0.5"], ["seed=-1"], ["~optimizer.weight_decay"]):
        with pytest.raises((CheckpointError, ConfigError)):
            run(make_cfg("ckpt_path=last", *bad, out=tmp_path))
        assert (tmp_path / "metrics.json").read_bytes() == before  # refused: nothing of the run was touched


def test_only_the_runs_own_checkpoint_resumes_into_a_dir_that_holds_it(make_cfg, tmp_path: Path) -> None:
    from initlab import rundir

    run(make_cfg("init=lecun", out=tmp_path / "a"))
    run(make_cfg(out=tmp_path / "b"))
    for d in ("a", "b"):
        rundir.release(tmp_path / d)  # as a new process would find them
    before = (tmp_path / "b" / "metrics.json").read_bytes()
    for other in ([f"ckpt_path={tmp_path / 'a' / 'checkpoints' / 'last.ckpt'}"],
                  ["train=false", f"ckpt_path={tmp_path / 'b' / 'checkpoints' / 'best.ckpt'}"]):  # fmt: skip
        with pytest.raises(OutputError, match="already holds a run"):
            run(make_cfg(*other, out=tmp_path / "b"))
        assert (tmp_path / "b" / "metrics.json").read_bytes() == before


def test_last_with_no_checkpoint_in_a_dir_of_another_run_is_refused(make_cfg, tmp_path: Path) -> None:
    earlier = {"status": "interrupted", "overrides": ["init=lecun", "seed=3"]}
    (tmp_path / "metrics.json").write_text(json.dumps(earlier))
    with pytest.raises(
        CheckpointError, match=r"no checkpoint to resume.*own overrides: init=lecun seed=3 ckpt_path=last"
    ):
        run(make_cfg("ckpt_path=last", out=tmp_path))
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "interrupted"


def test_a_crafted_checkpoint_cannot_choose_where_the_run_writes(make_cfg, tmp_path: Path) -> None:
    good = real_checkpoint(make_cfg, tmp_path)
    saved = torch.load(good, weights_only=True)
    elsewhere = tmp_path / "elsewhere"
    saved["initlab"]["config"]["callbacks"]["model_checkpoint"]["dirpath"] = str(elsewhere)
    saved["initlab"]["config"]["logger"]["tensorboard"]["save_dir"] = str(elsewhere)
    torch.save(saved, tmp_path / "crafted.ckpt")
    run(make_cfg(f"ckpt_path={tmp_path / 'crafted.ckpt'}", "trainer.max_epochs=3", out=tmp_path / "out"))
    assert not elsewhere.exists() and (tmp_path / "out" / "checkpoints" / "last.ckpt").is_file()


def test_a_malformed_run_record_is_one_line(make_cfg, tmp_path: Path) -> None:
    saved = torch.load(real_checkpoint(make_cfg, tmp_path), weights_only=True)
    saved["initlab"] = {"choices": {}}  # no config
    torch.save(saved, tmp_path / "odd.ckpt")
    with pytest.raises(CheckpointError, match="its run record is malformed"):
        run(make_cfg("train=false", f"ckpt_path={tmp_path / 'odd.ckpt'}", out=tmp_path / "out"))


class SignalIn(pl.Callback):
    """Sends this process SIGTERM once, in the hook named by $SIGNAL_IN (a validation inside fit, or the test)."""

    def _maybe(self, trainer: pl.Trainer, hook: str) -> None:
        due = hook != "validation" or (trainer.state.fn == "fit" and trainer.global_step == 6)
        if os.environ.get("SIGNAL_IN") == hook and not signals.STATE.received and due:
            os.kill(os.getpid(), signal.SIGTERM)

    def on_validation_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        self._maybe(trainer, "validation")

    def on_test_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        self._maybe(trainer, "test")


@pytest.mark.parametrize("where", ["validation", "test"])
def test_sigterm_in_a_validation_or_the_final_test_stops_cleanly(make_cfg, tmp_path: Path, monkeypatch, where) -> None:
    callback = "+callbacks.signal._target_=tests.test_resume.SignalIn"
    whole = run(make_cfg(callback, out=tmp_path / "whole"))
    monkeypatch.setenv("SIGNAL_IN", where)
    signals.install()
    try:
        with pytest.raises(signals.Interrupted):
            run(make_cfg(callback, out=tmp_path / "run"))
    finally:
        for s in signals.HANDLED:
            signal.signal(s, signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL)
        signals.STATE.received = None
    stopped = json.loads((tmp_path / "run" / "metrics.json").read_text())
    step = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert stopped["status"] == "interrupted" and stopped["steps"] == step == (6 if where == "validation" else 10)
    if where == "test":  # the run was complete: its numbers are in the record, train/loss too
        assert stopped["train/loss"] == whole["train/loss"] and stopped["test/acc"] == whole["test/acc"]
    monkeypatch.delenv("SIGNAL_IN")
    resumed = run(make_cfg(callback, "ckpt_path=last", out=tmp_path / "run"))
    assert {k: v for k, v in resumed.items() if k not in TIMING} == {k: v for k, v in whole.items() if k not in TIMING}


def test_the_best_checkpoint_and_score_move_with_a_run_resumed_elsewhere(tmp_path: Path) -> None:
    from initlab.checkpointing import BestCheckpoint

    old = tmp_path / "old" / "checkpoints"
    old.mkdir(parents=True)
    (old / "best.ckpt").write_bytes(b"x")
    new_dir = tmp_path / "new" / "checkpoints"
    cb = BestCheckpoint(dirpath=new_dir, filename="best", monitor="val/acc", mode="max", save_last=True)
    score = torch.tensor(0.8)
    best = str(old / "best.ckpt")
    state = {"monitor": "val/acc", "best_model_score": score, "best_model_path": best, "current_score": score,
             "dirpath": str(old), "best_k_models": {best: score}, "kth_best_model_path": best, "kth_value": score,
             "last_model_path": ""}  # fmt: skip
    cb.load_state_dict(state)
    new = str(new_dir / "best.ckpt")
    assert cb.best_model_path == new and (new_dir / "best.ckpt").read_bytes() == b"x"
    assert list(cb.best_k_models) == [new] and cb.best_k_models[new].item() == pytest.approx(0.8)
    assert cb.best_model_score.item() == pytest.approx(0.8)
