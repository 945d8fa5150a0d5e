"""Resume, reproducibility, evaluation of a checkpoint, and bad input: each fails in one clear line."""

import json
import os
import shutil
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from initlab.errors import OutputError
from initlab.record import write_json_atomic
from tests.conftest import make_tiny_mnist, run, run_cli, write_idx

SAME = ("test/acc", "test/loss", "val/acc", "val/loss", "steps")


class CrashAt(pl.Callback):
    """Kills training at step $CRASH_AT, as a node failure would: no checkpoint is written on the way out.

    The step comes from the environment, so the resumed run (whose config is the checkpoint's) runs on.
    """

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        step = int(os.environ.get("CRASH_AT", -1))
        if trainer.global_step == step:
            raise RuntimeError(f"killed at step {step}")


def test_killed_run_resumes_to_the_same_metrics(make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = run(make_cfg(out=tmp_path / "whole"))  # 2 epochs x 5 steps, validation (and last.ckpt) every 3 steps
    crash = ["+callbacks.crash._target_=tests.test_robust.CrashAt"]
    monkeypatch.setenv("CRASH_AT", "7")
    with pytest.raises(RuntimeError, match="killed at step 7"):
        run(make_cfg(*crash, out=tmp_path / "killed"))
    monkeypatch.delenv("CRASH_AT")
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"  # written at a validation
    step = torch.load(last, weights_only=True)["global_step"]
    assert 0 < step < 7 and step % 5 != 0  # mid-epoch: the resumed loader must skip what was already served
    resumed = run(make_cfg(*crash, f"ckpt_path={last}", out=tmp_path / "resumed"))
    assert {k: resumed[k] for k in SAME} == {k: whole[k] for k in SAME}


def test_same_seed_same_metrics_other_seed_other_metrics(make_cfg, tmp_path: Path) -> None:
    a, b = (run(make_cfg("seed=0", out=tmp_path / name)) for name in ("a", "b"))  # 0 seeds too: it is not "no seed"
    c = run(make_cfg("seed=4", out=tmp_path / "c"))
    assert {k: a[k] for k in SAME} == {k: b[k] for k in SAME}
    assert a["test/loss"] != c["test/loss"]
    files = [json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("a", "b")]
    assert {k: files[0][k] for k in SAME} == {k: files[1][k] for k in SAME}


def test_evaluating_a_checkpoint_writes_its_own_metrics(make_cfg, tmp_path: Path) -> None:
    trained = run(make_cfg("init=lecun", "act=tanh", "seed=2", out=tmp_path / "train"))
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"
    evaluated = run(make_cfg("train=false", f"ckpt_path={ckpt}", out=tmp_path / "eval"))  # config says kaiming/relu
    assert (evaluated["init"], evaluated["act"]) == ("lecun", "tanh")  # the checkpoint's own choices
    assert evaluated["test/acc"] == trained["test/acc"] and evaluated["val/acc"] == trained["val/acc"]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["test/acc"] == trained["test/acc"]


def test_metrics_are_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"status": "ok", "test/acc": 0.9, "loss": float("nan")})
    assert json.loads(target.read_text()) == {"status": "ok", "test/acc": 0.9, "loss": None}  # strict JSON

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("initlab.record.os.replace", crash)
    with pytest.raises(OutputError, match=r"could not write .*metrics\.json: disk full"):
        write_json_atomic(target, {"status": "half"})
    assert json.loads(target.read_text())["status"] == "ok"  # the old file is intact...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # ...and no temp file is left


