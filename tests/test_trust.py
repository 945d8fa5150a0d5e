"""A checkpoint is data and a run dir is the run's own: nothing in a checkpoint runs code, no link the run did not
make is followed, no special file blocks, and every bad checkpoint is one line."""

import json
import os
import pickle
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from initlab.errors import CheckpointError, DataError, OutputError
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
    elif kind == "no weights":
        saved = torch.load(good, weights_only=True)
        del saved["state_dict"]
        torch.save(saved, path)
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
    "plain dict": "is not an initlab checkpoint (no run record in it)",
    "no weights": "is not an initlab checkpoint (no state_dict (its weights) in it)",
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
    """A real checkpoint whose config holds `node` at `where` (its overrides no longer setting that key)."""
    saved = torch.load(real_checkpoint(uninterrupted), weights_only=True)
    config = saved["initlab"]["config"]
    for key in where[:-1]:
        config = config[key]
    config[where[-1]] = node
    key = ".".join(where)
    saved["initlab"]["overrides"] = [o for o in saved["initlab"]["overrides"] if not o.lstrip("+~").startswith(key)]
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


def test_a_target_inside_a_dict_the_command_line_gives_is_trusted_at_its_path() -> None:
    from initlab.run.trust import offered

    early = "+callbacks.es={_target_: lightning.pytorch.callbacks.EarlyStopping, monitor: val/acc, mode: max}"
    found = offered([], [early, "+model.extra=[{_target_: torch.nn.Identity}]"])
    assert ("callbacks.es", "lightning.pytorch.callbacks.EarlyStopping") in found  # the record's own advice works
    assert ("model.extra[0]", "torch.nn.Identity") in found
    assert ("callbacks", "lightning.pytorch.callbacks.EarlyStopping") not in found  # only at the path it was given


def test_a_value_from_the_checkpoint_is_named_as_the_checkpoints(make_cfg, uninterrupted, tmp_path: Path) -> None:
    evil = crafted(uninterrupted, tmp_path, ("optimizer", "lr"), -1.0)
    with pytest.raises(
        CheckpointError, match=r"optimizer.lr=-1.0 is not allowed.*\(the value comes from the checkpoint"
    ):
        run(make_cfg(f"ckpt_path={evil}", out=tmp_path / "out"))
    split = crafted(uninterrupted, tmp_path, ("data", "val_size"), 10**6)  # within its rule; the data set refuses it
    with pytest.raises(DataError, match=r"^data.val_size=1000000 must be in .*\(the value comes from the checkpoint"):
        run(make_cfg(f"ckpt_path={split}", "train=false", fast=False, out=tmp_path / "evaluated"))


def test_a_checkpoint_whose_overrides_are_not_its_config_is_refused(make_cfg, uninterrupted, tmp_path: Path) -> None:
    """The record copies the run's overrides: `optimizer.lr=0.5` over a config of lr 0.1 names another run."""
    saved = torch.load(real_checkpoint(uninterrupted), weights_only=True)
    saved["initlab"]["overrides"].append("optimizer.lr=0.5")
    torch.save(saved, tmp_path / "lying.ckpt")
    with pytest.raises(CheckpointError, match=r"its overrides say optimizer\.lr=0\.5, but its config holds 0\.1"):
        run(make_cfg(f"ckpt_path={tmp_path / 'lying.ckpt'}", "trainer.max_epochs=3", out=tmp_path / "out"))
    saved["initlab"]["overrides"][-1] = "act=tanh"  # a choice the run did not make
    torch.save(saved, tmp_path / "lying.ckpt")
    with pytest.raises(CheckpointError, match=r"its overrides say act='tanh', but its config holds 'relu'"):
        run(make_cfg(f"ckpt_path={tmp_path / 'lying.ckpt'}", "train=false", out=tmp_path / "evaluated"))


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
    list_trainer = {**saved["initlab"], "config": {**saved["initlab"]["config"], "trainer": [1, 2]}}  # it was named
    records = (
        {"choices": {}},
        {"config": [1, 2], "overrides": []},
        {"config": {}, "overrides": "init=x"},
        list_trainer,
    )
    for record in records:  # as a conflict of trainer.limit_train_batches with the checkpoint's None
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


