"""A checkpoint is data and a run dir is the run's own: nothing in a checkpoint runs code, no link the run did not
make is followed, no special file blocks, and every bad checkpoint is one line."""

import json
import os
import pickle
import re
from pathlib import Path

import pytest
import torch

from initlab.errors import CheckpointError, OutputError
from initlab.run import rundir
from tests.conftest import real_checkpoint, run


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
    elif kind == "FIFO":
        os.mkfifo(path)  # opening it would block until a writer came, and SIGTERM would not end the wait
    elif kind == "other architecture":
        saved = torch.load(good, weights_only=True)
        saved["state_dict"]["net.fc1.weight"] = torch.zeros(50, 784)
        torch.save(saved, path)
    return path


BAD_CKPT = {
    "empty": "is not a readable checkpoint",
    "truncated": "is not a readable checkpoint",
    "random bytes": "is not a readable checkpoint",
    "text file": "is not a readable checkpoint",
    "foreign pickle": "is not a readable checkpoint: it holds objects a checkpoint must not",
    "plain dict": "is not an initlab checkpoint",
    "directory": "is a directory, not a checkpoint file",
    "FIFO": "is a named pipe (FIFO), not a checkpoint file",
    "other architecture": "holds another architecture",
}


@pytest.mark.parametrize(
    ("kind", "mode"),
    [(k, "resume") for k in BAD_CKPT] + [(k, "evaluate") for k in ("truncated", "plain dict", "other architecture")],
)
def test_bad_checkpoints_are_one_clear_error(make_cfg, uninterrupted, tmp_path: Path, kind: str, mode: str) -> None:
    bad = write_bad(kind, real_checkpoint(uninterrupted), tmp_path / "bad.ckpt")
    out = tmp_path / "out"
    with pytest.raises(CheckpointError, match=re.escape(BAD_CKPT[kind])) as info:
        run(make_cfg(f"ckpt_path={bad}", *(["train=false"] if mode == "evaluate" else []), out=out))
    message = str(info.value)
    assert "\n" not in message and str(bad) in message
    assert "weights_only" not in message and "trust the source" not in message  # torch's advice never reaches you
    assert not (out / "metrics.json").exists() and not list(out.glob("checkpoints/*.ckpt"))


def crafted(uninterrupted, tmp_path: Path, where: tuple[str, ...], node: dict) -> Path:
    """A real checkpoint whose config holds `node` at `where`."""
    saved = torch.load(real_checkpoint(uninterrupted), weights_only=True)
    config = saved["initlab"]["config"]
    for key in where[:-1]:
        config = config[key]
    config[where[-1]] = node
    torch.save(saved, tmp_path / "evil.ckpt")
    return tmp_path / "evil.ckpt"


VICTIM = "pwned.txt"
CODE = {  # a callable that writes a file of the attacker's choice, and where in the config it hides
    "a package-internal writer as the act": (
        ("act",),
        {"_target_": "initlab.files.write_atomic", "path": "{victim}", "data": "owned"},
    ),
    "torch.save through a module that imports it": (
        ("init", "weight"),
        {"_target_": "torch.nn.modules.module.torch.save", "obj": 1, "f": "{victim}"},
    ),
    "pathlib as the optimizer": (
        ("optimizer",),
        {
            "_target_": "pathlib.Path.write_text",
            "self": {"_target_": "pathlib.Path", "_args_": ["{victim}"]},
            "data": "owned",
            "lr": 0.1,
        },
    ),
    "a shipped target at another path": (("act",), {"_target_": "torch.nn.init.kaiming_normal_"}),
    "an interpolated target": (("act",), {"_target_": "${oc.env:EVIL_TARGET}"}),
    "a target decoded from a string": (  # the unresolved config shows only a string here
        ("act",),
        {
            "_target_": "torch.nn.ReLU",
            "inplace": "${oc.decode:'{_target_: initlab.files.write_atomic, path: {victim}, data: owned}'}",
        },
    ),
    "a target created from a string, deep in a shipped node": (
        ("init", "weight"),
        {
            "_target_": "torch.nn.init.kaiming_normal_",
            "_partial_": True,
            "nonlinearity": "${oc.create:{_target_: initlab.files.write_atomic, path: {victim}, data: owned}}",
        },
    ),
}


@pytest.mark.parametrize("case", list(CODE))
def test_a_checkpoint_runs_no_code_on_resume_or_evaluation(
    make_cfg, uninterrupted, tmp_path: Path, monkeypatch, case
) -> None:
    victim = tmp_path / VICTIM
    where, node = CODE[case]
    node = json.loads(json.dumps(node).replace("{victim}", str(victim)))
    monkeypatch.setenv("EVIL_TARGET", "initlab.files.write_atomic")
    evil = crafted(uninterrupted, tmp_path, where, node)
    for extra in ([], ["train=false"]):
        with pytest.raises(CheckpointError, match=rf"names _target_ .* at {'.'.join(where)}[.\w]*, which no config "):
            run(make_cfg(f"ckpt_path={evil}", *extra, out=tmp_path / f"out{len(extra)}"))
    assert not victim.exists()


def test_a_target_the_command_line_names_is_trusted(make_cfg, uninterrupted, tmp_path: Path) -> None:
    evil = crafted(uninterrupted, tmp_path, ("act",), {"_target_": "torch.nn.Hardtanh"})  # not a shipped act config
    with pytest.raises(CheckpointError, match=r"names _target_ 'torch\.nn\.Hardtanh' at act"):
        run(make_cfg(f"ckpt_path={evil}", "train=false", out=tmp_path / "refused"))
    record = run(make_cfg(f"ckpt_path={evil}", "train=false", "act._target_=torch.nn.Hardtanh", out=tmp_path / "ok"))
    assert record["mode"] == "evaluate" and "test/acc" in record


