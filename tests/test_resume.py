"""Resume continues the checkpointed run exactly, for every model and setting it allows: the resumed record equals
the uninterrupted run's (every number, val_history, TensorBoard curves), whatever stopped it and wherever."""

import io
import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from initlab.errors import CheckpointError, ConfigError
from initlab.run import signals
from initlab.run.resume import RESUMABLE
from initlab.run.runstate import rng_states, set_rng_states
from tests.conftest import (
    CRASH,
    SIGNAL_AT,
    SIGNAL_IN,
    USER_CONF,
    make_tiny_mnist,
    run,
    same_record,
    scalars,
)


def crashed(make_cfg, out: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str, step: int = 7) -> Path:
    """A run killed at `step` (between validations): -> its last.ckpt, written at the validation before."""
    monkeypatch.setenv("CRASH_AT", str(step))
    with pytest.raises(RuntimeError, match=f"killed at step {step}"):
        run(make_cfg(CRASH, *overrides, out=out))
    monkeypatch.delenv("CRASH_AT")
    return out / "checkpoints" / "last.ckpt"


def test_resume_takes_everything_from_the_checkpoint(
    make_cfg, uninterrupted, tmp_path: Path, monkeypatch, caplog
) -> None:
    mine = ["init=lecun", "act=tanh", "seed=3"]
    whole, whole_dir = uninterrupted(CRASH, *mine)
    saved = torch.load(crashed(make_cfg, tmp_path / "run", monkeypatch, *mine), weights_only=True)
    step, before = saved["global_step"], saved["initlab"]["elapsed_s"]
    # the README's command: nothing but the run dir and ckpt_path; the defaults (kaiming/relu, seed 0) must not win
    with caplog.at_level(logging.INFO):
        resumed = run(make_cfg(CRASH, "ckpt_path=last", out=tmp_path / "run"))
    assert f"resuming {tmp_path / 'run'} from step {step}" in caplog.text  # one line: where, and from which step
    same_record(resumed, whole, skip=("overrides",))
    assert (resumed["init"], resumed["act"], resumed["seed"]) == ("lecun", "tanh", 3)
    assert 0 < resumed["val/acc"] < 0.95  # the tiny data does not saturate: equal numbers mean something
    assert [r["from_step"] for r in resumed["resumed"]] == [step] and 0 < step < 7
    assert before > 0 and resumed["wall_time_s"] > before  # the time before the crash counts too
    assert resumed["resumed"][0]["overrides"][-2:] == [CRASH, "ckpt_path=last"]
    assert scalars(tmp_path / "run") == scalars(whole_dir)  # no gap, no step twice


def test_wall_time_adds_up_every_segment(make_cfg, tmp_path: Path, monkeypatch) -> None:
    last = crashed(make_cfg, tmp_path, monkeypatch)
    saved = torch.load(last, weights_only=True)
    saved["initlab"]["elapsed_s"] = 1000.0  # as if the first segment had run for 1000 s
    torch.save(saved, last)
    resumed = run(make_cfg(CRASH, "ckpt_path=last", out=tmp_path))
    assert 1000 < resumed["wall_time_s"] < 1100