@pytest.mark.parametrize("entry", [".lock", "train.log"])
def test_a_hard_link_the_run_did_not_make_is_never_written(make_cfg, tmp_path: Path, entry: str) -> None:
    target = tmp_path / "precious"  # .lock and train.log are written in place: a hard link would carry the writes
    target.write_text("do not touch\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.link(target, run_dir / entry)
    with pytest.raises(OutputError, match=rf"holds {entry}, a hard link \(a file with another name elsewhere\)"):
        rundir.claim(run_dir, "hydra.run.dir", explicit=True, resuming=False)
    assert target.read_text() == "do not touch\n"


@pytest.mark.parametrize("entry", [".lock", "train.log", "checkpoints/last.ckpt"])
def test_a_fifo_in_the_run_dir_is_refused_without_blocking(tmp_path: Path, entry: str) -> None:
    (tmp_path / "fifo_run" / entry).parent.mkdir(parents=True)
    os.mkfifo(tmp_path / "fifo_run" / entry)  # Hydra opening train.log to append would wait for a reader forever
    with pytest.raises(OutputError, match=rf"holds {entry}, a named pipe \(FIFO\) the run did not make"):
        rundir.claim(tmp_path / "fifo_run", "hydra.run.dir", explicit=True, resuming=True)


def test_a_lock_that_is_a_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir_run" / ".lock").mkdir(parents=True)
    with pytest.raises(OutputError, match=r"cannot be used: \.lock: Is a directory"):  # named, not the run dir
        rundir.claim(tmp_path / "dir_run", "hydra.run.dir", explicit=True, resuming=False)


def test_a_resume_in_a_sweep_dir_is_refused(make_cfg, tmp_path: Path) -> None:
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")
    with pytest.raises(OutputError, match=r"is a sweep dir \(multirun.yaml\); resume its jobs with `-m`"):
        rundir.claim(tmp_path, "hydra.run.dir", explicit=True, resuming=True)


def _deep(depth: int) -> list:
    node: list = []
    for _ in range(depth):
        node = [node]
    return node


def _set(*keys: str | int, to: object) -> Callable[[dict], None]:
    """A change to a saved checkpoint: the value at saved[k1][k2]... becomes `to`."""

    def change(saved: dict) -> None:
        node = saved
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = to

    return change


MALFORMED = {  # a field of the run state the run uses, made malformed -> what the one line says
    "an optimizer buffer of another shape": (  # crashed the process (SIGSEGV) in the fused kernel
        _set("optimizer_states", 0, "state", 0, to={"momentum_buffer": torch.zeros(3)}),
        r"optimizer_states\[0\]\.state\[0\]\.momentum_buffer has shape \[3\]; its parameter net\.fc1\.weight",
    ),
    "weights of another dtype": (  # load_state_dict cast them: a resume of another run than it named
        lambda saved: saved["state_dict"].update({"net.fc1.weight": saved["state_dict"]["net.fc1.weight"].half()}),
        r"state_dict\['net\.fc1\.weight'\] is torch\.float16; the model's is torch\.float32",
    ),
    "an epoch beyond its steps": (_set("epoch", to=10**18), r"epoch is 1000000000000000000, beyond the checkpoint's"),
    "a checkpoint of an old Lightning": (  # Lightning's migration of its loop state: a 62-line KeyError
        _set("pytorch-lightning_version", to="1.0.0"),
        r"pytorch-lightning_version is '1\.0\.0': a run writes it with Lightning 2 or later",
    ),
    "a best accuracy of 2": (  # no real validation beats it: best.ckpt was never written
        lambda saved: next(v for k, v in saved["callbacks"].items() if "Checkpoint" in k).update(
            best_model_score=torch.tensor(2.0)
        ),
        r"callbacks\[.*BestCheckpoint.*\]\.best_model_score is 2\.0, not a score of val/acc \(in \[0, 1\]\)",
    ),
    "a best score of NaN": (
        lambda saved: next(v for k, v in saved["callbacks"].items() if "Checkpoint" in k).update(
            best_model_score=torch.tensor(float("nan"))
        ),
        r"best_model_score is nan, not a score of val/acc",
    ),
    "a NaN last loss over finite weights": (  # the record said "diverged" of a run whose losses were all finite
        _set("last_loss", to=float("nan")),
        r"last_loss is nan, but every weight is finite",
    ),
    "a best score that is a word": (  # a 58-line traceback at the first save
        lambda saved: next(v for k, v in saved["callbacks"].items() if "Checkpoint" in k).update(
            best_model_score="high"
        ),
        r"callbacks\[.*BestCheckpoint.*\]\.best_model_score is 'high', not a score",
    ),
    "an optimizer buffer of NaN": (  # the resume "diverged": the checkpoint's doing, not the run's
        lambda saved: saved["optimizer_states"][0]["state"][0]["momentum_buffer"].fill_(float("nan")),
        r"optimizer_states\[0\]\.state\[0\]\.momentum_buffer holds NaN or inf",
    ),
    "an optimizer with another parameter count": (
        _set("optimizer_states", 0, "param_groups", 0, "params", to=[0, 1]),
        r"optimizer_states\[0\]\.param_groups\[0\]\.params is \[0, 1\], not the ids of the model's 4 parameters",
    ),
    "an optimizer hyperparameter that is not a number": (
        _set("optimizer_states", 0, "param_groups", 0, "momentum", to="x"),
        r"param_groups\[0\]\.momentum is 'x', not a number",
    ),
    "an optimizer with another momentum than its config": (  # SGD refuses -3 itself; the state trained with it
        _set("optimizer_states", 0, "param_groups", 0, "momentum", to=-3.0),
        r"param_groups\[0\]\.momentum is -3\.0; the checkpoint's own config builds 0\.9",
    ),
    "an optimizer with a NaN learning rate": (
        _set("optimizer_states", 0, "param_groups", 0, "lr", to=float("nan")),
        r"param_groups\[0\]\.lr is nan, not a learning rate",
    ),
    "an optimizer whose scheduler has another gamma": (  # the record would say StepLR(0.96)
        _set("lr_schedulers", 0, "gamma", to=1e10),
        r"lr_schedulers\[0\]\.gamma is 10000000000\.0; the checkpoint's own config builds 0\.96",
    ),
    "an optimizer resumed without its rng": (  # the record of a resume must equal the uninterrupted run's
        lambda saved: saved["initlab"].pop("rng"),
        r"initlab\.rng is missing: a resume restores every random generator's state",
    ),
    "rng that is a string": (_set("initlab", "rng", to="garbage"), r"initlab\.rng is 'garbage', not the generators"),
    "rng with a string for numpy's keys": (_set("initlab", "rng", "numpy", 1, to="k"), r"initlab\.rng\.numpy is not"),
    "rng with a short python state": (_set("initlab", "rng", "python", 1, to=[1, 2]), r"initlab\.rng\.python is not"),
    "val_history of junk": (  # trained the whole run, then an IndexError in evaluate
        _set("val_history", to=[["a", "b"], [None]]),
        r"val_history\[0\] is \['a', 'b'\], not \[step, accuracy\]",
    ),
    "a 3000-deep config": (  # a RecursionError of 2748 lines
        _set("initlab", "config", "extra", to=_deep(3000)),
        r"initlab\.config nests deeper than 64 levels",
    ),
    "a choice that is a path": (
        _set("initlab", "choices", "act", to="../../../tmp/pwn"),
        r"initlab\.choices\.act is '\.\./\.\./\.\./tmp/pwn', not a config file's name",
    ),
    "a choice with a line break": (
        _set("initlab", "choices", "act", to="relu\n[ERROR] a fake line"),
        r"initlab\.choices\.act is 'relu\\n\[ERROR\] a fake line', not a config file's name",
    ),
    "a negative first loss": (_set("first_loss", to=-5.0), r"first_loss is -5\.0, not a loss .*never negative"),
    "a negative wall time": (_set("initlab", "elapsed_s", to=-1e9), r"initlab\.elapsed_s is -1000000000\.0, not a"),
    "a resume from past the checkpoint": (
        _set("initlab", "resumed", to=[{"from_step": 10**15, "overrides": []}]),
        r"initlab\.resumed\[0\]\.from_step is 1000000000000000, beyond the checkpoint's step",
    ),
    "resumes of junk": (_set("initlab", "resumed", to=[{"from_step": "x"}, 5]), r"initlab\.resumed\[0\] is "),
    "a step the loops do not count": (_set("global_step", to=10**15), r"global_step is 10+, but the loops count"),
    "a gradient of another shape": (
        _set("initlab", "grads", to={"net.fc1.weight": torch.zeros(3)}),
        r"initlab\.grads\['net\.fc1\.weight'\] is a tensor of shape \[3\], not a gradient",
    ),
}


@pytest.mark.parametrize(
    ("case", "mode"),
    [(c, "resume") for c in MALFORMED]
    + [pytest.param(c, "evaluate", marks=pytest.mark.slow) for c in MALFORMED if not c.startswith("an optimizer")],
)  # an evaluation reads the same checks: the fast suite resumes only
def test_a_malformed_run_state_is_one_line_before_anything_uses_it(
    make_cfg, uninterrupted, tmp_path: Path, case: str, mode: str
) -> None:
    change, said = MALFORMED[case]
    saved = torch.load(real_checkpoint(uninterrupted), weights_only=True)
    change(saved)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # pickling the deep config recurses; reading it back does not
    try:
        torch.save(saved, tmp_path / "odd.ckpt")
    finally:
        sys.setrecursionlimit(limit)
    out, how = tmp_path / "out", "trainer.max_epochs=3" if mode == "resume" else "train=false"
    with pytest.raises(CheckpointError, match=said) as info:
        run(make_cfg(f"ckpt_path={tmp_path / 'odd.ckpt'}", how, out=out))
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "odd.ckpt") in message and "is malformed" in message
    assert not (out / "metrics.json").exists() and not list(out.glob("checkpoints/*.ckpt"))