def test_a_value_from_the_checkpoint_is_named_as_the_checkpoints(make_cfg, uninterrupted, tmp_path: Path) -> None:
    evil = crafted(uninterrupted, tmp_path, ("optimizer", "lr"), -1.0)
    with pytest.raises(
        CheckpointError, match=r"optimizer.lr=-1.0 is not allowed.*\(the value comes from the checkpoint"
    ):
        run(make_cfg(f"ckpt_path={evil}", out=tmp_path / "out"))


def test_a_crafted_checkpoint_cannot_choose_where_the_run_writes(make_cfg, uninterrupted, tmp_path: Path) -> None:
    saved = torch.load(real_checkpoint(uninterrupted), weights_only=True)
    elsewhere = tmp_path / "elsewhere"
    saved["initlab"]["config"]["callbacks"]["model_checkpoint"]["dirpath"] = str(elsewhere)
    saved["initlab"]["config"]["logger"]["tensorboard"]["save_dir"] = str(elsewhere)
    saved["callbacks"] = {k: {**v, "best_model_path": "/etc/hostname"} if isinstance(v, dict) and
                          "best_model_path" in v else v for k, v in saved["callbacks"].items()}  # fmt: skip
    torch.save(saved, tmp_path / "crafted.ckpt")
    run(make_cfg(f"ckpt_path={tmp_path / 'crafted.ckpt'}", "trainer.max_epochs=3", out=tmp_path / "out"))
    assert not elsewhere.exists() and (tmp_path / "out" / "checkpoints" / "last.ckpt").is_file()
    best = torch.load(tmp_path / "out" / "checkpoints" / "best.ckpt", weights_only=True)
    assert "state_dict" in best  # a checkpoint of the run's own, not a copy of a file the checkpoint named


def test_a_checkpoint_cannot_choose_where_data_is_downloaded_to(make_cfg, uninterrupted, tmp_path: Path) -> None:
    from initlab.run.resume import merge

    saved = torch.load(real_checkpoint(uninterrupted), weights_only=True)
    saved["initlab"]["config"]["data"].update(data_dir="/chosen/by/the/checkpoint", download=True)
    cfg = make_cfg("train=false")
    merged, _ = merge(cfg, saved, ["train=false"], tmp_path / "crafted.ckpt")  # the command names neither key
    assert (merged.data.data_dir, merged.data.download) == ("/chosen/by/the/checkpoint", False)  # read, never written
    given = ["train=false", "data.data_dir=mine", "data.download=true"]
    merged, _ = merge(make_cfg(*given[1:]), saved, given, tmp_path / "crafted.ckpt")
    assert (merged.data.data_dir, merged.data.download) == ("mine", True)  # the command's dir: as it says


def test_a_malformed_run_record_is_one_line(make_cfg, uninterrupted, tmp_path: Path) -> None:
    saved = torch.load(real_checkpoint(uninterrupted), weights_only=True)
    for record in ({"choices": {}}, {"config": [1, 2], "overrides": []}, {"config": {}, "overrides": "init=x"}):
        saved["initlab"] = record
        torch.save(saved, tmp_path / "odd.ckpt")
        with pytest.raises(CheckpointError, match="its run record is malformed"):
            run(make_cfg("train=false", f"ckpt_path={tmp_path / 'odd.ckpt'}", out=tmp_path / "out"))


@pytest.mark.parametrize(
    "entry", [".lock", "metrics.json", "checkpoints", "train.log", ".hydra", "checkpoints/last.ckpt"]
)
def test_a_link_the_run_did_not_make_is_never_followed(make_cfg, tmp_path: Path, entry: str) -> None:
    target = tmp_path / "precious"
    target.write_text("do not touch\n")
    run_dir = tmp_path / "run"
    (run_dir / entry).parent.mkdir(parents=True, exist_ok=True)
    (run_dir / entry).symlink_to(target)
    with pytest.raises(OutputError, match=rf"holds {entry}, a symbolic link the run did not make"):
        run(make_cfg("ckpt_path=last", out=run_dir))
    with pytest.raises(OutputError, match="a symbolic link the run did not make"):
        rundir.claim(run_dir, "hydra.run.dir", explicit=False, resuming=True)  # not even a default dir takes it
    assert target.read_text() == "do not touch\n"


def test_a_lock_that_is_a_fifo_or_a_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "fifo_run").mkdir()
    os.mkfifo(tmp_path / "fifo_run" / ".lock")
    with pytest.raises(OutputError, match="is not a plain file"):
        rundir.claim(tmp_path / "fifo_run", "hydra.run.dir", explicit=True, resuming=False)
    (tmp_path / "dir_run" / ".lock").mkdir(parents=True)
    with pytest.raises(OutputError, match="cannot be used"):
        rundir.claim(tmp_path / "dir_run", "hydra.run.dir", explicit=True, resuming=False)


def test_a_resume_in_a_sweep_dir_is_refused(make_cfg, tmp_path: Path) -> None:
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")
    with pytest.raises(OutputError, match=r"is a sweep dir \(multirun.yaml\); resume its jobs with `-m`"):
        rundir.claim(tmp_path, "hydra.run.dir", explicit=True, resuming=True)