def test_resume_into_another_dir_keeps_best_checkpoint_and_score(
    make_cfg, uninterrupted, tmp_path: Path, monkeypatch
) -> None:
    mine = ["init=lecun", "act=tanh", "seed=3"]
    whole, whole_dir = uninterrupted(CRASH, *mine)
    last = crashed(make_cfg, tmp_path / "run", monkeypatch, *mine)
    resumed = run(make_cfg(CRASH, f"ckpt_path={last}", out=tmp_path / "elsewhere"))
    assert resumed["val/acc_best"] == whole["val/acc_best"] and resumed["val_history"] == whole["val_history"]
    best = torch.load(tmp_path / "elsewhere" / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["global_step"] == max(whole["val_history"], key=lambda p: p[1])[0]  # the final validation counts
    assert scalars(tmp_path / "elsewhere") == scalars(whole_dir)


def test_a_checkpoint_at_an_epoch_end_resumes_into_the_next_epoch(
    make_cfg, uninterrupted, tmp_path: Path, monkeypatch
) -> None:
    every_epoch = ["trainer.val_check_interval=5", "trainer.max_epochs=3"]  # 5 steps an epoch: val at each end
    whole = uninterrupted(CRASH, *every_epoch)[0]
    assert torch.load(crashed(make_cfg, tmp_path / "run", monkeypatch, *every_epoch), weights_only=True)[
        "global_step"] == 5  # fmt: skip
    resumed = run(make_cfg(CRASH, *every_epoch, "ckpt_path=last", out=tmp_path / "run"))
    assert resumed["steps"] == whole["steps"] == 15
    same_record(resumed, whole, skip=("overrides",))


@pytest.mark.parametrize(
    ("step", "sig"),
    [(1, "SIGUSR1"), (2, "SIGTERM"), (4, "SIGHUP"), (5, "SIGINT"), pytest.param(8, "SIGINT", marks=pytest.mark.slow)],
)  # validations follow steps 3, 6 and 9 (a signal in step 2 or 8 waits for them); epochs end at steps 5 and 10
def test_a_signal_at_any_step_stops_where_resuming_is_exact(
    make_cfg, uninterrupted, tmp_path, monkeypatch, signalled, step, sig
):
    whole = uninterrupted(SIGNAL_AT, "init=xavier", "act=tanh")[0]
    monkeypatch.setenv("SIGNAL_AT", str(step))
    monkeypatch.setenv("SIGNAL_AT_SIGNAL", sig)
    with pytest.raises(signals.Interrupted) as info:
        run(make_cfg(SIGNAL_AT, "init=xavier", "act=tanh", out=tmp_path / "run"))
    signals.STATE.received = None  # the resume is a new process
    stopped = json.loads((tmp_path / "run" / "metrics.json").read_text())
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert stopped["status"] == "interrupted" and stopped["signal"] == sig == info.value.name
    assert saved == stopped["steps"] and step < saved <= step + 2  # where it stopped, not a validation before
    assert not list((tmp_path / "run" / "checkpoints").glob("*.pending"))
    monkeypatch.delenv("SIGNAL_AT")
    resumed = run(make_cfg(SIGNAL_AT, "ckpt_path=last", out=tmp_path / "run"))
    same_record(resumed, whole, skip=("overrides",))


@pytest.mark.parametrize("where", ["validation", "test"])
def test_sigterm_in_a_validation_or_the_final_test_stops_cleanly(
    make_cfg, uninterrupted, tmp_path, monkeypatch, signalled, where
):
    whole = uninterrupted(SIGNAL_IN)[0]
    monkeypatch.setenv("SIGNAL_IN", where)
    with pytest.raises(signals.Interrupted):
        run(make_cfg(SIGNAL_IN, out=tmp_path / "run"))
    signals.STATE.received = None
    stopped = json.loads((tmp_path / "run" / "metrics.json").read_text())
    step = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert stopped["status"] == "interrupted" and stopped["steps"] == step == (6 if where == "validation" else 10)
    if where == "test":  # the run was complete: its numbers are in the record, train/loss too
        assert stopped["train/loss"] == whole["train/loss"] and stopped["test/acc"] == whole["test/acc"]
    monkeypatch.delenv("SIGNAL_IN")
    resumed = run(make_cfg(SIGNAL_IN, "ckpt_path=last", out=tmp_path / "run"))
    same_record(resumed, whole, skip=("overrides",))


def test_a_model_with_dropout_resumes_to_the_same_numbers(make_cfg, uninterrupted, tmp_path: Path, monkeypatch) -> None:
    """Its random numbers (torch, numpy, python) are in the checkpoint: the resumed run draws what the whole one did."""
    user = f"hydra.searchpath=[file://{USER_CONF}]"  # the resume names the user's config dir too: it trusts it
    whole = uninterrupted(CRASH, user, "model=dropout_mlp")[0]
    crashed(make_cfg, tmp_path / "run", monkeypatch, user, "model=dropout_mlp")
    resumed = run(make_cfg(CRASH, user, "ckpt_path=last", out=tmp_path / "run"))
    same_record(resumed, whole, skip=("overrides",))
    again = run(make_cfg(CRASH, user, "model=dropout_mlp", "seed=1", out=tmp_path / "other"))
    assert again["test/loss"] != whole["test/loss"]  # dropout draws matter: the equality above means something


def test_gradient_accumulation_interrupted_mid_window_resumes_exactly(
    make_cfg, uninterrupted, tmp_path, monkeypatch, signalled
):
    mine = ["+trainer.accumulate_grad_batches=2", "trainer.val_check_interval=4", "trainer.max_epochs=4"]
    whole = uninterrupted(SIGNAL_AT, *mine)[0]
    monkeypatch.setenv("SIGNAL_AT", "1")  # at optimizer step 1 (batch 2): stops after that batch, mid-window
    monkeypatch.setenv("SIGNAL_AT_SIGNAL", "SIGTERM")
    with pytest.raises(signals.Interrupted):
        run(make_cfg(SIGNAL_AT, *mine, out=tmp_path / "run"))
    signals.STATE.received = None
    monkeypatch.delenv("SIGNAL_AT")
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["initlab"]["grads"]  # stopped inside a window: its accumulated gradients travel with it
    resumed = run(make_cfg(SIGNAL_AT, *mine, "ckpt_path=last", out=tmp_path / "run"))
    same_record(resumed, whole, skip=("overrides",))


@pytest.mark.parametrize(("precision", "dtype"), [("64", torch.float64), ("bf16-true", torch.bfloat16)])
def test_a_run_at_another_precision_resumes_and_evaluates(
    make_cfg, uninterrupted, tmp_path: Path, monkeypatch, precision: str, dtype: torch.dtype
) -> None:
    """Its weights are of the precision's dtype: the checkpoint is the run's own, not malformed."""
    mine = f"+trainer.precision={precision}"
    whole = uninterrupted(CRASH, mine)[0]
    last = crashed(make_cfg, tmp_path / "run", monkeypatch, mine)
    assert torch.load(last, weights_only=True)["state_dict"]["net.fc1.weight"].dtype == dtype
    same_record(run(make_cfg(CRASH, mine, "ckpt_path=last", out=tmp_path / "run")), whole, skip=("overrides",))
    evaluated = run(make_cfg(f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "train=false",
                             out=tmp_path / "evaluated"))  # fmt: skip
    assert evaluated["test/acc"] == whole["test/acc"]


RESUMABLE_CHANGES = {  # keys: their different values, and the uninterrupted run to compare with
    ("data.data_dir",): (["data.data_dir={copy}"], []),  # the same files elsewhere
    ("trainer.max_epochs",): (["trainer.max_epochs=3"], ["trainer.max_epochs=3"]),
    ("trainer.max_steps",): (["trainer.max_steps=12"], ["trainer.max_steps=12"]),
    ("data.download", "trainer.max_time", "trainer.enable_progress_bar", "trainer.enable_model_summary", "train",
     "ckpt_path"): (["data.download=false", "trainer.max_time=00:01:00:00", "trainer.enable_progress_bar=true",
                     "trainer.enable_model_summary=true", "train=true"], []),  # how it shows, how long it may take
}  # fmt: skip


def test_every_resumable_key_is_covered() -> None:
    assert set(RESUMABLE) == {k for keys in RESUMABLE_CHANGES for k in keys}  # a key joins only with a test here


@pytest.mark.parametrize("keys", list(RESUMABLE_CHANGES), ids=lambda keys: keys[0])
def test_a_resumable_key_changes_no_number(make_cfg, uninterrupted, tmp_path: Path, monkeypatch, keys) -> None:
    changes, planned = RESUMABLE_CHANGES[keys]
    whole, whole_dir = uninterrupted(CRASH, *planned)
    crashed(make_cfg, tmp_path / "run", monkeypatch)
    changes = [c.format(copy=make_tiny_mnist(tmp_path / "copy")) if "{copy}" in c else c for c in changes]
    resumed = run(make_cfg(CRASH, "ckpt_path=last", *changes, out=tmp_path / "run"))
    same_record(resumed, whole, skip=("overrides",))
    assert scalars(tmp_path / "run") == scalars(whole_dir)


@pytest.mark.parametrize(("key", "value"), [("trainer.devices", "2"), ("num_threads", "2"), ("data.eval_batch_size",
                         "30"), ("trainer.accelerator", "cpu"), ("+trainer.accumulate_grad_batches", "2")])  # fmt: skip
def test_keys_that_change_numbers_are_not_resumable(make_cfg, tmp_path: Path, monkeypatch, key, value) -> None:
    crashed(make_cfg, tmp_path, monkeypatch)
    with pytest.raises(CheckpointError, match=rf"{key.lstrip('+')}=.*conflicts with the checkpoint's"):
        run(make_cfg(CRASH, "ckpt_path=last", f"{key}={value}", out=tmp_path))


def test_an_evaluation_may_take_all_of_the_test_set_a_resume_may_not(make_cfg, uninterrupted, tmp_path: Path) -> None:
    """A run limited to 1 test batch, evaluated on the whole test set (2 batches of 100): another number, as asked."""
    limited = ["++trainer.limit_test_batches=1"]
    whole, run_dir = uninterrupted(*limited)
    last = run_dir / "checkpoints" / "last.ckpt"
    full = run(make_cfg(f"ckpt_path={last}", "train=false", "++trainer.limit_test_batches=1.0", out=tmp_path / "e"))
    same = run(make_cfg(f"ckpt_path={last}", "train=false", out=tmp_path / "same"))
    assert same["test/acc"] == whole["test/acc"] != full["test/acc"]
    with pytest.raises(CheckpointError, match=r"limit_test_batches=1\.0 conflicts .*; drop it to resume"):
        run(
            make_cfg(
                f"ckpt_path={last}", "++trainer.limit_test_batches=1.0", "trainer.max_epochs=3", out=tmp_path / "r"
            )
        )
    with pytest.raises(CheckpointError, match=r"seed=3 conflicts .*; drop it to evaluate it, or start a new run"):
        run(make_cfg(f"ckpt_path={last}", "train=false", "seed=3", out=tmp_path / "s"))


def test_a_resume_cannot_cut_a_run_below_its_checkpoint(make_cfg, tmp_path: Path, monkeypatch) -> None:
    long = ["trainer.max_epochs=4", "trainer.val_check_interval=5"]
    crashed(make_cfg, tmp_path, monkeypatch, *long, step=12)  # checkpoint at step 10: the end of epoch 2
    with pytest.raises(CheckpointError, match=r"trainer.max_steps=4 is below the checkpoint's step 10 .*at least 10"):
        run(make_cfg(CRASH, *long, "ckpt_path=last", "trainer.max_steps=4", out=tmp_path))
    with pytest.raises(CheckpointError, match=r"trainer.max_epochs=1 is below the checkpoint's epoch"):
        run(make_cfg(CRASH, *long, "ckpt_path=last", "trainer.max_epochs=1", out=tmp_path))
    stops = run(make_cfg(CRASH, *long, "ckpt_path=last", "trainer.max_steps=10", out=tmp_path))  # here: stop here
    assert stops["steps"] == 10 and stops["status"] == "ok"


@pytest.mark.slow  # three runs
def test_a_run_stopped_by_max_time_says_so_and_can_be_completed(make_cfg, uninterrupted, tmp_path: Path) -> None:
    slow = ["data.batch_size=1", "trainer.max_epochs=3", "trainer.val_check_interval=100"]  # 1500 steps
    whole = uninterrupted(*slow)[0]
    stopped = run(make_cfg(*slow, "trainer.max_time=00:00:00:01", out=tmp_path / "run"))
    assert stopped["status"] == "stopped" and "trainer.max_time=00:00:00:01 was reached at step" in stopped["reason"]
    assert 0 < stopped["steps"] < 1500 and "ckpt_path=last" in stopped["reason"]
    resumed = run(make_cfg(*slow, "ckpt_path=last", "trainer.max_time=null", out=tmp_path / "run"))
    assert resumed["status"] == "ok" and resumed["steps"] == 1500
    same_record(resumed, whole, skip=("overrides",))


def test_finished_run_is_left_alone(make_cfg, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run(make_cfg(out=tmp_path))
    before = (tmp_path / "metrics.json").read_bytes()
    with caplog.at_level(logging.INFO):
        run(make_cfg("ckpt_path=last", out=tmp_path))
    assert "already finished" in caplog.text and "nothing to do" in caplog.text
    assert (tmp_path / "metrics.json").read_bytes() == before
    longer = run(make_cfg("ckpt_path=last", "trainer.max_epochs=3", out=tmp_path))  # extending is allowed
    assert longer["steps"] == 15 and longer["resumed"][0]["from_step"] == 10


def test_a_finished_run_extended_by_max_steps_equals_one_run_to_that_step(make_cfg, tmp_path: Path) -> None:
    """Its last.ckpt sits at an epoch's end: the extension starts the next epoch (it went on inside the ended one,
    one batch past the epoch's end, then stopped a short epoch early: 101 steps of 120 on MNIST)."""
    whole = run(make_cfg("trainer.max_steps=13", "trainer.max_epochs=4", out=tmp_path / "whole"))
    run(make_cfg(out=tmp_path / "run"))  # 2 epochs of 5 steps
    extended = run(make_cfg("ckpt_path=last", "trainer.max_steps=13", "trainer.max_epochs=4", out=tmp_path / "run"))
    assert extended["status"] == whole["status"] == "ok" and extended["steps"] == whole["steps"] == 13
    same_record(extended, whole, skip=("overrides",))


def test_last_without_checkpoint_starts_fresh_and_says_so(make_cfg, tmp_path: Path, caplog) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))  # what an attempt killed before its first checkpoint had logged
    for step in (2, 4):
        writer.add_scalar("train/loss", 99.0, step)
    writer.close()
    with caplog.at_level(logging.INFO):
        record = run(make_cfg("ckpt_path=last", out=tmp_path))
    assert "no checkpoint" in caplog.text and "starting fresh" in caplog.text
    assert record["status"] == "ok" and record["steps"] == 10 and "resumed" not in record
    losses = scalars(tmp_path)["train/loss"]
    assert len({s for s, _ in losses}) == len(losses) and 99.0 not in {v for _, v in losses}  # no step twice