@pytest.mark.parametrize(("key", "value", "said"), [
    ("step", torch.tensor(-5.0), "is -5, not a step count from 0 to the checkpoint's 10"),
    ("step", torch.tensor(11.0), "is 11, not a step count"),
    ("exp_avg_sq", -torch.ones(2, 3), "holds negative values"),
])  # fmt: skip
def test_an_optimizer_state_a_run_could_not_have_saved_is_refused(key: str, value, said: str) -> None:
    from initlab.run.checkpoint_state import Malformed, _check_buffers

    fine = {"step": torch.tensor(10.0), "exp_avg": torch.zeros(2, 3), "exp_avg_sq": torch.zeros(2, 3)}
    _check_buffers({0: fine}, [("w", torch.Size([2, 3]))], [0], steps=10)  # Adam's, 10 steps in
    with pytest.raises(Malformed) as info:
        _check_buffers({0: fine | {key: value}}, [("w", torch.Size([2, 3]))], [0], steps=10)
    assert info.value.args == (f"optimizer_states[0].state[0].{key}", info.value.args[1]) and said in info.value.args[1]


def test_a_checkpoint_whose_config_builds_another_choice_than_it_names_is_refused(
    make_cfg, uninterrupted, tmp_path: Path
) -> None:
    """Its config builds Tanh (a class the act group offers) while its choices say act=relu: the record would say
    relu for a tanh net. An override of the run's own (act._target_=...) stands."""
    evil = crafted(uninterrupted, tmp_path, ("act",), {"_target_": "torch.nn.Tanh"})
    with pytest.raises(CheckpointError, match=r"its config builds act torch\.nn\.Tanh, but its choice act=relu "
                                              r"builds torch\.nn\.ReLU"):  # fmt: skip
        run(make_cfg(f"ckpt_path={evil}", "train=false", out=tmp_path / "evaluated"))
    saved = torch.load(evil, weights_only=True)
    saved["initlab"]["overrides"].append("act._target_=torch.nn.Tanh")
    torch.save(saved, tmp_path / "overridden.ckpt")
    record = run(make_cfg(f"ckpt_path={tmp_path / 'overridden.ckpt'}", "train=false", out=tmp_path / "ok"))
    assert record["status"] == "ok" and record["mode"] == "evaluate"
    for where, node, said in (
        (("init", "weight", "_target_"), "torch.nn.init.kaiming_uniform_", r"builds init\.weight torch\.nn\.init\."
         r"kaiming_uniform_, but its choice init=kaiming builds torch\.nn\.init\.kaiming_normal_"),
        (("scheduler", "scheduler"), {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "T_max": 1},
         r"builds scheduler\.scheduler torch\.optim\.lr_scheduler\.CosineAnnealingLR, but its choice scheduler=step"),
    ):  # fmt: skip
        nested = crafted(uninterrupted, tmp_path, where, node)  # a nested _target_, its arguments fitting
        with pytest.raises(CheckpointError, match=said):
            run(make_cfg(f"ckpt_path={nested}", "trainer.max_epochs=3", out=tmp_path / "nested"))