def corrupt(tmp: Path, how: str) -> Path:
    root = make_tiny_mnist(tmp / how)
    raw = root / "MNIST" / "raw"
    f = raw / "train-labels-idx1-ubyte"
    data = f.read_bytes()
    if how == "magic":
        f.write_bytes(b"\0\0\0\0" + data[4:])
    elif how == "truncate":
        f.write_bytes(data[: len(data) // 2])
    elif how == "label11":
        f.write_bytes(data[:8] + bytes([11]) + data[9:])
    elif how == "shape20":
        write_idx(raw / "train-images-idx3-ubyte", np.zeros((600, 20, 20), dtype=np.uint8))
    elif how == "dir":
        (raw / "t10k-images-idx3-ubyte").unlink()
        (raw / "t10k-images-idx3-ubyte").mkdir()
    return root


BAD = {  # name: (overrides, what the one line must say); "{data}" = the tiny data set, "{tmp}" = a temp dir
    "unknown choice": (["init=bogus"], "Could not find 'init/bogus'; choose one of: default, gaussian, kaiming"),
    "misspelt key": (["optimizer.lrr=0.1"], "Could not override 'optimizer.lrr'; To append to your config use"),
    "zero lr": (["optimizer.lr=0"], "optimizer.lr=0 is not allowed: a finite number > 0"),
    "negative lr": (["optimizer.lr=-0.5"], "optimizer.lr=-0.5 is not allowed: a finite number > 0"),
    "batch size 0": (["data.batch_size=0"], "data.batch_size=0 is not allowed: an integer >= 1"),
    "batch larger than data": (["data.batch_size=1000", "data.val_size=100"], "data.batch_size=1000 is larger than"),
    "hidden_dims not a list": (["model.hidden_dims=100"], "model.hidden_dims=100 is not allowed: a list"),
    "negative hidden dim": (["model.hidden_dims=[10,-3]"], "model.hidden_dims[1]=-3 is not allowed: an integer >= 1"),
    "max_epochs 0": (["trainer.max_epochs=0"], "trainer.max_epochs=0 is not allowed: an integer >= 1"),
    "bad magic number": (["data.data_dir={tmp}/magic"], "train-labels-idx1-ubyte is not an IDX file"),
    "truncated file": (["data.data_dir={tmp}/truncate"], "train-labels-idx1-ubyte is truncated or corrupt"),
    "data dir is a file": (["data.data_dir={tmp}/file"], "is a file, not a directory"),
    "missing data": (["data.data_dir={tmp}/none", "data.download=false"], "MNIST not found in"),
    "output dir not writable": (["hydra.run.dir={tmp}/file/run"], "hydra.run.dir="),
    "gpu without a gpu": (["trainer=gpu"], "trainer.accelerator='gpu' cannot run here"),
    "eval without checkpoint": (["train=false"], "train=false needs ckpt_path="),
    "eval of last": (["train=false", "ckpt_path=last"], "ckpt_path=last resumes training in this run dir"),
    "label out of range": (["data.data_dir={tmp}/label11"], "train-labels-idx1-ubyte has label 11 at index 0"),
    "images not 28x28": (["data.data_dir={tmp}/shape20"], "holds 20x20 images, expected 28x28"),
    "dir where a file belongs": (["data.data_dir={tmp}/dir"], "is a directory where an MNIST data file belongs"),
    "negative seed": (["seed=-1"], "seed=-1 is not allowed: an integer in [0, 4294967295]"),
    "seed too large": (["seed=5000000000"], "seed=5000000000 is not allowed"),
    "seed not a number": (["seed=abc"], "seed='abc' is not allowed"),
    "lr nan": (["optimizer.lr=nan"], "optimizer.lr=nan is not allowed: a finite number > 0"),
    "negative momentum": (["optimizer.momentum=-1"], "optimizer.momentum=-1 is not allowed"),
    "misspelt optimizer argument": (["+optimizer.weight_decy=0.1"], "optimizer.weight_decy is not an argument of SGD"),
    "activation argument of the wrong type": (["act=elu", "act.alpha=abc"], "act.alpha='abc' is not allowed"),
    "val_check_interval 0": (["trainer.val_check_interval=0"], "trainer.val_check_interval=0 is not allowed"),
    "max_steps -5": (["trainer.max_steps=-5"], "trainer.max_steps=-5 is not allowed"),
    "unknown precision": (["+trainer.precision=foo"], "trainer.precision='foo' is not allowed"),
    "unknown trainer argument": (["+trainer.max_step=5"], "trainer.max_step is not an argument of Trainer"),
    "garbage checkpoint": (["ckpt_path={tmp}/file"], "is not a readable checkpoint"),
    "missing checkpoint": (["ckpt_path={tmp}/nothing.ckpt"], "does not exist"),
    "bad override syntax": (["model.hidden_dims=[1,"], "cannot parse the command line"),
    "seed a list": (["seed=[1]"], "seed=[1] is not allowed: an integer"),
    "a number for a group": (["init=nan"], "cannot start: Config group override must be a string or a list"),
    "deleted lr": (["~optimizer.lr"], "optimizer.lr is missing: the run needs it"),
    "nesterov without momentum": (["optimizer.momentum=0"], "optimizer: ValueError: Nesterov momentum requires"),
    "wrong class count": (["model.num_classes=5"], "model.num_classes=5 is not allowed: the data is"),
    "unknown nonlinearity": (["init.weight.nonlinearity=banana"], "cannot build the model from model/init/act"),
    "broken yaml in searchpath": (["hydra.searchpath=[file://{tmp}/broken]", "init=bad"], "cannot start:"),
    "typo'd new key": (["+sed=1"], "sed=1 is not a setting here"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_fails_in_one_clear_line(case: str, tiny_mnist: Path, tmp_path: Path) -> None:
    overrides, message = BAD[case]
    for how in ("magic", "truncate", "label11", "shape20", "dir"):
        corrupt(tmp_path, how)
    (tmp_path / "file").write_text("not a directory")
    (tmp_path / "broken" / "init").mkdir(parents=True)
    (tmp_path / "broken" / "init" / "bad.yaml").write_text("weight: [unclosed\n")
    run_dir = tmp_path / "run"
    args = [o.format(data=tiny_mnist, tmp=tmp_path) for o in overrides]
    proc = run_cli(f"data.data_dir={tiny_mnist}", "data.val_size=100", f"hydra.run.dir={run_dir}", *args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and message in proc.stderr.strip().splitlines()[-1]  # the last line
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line or message in line]
    assert len(errors) == 1  # one line, Hydra's composition errors included
    metrics = run_dir / "metrics.json"  # nothing that looks like a result
    assert not metrics.exists() or "test/acc" not in json.loads(metrics.read_text())
    assert not (run_dir / "checkpoints").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)