def test_a_conflicting_value_is_refused(make_cfg, tmp_path: Path) -> None:
    run(make_cfg("init=lecun", out=tmp_path))
    (tmp_path / "metrics.json").unlink()  # as if killed
    with pytest.raises(CheckpointError, match=r"init='kaiming' conflicts with the checkpoint's init='lecun'"):
        run(make_cfg("ckpt_path=last", "init=kaiming", out=tmp_path))
    with pytest.raises(CheckpointError, match=r"optimizer.lr=0.5 conflicts with the checkpoint's optimizer.lr=0.1"):
        run(make_cfg("ckpt_path=last", "optimizer.lr=0.5", out=tmp_path))
    for key, value in (("seed", "5"), ("data.val_size", "50"), ("data.batch_size", "50"), ("act", "tanh")):
        with pytest.raises(CheckpointError, match=rf"{key}=.*conflicts with the checkpoint's {key}="):
            run(make_cfg("ckpt_path=last", f"{key}={value}", out=tmp_path))


def test_a_refused_resume_leaves_the_runs_record_alone(make_cfg, tmp_path: Path) -> None:
    run(make_cfg(out=tmp_path))
    before = (tmp_path / "metrics.json").read_bytes()
    for bad in (["optimizer.lr=0.5"], ["seed=-1"], ["~optimizer.weight_decay"], ["trainer.max_steps=3"]):
        with pytest.raises((CheckpointError, ConfigError)):
            run(make_cfg("ckpt_path=last", *bad, out=tmp_path))
        assert (tmp_path / "metrics.json").read_bytes() == before  # refused: nothing of the run was touched


def test_original_config_and_overrides_survive(make_cfg, tmp_path: Path, monkeypatch) -> None:
    crashed(make_cfg, tmp_path, monkeypatch, "init=lecun", "act=tanh", "seed=3")
    hydra_dir = tmp_path / ".hydra"
    hydra_dir.mkdir()
    (hydra_dir / "overrides.yaml").write_text("- ckpt_path=last\n")  # what Hydra writes for the resume command
    run(make_cfg(CRASH, "ckpt_path=last", out=tmp_path))
    saved = (hydra_dir / "overrides.yaml").read_text()
    assert "init=lecun" in saved and "act=tanh" in saved and "seed=3" in saved
    assert "nonlinearity: linear" in (hydra_dir / "config.yaml").read_text()  # lecun's, not the default kaiming


def test_only_the_runs_own_checkpoint_resumes_into_a_dir_that_holds_it(make_cfg, tmp_path: Path) -> None:
    from initlab.errors import OutputError
    from initlab.run import rundir

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


def test_the_best_checkpoint_and_score_move_with_a_run_resumed_elsewhere(tmp_path: Path) -> None:
    from initlab.run.checkpoints import BestCheckpoint

    old = tmp_path / "old" / "checkpoints"
    old.mkdir(parents=True)
    (old / "best.ckpt").write_bytes(b"x")
    new_dir = tmp_path / "new" / "checkpoints"
    cb = BestCheckpoint(dirpath=new_dir, filename="best", monitor="val/acc", mode="max", save_last=True)
    cb.source = old.resolve()  # as setup finds it: the run resumes old/checkpoints/last.ckpt
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


@pytest.mark.parametrize("where", ["outside", "link", "its own dir elsewhere", "another name"])
def test_a_best_checkpoint_path_that_is_not_the_runs_own_is_never_copied(tmp_path: Path, where: str) -> None:
    """The checkpoint names best_model_path and dirpath both: only a best.ckpt beside the resumed checkpoint
    comes along (a crafted pair, dirpath=/root/.ssh and id_rsa in it, copied the key into outputs/)."""
    from initlab.run.checkpoints import BestCheckpoint

    old = tmp_path / "old" / "checkpoints"
    old.mkdir(parents=True)
    secret = tmp_path / "secret.ckpt"
    secret.write_bytes(b"not the run's")
    best = {"outside": secret, "link": old / "best.ckpt", "its own dir elsewhere": secret,
            "another name": old / "keep.txt"}[where]  # fmt: skip
    if where == "link":  # a link to it in the run's dir
        best.symlink_to(secret)
    if where == "another name":
        best.write_bytes(b"a file of the run's dir that is not its best model")
    named_dir = tmp_path if where == "its own dir elsewhere" else old  # the checkpoint names secret's own dir
    new_dir = tmp_path / "new" / "checkpoints"
    cb = BestCheckpoint(dirpath=new_dir, filename="best", monitor="val/acc", mode="max", save_last=True)
    cb.source = old.resolve()  # the run resumes old/checkpoints/last.ckpt
    score = torch.tensor(0.8)
    cb.load_state_dict({"monitor": "val/acc", "best_model_score": score, "best_model_path": str(best),
                        "dirpath": str(named_dir), "best_k_models": {str(best): score},
                        "last_model_path": ""})  # fmt: skip
    assert not new_dir.exists() or not list(new_dir.iterdir())  # nothing of the checkpoint's naming was read
    assert cb.best_model_score.item() == pytest.approx(0.8)  # the score is kept


def test_same_seed_same_numbers_other_seed_other_numbers(make_cfg, tmp_path: Path) -> None:
    a, b = (run(make_cfg("seed=0", out=tmp_path / name)) for name in ("a", "b"))  # 0 seeds too: it is not "no seed"
    c = run(make_cfg("seed=4", out=tmp_path / "c"))
    same_record(a, b)  # all but the timings
    assert a["test/loss"] != c["test/loss"]


def test_every_random_generator_is_saved_and_restored() -> None:
    """Python's random, numpy's global generator and torch's: a data pipeline or a user's model may use any."""
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    random.gauss(0, 1), np.random.standard_normal()  # a cached Gaussian is part of the state too
    saved = torch.load(_saved(rng_states()), weights_only=True)  # as a checkpoint holds them
    first = (random.random(), random.gauss(0, 1), np.random.random(), np.random.standard_normal(), torch.rand(3))
    random.seed(2), np.random.seed(2), torch.manual_seed(2)
    set_rng_states(saved)
    again = (random.random(), random.gauss(0, 1), np.random.random(), np.random.standard_normal(), torch.rand(3))
    assert first[:4] == again[:4] and torch.equal(first[4], again[4])


def _saved(states: dict) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(states, buffer)
    buffer.seek(0)
    return buffer


def test_a_resume_keeps_the_event_files_points_before_its_checkpoint_step_only(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from initlab.run.events import carry_over

    old, new = tmp_path / "old", tmp_path / "new"
    writer = SummaryWriter(str(old))
    for step in range(6):  # the interrupted segment logged steps 0..5; its checkpoint is at step 3
        writer.add_scalar("train/loss", 1.0 / (step + 1), step)
    writer.close()
    link = old / "events.out.tfevents.1.link"
    link.symlink_to(next(old.glob("events.*")))  # not the run's: never followed
    new.mkdir()
    carry_over(old, new, 3)  # resumed into another dir: copied there, trimmed there
    assert [s for s, _ in scalars(new)["train/loss"]] == [0, 1, 2]  # step 3 is logged again by the resumed run
    assert not (new / link.name).exists()
    link.unlink()
    assert [s for s, _ in scalars(old)["train/loss"]] == [0, 1, 2, 3, 4, 5]  # the old dir is left as it was
    carry_over(old, old, 3)  # resumed in its own dir: trimmed in place
    assert [s for s, _ in scalars(old)["train/loss"]] == [0, 1, 2]
