"""Bad input, one table: each case stops with one line on stderr naming the key, the value and what is allowed,
exit status 1, no traceback, and nothing that looks like a run (no run dir at all for a single run).

Each row says where the mistake is found: "config" (the rule table, before torch loads: `validate`), "run" (once
the run builds its parts: an in-process run raises the one line) or "cli" (Hydra's composition, before any job).
Every row also runs through the command line (slow).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from initlab.errors import InitLabError
from initlab.run.checks import RULES, validate
from initlab.run.overrides import listed
from tests.conftest import FAST, ROOT, USER_CONF, make_tiny_mnist, run, run_cli, write_idx

USER = f"hydra.searchpath=[file://{USER_CONF}]"
BAD = {  # name: (overrides, where, what the one line must say); {tmp} = a temp dir with broken data and files
    # seeds, threads, flags
    "negative seed": (["seed=-1"], "config", "seed=-1 is not allowed: an integer in [0, 4294967295]"),
    "seed too large": (["seed=5000000000"], "config", "seed=5000000000 is not allowed"),
    "seed a word": (["seed=abc"], "config", "seed='abc' is not allowed: an integer"),
    "seed a fraction": (["seed=1.5"], "config", "seed=1.5 is not allowed: an integer"),
    "seed a bool": (["seed=true"], "config", "seed=True is not allowed"),
    "seed a list": (["seed=[1]"], "config", "seed=[1] is not allowed: an integer"),
    "zero threads": (["num_threads=0"], "config", "num_threads=0 is not allowed"),
    "train maybe": (["train=maybe"], "config", "train='maybe' is not allowed: one of True, False"),
    "train a number": (["train=1"], "config", "train=1 is not allowed: one of True, False"),  # 1 == True in Python
    "a typo'd new key": (["+sed=1"], "config", "sed=1 is not a setting here (a typo?)"),
    "a deleted lr": (["~optimizer.lr"], "config", "optimizer.lr is missing: the run needs it"),
    "deleted threads": (["~num_threads"], "config", "num_threads is missing: the run needs it"),
    "a deleted batch size": (["~data.batch_size"], "config", "data.batch_size is missing: the run needs it"),
    "a deleted data loader": (["~data.load"], "config", "data.load is missing: the run needs it"),
    "a deleted init weight": (["~init.weight"], "config", "init.weight is missing: the run needs it"),
    "an MLP too large to build": (
        ["model.depth=1000000"],
        "config",
        "model.depth=1000000 is not allowed: an MLP of at most 1e+09 weights (this one: 1.0e+10)",
    ),
    "hidden layers too wide": (
        ["model.hidden_dims=[100000,100000]"],
        "config",
        "model.hidden_dims=[100000, 100000] is not allowed: an MLP of at most 1e+09 weights",
    ),
    "a CNN with no channels": (["model=cnn", "model.channels=[0,16]"], "config", "model.channels[0]=0 is not allowed"),
    "CNN channels a number": (["model=cnn", "model.channels=6"], "config", "model.channels=6 is not allowed: a list"),
    "wandb offline maybe": (
        ["logger=wandb", "logger.wandb.offline=maybe"],
        "config",
        "logger.wandb.offline='maybe' is not allowed: one of True, False",
    ),
    "a null callback": (
        ["++callbacks.model_summary=null"],
        "config",
        "callbacks.model_summary=None is not allowed: a config with a _target_ (to leave it out: "
        "~callbacks.model_summary)",
    ),
    # optimizer and schedule
    "zero lr": (["optimizer.lr=0"], "config", "optimizer.lr=0 is not allowed: a finite number > 0"),
    "negative lr": (["optimizer.lr=-0.5"], "config", "optimizer.lr=-0.5 is not allowed: a finite number > 0"),
    "lr nan": (["optimizer.lr=nan"], "config", "optimizer.lr=nan is not allowed: a finite number > 0"),
    "lr inf": (["optimizer.lr=inf"], "config", "optimizer.lr=inf is not allowed"),
    "lr a word": (["optimizer.lr=abc"], "config", "optimizer.lr='abc' is not allowed"),
    "lr an unknown interpolation": (
        ["optimizer.lr=${oops}"],
        "config",
        "optimizer.lr='${oops}' cannot be resolved: Interpolation key 'oops' not found",
    ),
    "lr a recursive interpolation": (
        ["optimizer.lr=${optimizer.lr}"],
        "config",
        "optimizer.lr='${optimizer.lr}' cannot be resolved: Recursive interpolation",
    ),
    "negative momentum": (["optimizer.momentum=-1"], "config", "optimizer.momentum=-1 is not allowed: a finite"),
    "momentum 1": (["optimizer.momentum=1"], "config", "optimizer.momentum=1 is not allowed"),
    "negative weight decay": (["optimizer.weight_decay=-0.1"], "config", "optimizer.weight_decay=-0.1 is not"),
    "nesterov maybe": (["optimizer.nesterov=maybe"], "config", "optimizer.nesterov='maybe' is not allowed: one of"),
    "nesterov zero": (["optimizer.nesterov=0"], "config", "optimizer.nesterov=0 is not allowed: one of True, False"),
    "plateau without a monitor": (
        [
            "scheduler.scheduler._target_=torch.optim.lr_scheduler.ReduceLROnPlateau",
            "~scheduler.scheduler.step_size",
            "~scheduler.scheduler.gamma",
        ],
        "config",
        "scheduler.monitor=None is not allowed: one of val/acc, val/loss",
    ),
    "a scheduler stepping every 0 steps": (["+scheduler.frequency=0"], "config", "frequency=0 is not allowed"),
    "a scheduler stepping every 1.5 steps": (["+scheduler.frequency=1.5"], "config", "frequency=1.5 is not allowed"),
    "a scheduler's name a number": (["+scheduler.name=123"], "config", "scheduler.name=123 is not allowed: one of N"),
    "a scheduler watching no metric": (["+scheduler.monitor=val/bogus"], "config", "scheduler.monitor='val/bogus' is"),
    "a checkpoint watching no metric": (
        ["callbacks.model_checkpoint.monitor=val/bogus"],
        "config",
        "callbacks.model_checkpoint.monitor='val/bogus' is not allowed: one of None or one of 'val/acc', 'val/loss'",
    ),
    "a checkpoint mode": (["callbacks.model_checkpoint.mode=up"], "config", "mode='up' is not allowed: one of 'min'"),
    "an lr logged every hour": (["++callbacks.lr_monitor.logging_interval=hour"], "config", "interval='hour' is not"),
    "the lowest accuracy as the best": (
        ["callbacks.model_checkpoint.mode=min"],
        "config",
        "callbacks.model_checkpoint.mode='min' is not allowed: 'max' for callbacks.model_checkpoint.monitor=val/acc",
    ),
    "a model summary depth": (["callbacks.model_summary.max_depth=-5"], "config", "max_depth=-5 is not allowed"),
    "too many threads": (["num_threads=1000000"], "config", "num_threads=1000000 is not allowed: an integer in [1"),
    "overfitting batches": (["++trainer.overfit_batches=2"], "config", "trainer.overfit_batches=2 is not allowed"),
    "a variance that is a flag": (["init.variance=true"], "config", "init.variance=True is not allowed: an expr"),
    "a flag that is a word": (["+optimizer.maximize=yes"], "config", "optimizer.maximize='yes' is not allowed: one o"),
    "a benchmark flag that is a word": (["+trainer.benchmark=perhaps"], "config", "trainer.benchmark='perhaps' is"),
    "a debugging run": (
        ["+trainer.fast_dev_run=true"],
        "config",
        "fast_dev_run=True is not allowed: one of False, 0 (it",
    ),
    "a debugging run of one batch": (["+trainer.fast_dev_run=1"], "config", "trainer.fast_dev_run=1 is not allowed"),
    "no checkpoints": (["+trainer.enable_checkpointing=false"], "config", "enable_checkpointing=False is not allowed"),
    "a minimum of epochs above the maximum": (
        ["+trainer.min_epochs=30"],
        "config",
        "min_epochs=30 is not allowed: at mo",
    ),
    "a minimum of steps above the maximum": (
        ["trainer.max_steps=10", "+trainer.min_steps=11"],
        "config",
        "min_steps=11",
    ),
    "a bare-bones trainer": (["+trainer.barebones=true"], "config", "trainer.barebones=True is not allowed: one of Fa"),
    "a negative minimum of steps": (["+trainer.min_steps=-5"], "config", "trainer.min_steps=-5 is not allowed"),
    "a clip algorithm": (["+trainer.gradient_clip_algorithm=bogus"], "config", "algorithm='bogus' is not allowed"),
    "an autolog flag that is a word": (["+trainer.enable_autolog_hparams=maybe"], "config", "hparams='maybe' is not"),
    "checkpoints elsewhere": (
        ["callbacks.model_checkpoint.dirpath=/elsewhere"],
        "config",
        "callbacks.model_checkpoint.dirpath='/elsewhere' is not allowed: '${hydra:runtime.output_dir}/checkpoints'",
    ),
    "a best checkpoint named elsewhere": (["callbacks.model_checkpoint.filename=../x"], "config", "filename='../x' is"),
    "a csv logger flushing every 0 steps": (
        ["logger=csv", "+logger.csv.flush_logs_every_n_steps=0"],
        "config",
        "logger.csv.flush_logs_every_n_steps=0 is not allowed: an integer >= 1",
    ),
    "a logger writing elsewhere": (
        ["logger.tensorboard.save_dir=/tmp"],
        "config",
        "save_dir='/tmp' is not allowed: the",
    ),
    "a logger's name leaving the run dir": (["logger.tensorboard.name=../../x"], "config", "name='../../x' is not"),
    "a logger's version leaving the run dir": (["logger=csv", "logger.csv.version=../x"], "config", "version='../x'"),
    "no last checkpoint": (["callbacks.model_checkpoint.save_last=false"], "config", "save_last=False is not allowed"),
    "weights-only checkpoints": (["+callbacks.model_checkpoint.save_weights_only=true"], "config", "only=True is not"),
    "a save flag that is a word": (
        ["+callbacks.model_checkpoint.save_on_train_epoch_end=sometimes"],
        "config",
        "save_on_train_epoch_end='so",
    ),
    "a constant lr of 0": (["scheduler=none", "scheduler.scheduler.factor=0"], "config", "factor=0 is not allowed"),
    "nesterov without momentum": (["optimizer.momentum=0"], "config", "optimizer.momentum=0 is not allowed: above 0"),
    "nesterov with dampening": (["+optimizer.dampening=0.5"], "config", "optimizer.dampening=0.5 is not allowed: 0 w"),
    "misspelt optimizer argument": (
        ["+optimizer.weight_decy=0.1"],
        "run",
        "optimizer.weight_decy is not an argument of SGD; it takes: lr, momentum",
    ),
    "misspelt scheduler argument": (
        ["+scheduler.scheduler.gama=0.5"],
        "run",
        "scheduler.scheduler.gama is not an argument of StepLR",
    ),
    "gamma 0": (["scheduler.scheduler.gamma=0"], "config", "scheduler.scheduler.gamma=0 is not allowed"),
    "step size 0": (["scheduler.scheduler.step_size=0"], "config", "scheduler.scheduler.step_size=0 is not allowed"),
    "interval batch": (["scheduler.interval=batch"], "config", "scheduler.interval='batch' is not allowed: one of"),
    # data
    "batch size 0": (["data.batch_size=0"], "config", "data.batch_size=0 is not allowed: an integer >= 1"),
    "batch size a fraction": (["data.batch_size=2.5"], "config", "data.batch_size=2.5 is not allowed"),
    "batch larger than the data": (["data.batch_size=1000"], "run", "data.batch_size=1000 is larger than"),
    "val size 0": (["data.val_size=0"], "config", "data.val_size=0 is not allowed: an integer >= 1"),
    "negative eval batch": (["data.eval_batch_size=-1"], "config", "data.eval_batch_size=-1 is not allowed"),
    "one class": (["data.num_classes=1"], "config", "data.num_classes=1 is not allowed: an integer >= 2"),
    "a flat image shape": (["data.image_shape=[784]"], "config", "data.image_shape=[784] is not allowed: a list of 3"),
    "a variance that overflows on a wide layer": (
        ["init.variance=fan_in ** fan_in"],
        "config",
        "init.variance='fan_in",
    ),
    "a kaiming mode torch lacks": (
        ["init.weight.mode=fan_avg"],
        "config",
        "mode='fan_avg' is not allowed: one of 'fan_in",
    ),
    "a data set of another layout": (["data.load.dataset=EMNIST"], "config", "data.load.dataset='EMNIST' is not all"),
    "a validation interval longer than the epoch": (
        ["trainer.check_val_every_n_epoch=1", "trainer.val_check_interval=1000"],
        "run",
        "trainer.val_check_interval=1000 is not allowed: at most the epoch's 5 training batches while",
    ),
    "missing data": (["data.data_dir={tmp}/none", "data.download=false"], "run", "MNIST not found in"),
    "data dir a file": (["data.data_dir={tmp}/file"], "run", "is a file, not a directory"),
    "bad magic number": (["data.data_dir={tmp}/magic"], "run", "train-labels-idx1-ubyte is not an IDX file"),
    "truncated data": (["data.data_dir={tmp}/truncate"], "run", "train-labels-idx1-ubyte is truncated or corrupt"),
    "label out of range": (["data.data_dir={tmp}/label11"], "run", "gave training label 11 at index 0; labels must"),
    "images not the data's shape": (
        ["data.data_dir={tmp}/shape20"],
        "run",
        "gave training images of shape 1x20x20, but data.image_shape is [1, 28, 28]",
    ),
    "a dir where a data file belongs": (["data.data_dir={tmp}/dir"], "run", "is a directory where an MNIST data file"),
    "a FIFO as a data file": (["data.data_dir={tmp}/fifo"], "run", "is a named pipe (FIFO), not a data file"),
    # model, init, act
    "hidden dims not a list": (["model.hidden_dims=100"], "config", "model.hidden_dims=100 is not allowed: a list"),
    "a zero hidden dim": (["model.hidden_dims=[100,0]"], "config", "model.hidden_dims[1]=0 is not allowed"),
    "a word as hidden dim": (["model.hidden_dims=[a]"], "config", "model.hidden_dims[0]='a' is not allowed"),
    "outputs of the wrong size": (
        ["model.num_classes=5"],
        "run",
        "model=mlp gives outputs of shape [2, 5] for 2 images; data=mnist has 10 classes",
    ),
    "a user model of the wrong size": (
        [USER, "model=seven_classes"],
        "run",
        "model=seven_classes gives outputs of "
        "shape [2, 7] for 2 images; data=mnist has 10 classes, so it must give [2, 10]",
    ),
    "an activation argument of the wrong type": (["act=elu", "act.alpha=abc"], "config", "act.alpha='abc' is not"),
    "an activation argument it lacks": (["act=elu", "+act.beta=2"], "run", "act.beta is not an argument of ELU"),
    "a nan slope": (["act=leaky_relu", "act.negative_slope=nan"], "config", "act.negative_slope=nan is not allowed"),
    "an unknown nonlinearity": (
        ["init.weight.nonlinearity=banana"],
        "config",
        "init.weight.nonlinearity='banana' is not allowed: one of 'linear', 'conv1d'",
    ),
    "a user init that raises": (
        [USER, "init=raising"],
        "run",
        "cannot build the model (model=mlp act=relu init=raising): KeyError: 'gain'",
    ),
    "a negative sigma_w2": (["init=gaussian", "init.sigma_w2=-1"], "config", "init.sigma_w2=-1 is not allowed"),
    "a misspelt init setting": (["+init.calibarte=1"], "config", "init.calibarte is not a setting of init (a typo?)"),
    "an activation that needs arguments": (  # Hydra's reason is on its message's second line: it must be kept
        ["act._target_=torch.nn.Linear"],
        "run",
        "'initlab.models.MLP': TypeError(\"Linear.__init__() missing 2 required positional arguments",
    ),
    "a list of inits": (["init=[kaiming,lecun]"], "config", "init=['kaiming', 'lecun'] is not allowed: one choice"),
    # trainer, loggers, callbacks
    "max epochs 0": (["trainer.max_epochs=0"], "config", "trainer.max_epochs=0 is not allowed: an integer >= 1"),
    "max steps -5": (["trainer.max_steps=-5"], "config", "trainer.max_steps=-5 is not allowed: an integer >= 1 or"),
    "val check 0": (["trainer.val_check_interval=0"], "config", "trainer.val_check_interval=0 is not allowed"),
    "val check 1.5": (["trainer.val_check_interval=1.5"], "config", "trainer.val_check_interval=1.5 is not"),
    "val check a fraction with epochs off": (  # validation counts global steps (check_val_every_n_epoch: null)
        ["trainer.val_check_interval=0.5"],
        "config",
        "trainer.val_check_interval=0.5 is not allowed: a whole number of steps while",
    ),
    "max time a word": (["trainer.max_time=abc"], "config", "trainer.max_time='abc' is not allowed: one of None or a"),
    "max time of two parts": (["trainer.max_time='1:30'"], "config", "trainer.max_time='1:30' is not allowed"),
    "max time negative": (["trainer.max_time='-1:00:00:00'"], "config", "trainer.max_time='-1:00:00:00' is not"),
    "max time zero": (["trainer.max_time=00:00:00:00"], "config", "trainer.max_time='00:00:00:00' is not allowed"),
    "max time a zero dict": (["trainer.max_time={hours:0}"], "config", "trainer.max_time={'hours': 0} is not"),
    "an optimizer that does not exist": (
        ["optimizer._target_=torch.optim.Bogus"],
        "run",
        "optimizer._target_='torch.optim.Bogus' cannot be imported",
    ),
    "a callback that is not one": (
        ["+callbacks.evil={_target_:builtins.print}"],
        "run",
        "callbacks.evil: TypeError: builtins.print built NoneType, not a Lightning Callback",
    ),
    "a logger that is not one": (
        ["+logger.evil={_target_:builtins.dict}"],
        "run",
        "logger.evil: TypeError: builtins.dict built dict, not a Lightning Logger",
    ),
    "an MLflow store that is a directory": (
        ["logger=mlflow", "logger.mlflow.tracking_uri=sqlite:///{tmp}/store"],
        "config",
        "is not allowed: one of None or a SQLite file, and ",  # ... {tmp}/store is a directory
    ),
    "tuning the seed": (["summary.tune=seed"], "config", "summary.tune='seed' is not allowed: one of None or a swept"),
    "a misspelt summary setting": (["+summary.tunes=optimizer.lr"], "config", "summary.tunes is not a setting of"),
    "a search without -m": (["hparams_search=optuna"], "cli", "hparams_search=optuna searches over many runs: add -m"),
    "log every 0": (["trainer.log_every_n_steps=0"], "config", "trainer.log_every_n_steps=0 is not allowed"),
    "no devices": (["trainer.devices=0"], "config", "trainer.devices=0 is not allowed"),
    "a quantum accelerator": (["trainer.accelerator=quantum"], "config", "trainer.accelerator='quantum' is not"),
    "an unknown precision": (["+trainer.precision=foo"], "config", "trainer.precision='foo' is not allowed"),
    "no training batches": (
        ["++trainer.limit_train_batches=0"],
        "config",
        "trainer.limit_train_batches=0 is not allowed",
    ),
    "an unknown trainer argument": (["+trainer.max_step=5"], "run", "trainer.max_step is not an argument of Trainer"),
    "a gpu without a gpu": (["trainer=gpu"], "run", "trainer.accelerator='gpu' cannot run here"),
    "an unknown logger argument": (
        ["+logger.tensorboard.bogus=1"],
        "run",
        "logger.tensorboard: TypeError: SummaryWriter.__init__() got an unexpected keyword argument 'bogus'",
    ),
    "negative diagnostics cadence": (
        ["callbacks.diagnostics.every_n_steps=-1"],
        "config",
        "callbacks.diagnostics.every_n_steps=-1 is not allowed",
    ),
    # checkpoints and evaluation
    "evaluation without a checkpoint": (["train=false"], "config", "train=false needs ckpt_path="),
    "evaluation of last": (["train=false", "ckpt_path=last"], "run", "ckpt_path=last resumes training in this run"),
    "a garbage checkpoint": (["ckpt_path={tmp}/file"], "run", "is not a readable checkpoint"),
    "a missing checkpoint": (["ckpt_path={tmp}/nothing.ckpt"], "run", "does not exist"),
    "a FIFO as checkpoint": (["ckpt_path={tmp}/pipe"], "run", "is a named pipe (FIFO), not a checkpoint file"),
    "a checkpoint of zeros": (["ckpt_path={tmp}/zeros.ckpt"], "run", "torch.load cannot read it as a checkpoint (R"),
    # Hydra's own: found while composing, before any job
    "an unknown choice": (["init=bogus"], "cli", "Could not find 'init/bogus'; choose one of: default, gaussian,"),
    "a misspelt key": (["optimizer.lrr=0.1"], "cli", "Could not override 'optimizer.lrr'"),
    "a group set to null": (["act=null"], "cli", "cannot start: act=null is not allowed: a config group takes one"),
    "a group set to a number": (["init=1"], "cli", "init=1 is not allowed: a config group takes one of its files' n"),
    "a group set to a float": (["act=0.5"], "cli", "act=0.5 is not allowed: a config group takes one of its files'"),
    "broken override syntax": (["model.hidden_dims=[1,"], "cli", "cannot parse the command line"),
    "a number for a group": (["init=nan"], "cli", "cannot start: init=nan is not allowed: a config group takes"),
    "broken YAML in the search path": (["hydra.searchpath=[file://{tmp}/broken]", "init=bad"], "cli", "cannot start:"),
    "a run dir under a file": (["hydra.run.dir={tmp}/file/run"], "cli", "hydra.run.dir="),
    "an empty run dir": (["hydra.run.dir="], "cli", "hydra.run.dir='' is empty; give a directory"),
    "a search path that is not there": (
        ["hydra.searchpath=[file://{tmp}/nonexist]", "act=mine"],
        "cli",
        "/nonexist is not a directory; give file://",
    ),
    "a search path package that is not there": (["hydra.searchpath=[pkg://nope.conf]"], "cli", "no package 'nope'"),
    "logging switched off": (
        ["hydra/job_logging=disabled", "optimizer.lr=-1"],
        "cli",
        "optimizer.lr=-1 is not allowed",
    ),
    "a run dir name too long": (["hydra.run.dir={tmp}/" + "x" * 300], "cli", "cannot be used: File name too long"),
}


def broken_files(tmp: Path) -> None:
    """The broken data dirs, files, FIFOs and config dir that the table's {tmp} rows point at."""
    for how in ("magic", "truncate", "label11", "shape20", "dir", "fifo"):
        raw = make_tiny_mnist(tmp / how, n_train=200, n_test=50) / "MNIST" / "raw"
        labels = raw / "train-labels-idx1-ubyte"
        data = labels.read_bytes()
        if how == "magic":
            labels.write_bytes(b"\0\0\0\0" + data[4:])
        elif how == "truncate":
            labels.write_bytes(data[: len(data) // 2])
        elif how == "label11":
            labels.write_bytes(data[:8] + bytes([11]) + data[9:])
        elif how == "shape20":
            write_idx(raw / "train-images-idx3-ubyte", np.zeros((200, 20, 20), dtype=np.uint8))
        elif how == "dir":
            (raw / "t10k-images-idx3-ubyte").unlink()
            (raw / "t10k-images-idx3-ubyte").mkdir()
        elif how == "fifo":  # opening a FIFO blocks until a writer comes: the reader must never open one
            (raw / "t10k-images-idx3-ubyte").unlink()
            os.mkfifo(raw / "t10k-images-idx3-ubyte")
    (tmp / "file").write_text("not a directory, not a checkpoint")
    with (tmp / "zeros.ckpt").open("wb") as f:  # torch's answer to it ends in advice to load with weights_only=False
        f.truncate(1 << 20)
    (tmp / "store").mkdir()  # where a SQLite file should be
    os.mkfifo(tmp / "pipe")
    (tmp / "broken" / "init").mkdir(parents=True)
    (tmp / "broken" / "init" / "bad.yaml").write_text("weight: [unclosed\n")


def overrides(case: str, tmp: Path) -> list[str]:
    return [o.format(tmp=tmp) if "{tmp}" in o else o for o in BAD[case][0]]


@pytest.mark.parametrize("case", [c for c, (_, where, _) in BAD.items() if where != "cli"])
def test_a_mistake_is_one_line_naming_key_value_and_allowed(make_cfg, tmp_path: Path, case: str) -> None:
    broken_files(tmp_path)
    _, where, message = BAD[case]
    out = tmp_path / "run"
    cfg = make_cfg(*overrides(case, tmp_path), out=out)
    with pytest.raises(InitLabError) as info:
        validate(cfg, listed(cfg.hydra.overrides.task)) if where == "config" else run(cfg)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert not (out / "metrics.json").exists() and not (out / "checkpoints").exists()  # nothing looks like a result


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD))
def test_the_command_line_answers_in_one_line_and_leaves_no_run_dir(
    case: str, tiny_mnist: Path, tmp_path: Path
) -> None:
    if "hparams_search=optuna" in BAD[case][0]:
        pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the optuna extra is not installed")
    broken_files(tmp_path)
    message = BAD[case][2]
    run_dir = tmp_path / "runs" / "run"
    proc = run_cli(f"data.data_dir={tiny_mnist}", "data.val_size=100", f"hydra.run.dir={run_dir}",
                   *overrides(case, tmp_path))  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and message in proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line or message in line]
    assert len(errors) == 1  # one line, Hydra's composition errors included
    assert not run_dir.exists() and not (tmp_path / "runs").exists()  # no dir named like a run
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize(
    "override",
    ["seed=0", "seed=4294967295", "model.hidden_dims=[]", "trainer.max_steps=-1",
     "trainer.val_check_interval=0.5 trainer.check_val_every_n_epoch=1", "trainer.max_time=00:00:00:01",
     "trainer.max_time={minutes:30}", "trainer.devices=auto", "num_threads=auto", "+trainer.precision=bf16-mixed",
     "optimizer.momentum=0 optimizer.nesterov=false", "optimizer.lr=${optimizer.momentum}",
     "++trainer.limit_train_batches=0.5",
     "logger=[tensorboard,csv]", "init=gaussian +init.my_scale=2 init.sigma_w2=${init.my_scale}",
     "summary.tune=optimizer.lr", "+scheduler.frequency=2", "+trainer.fast_dev_run=0", "+trainer.fast_dev_run=false",
     "+trainer.gradient_clip_algorithm=value", "logger.tensorboard.name=tb", "+trainer.min_epochs=2",
     "+trainer.min_steps=100",
     "logger.tensorboard.save_dir=${hydra:runtime.output_dir}/tb"],
)  # fmt: skip
def test_legitimate_settings_pass(make_cfg, override: str) -> None:
    cfg = make_cfg(*override.split(" "))
    validate(cfg, listed(cfg.hydra.overrides.task))


def test_every_shipped_numeric_setting_has_a_rule(make_cfg) -> None:
    """A new numeric key in a shipped config must get a rule here, or its NaNs and negatives slip through."""
    unchecked = []
    choices = {"optimizer": ("sgd", "adam", "adamw", "lenet_sgd"), "scheduler": ("step", "cosine", "none"),
               "act": ("elu", "leaky_relu", "softplus"), "init": ("gaussian", "lsuv", "normal", "xavier", "orthogonal"),
               "data": ("cifar10",)}  # fmt: skip
    for group, choice in [(g, c) for g, cs in choices.items() for c in cs]:
        cfg = OmegaConf.to_container(make_cfg(f"{group}={choice}"), resolve=True)
        for key in ("optimizer", "scheduler", "act", "init", "data", "model", "trainer", "seed", "num_threads"):
            stack = [(key, cfg[key])]
            while stack:
                path, node = stack.pop()
                if isinstance(node, dict):
                    stack += [(f"{path}.{k}", v) for k, v in node.items() if not k.startswith("_")]
                elif isinstance(node, int | float) and not isinstance(node, bool) and path not in RULES:
                    unchecked.append(path)
    assert not unchecked, unchecked


@pytest.mark.parametrize(("overrides", "multirun", "message"), [
    (["hparams_search=optuna", "hydra.sweeper.n_trials=0"], True, "hydra.sweeper.n_trials=0 is not allowed"),
    (["hparams_search=optuna", "hydra.sweeper.n_jobs=-1"], True, "hydra.sweeper.n_jobs=-1 is not allowed"),
    (["hparams_search=optuna"], False, "hparams_search=optuna searches over many runs: add -m"),
    (["summary.tune=optimizer.lr"], False, "summary.tune=optimizer.lr picks each cell's best optimizer.lr in a sweep"),
    (["hydra.job.name=../../x"], False, "hydra.job.name='../../x' is not allowed: a plain name"),  # ../../x.log
    (["hydra.job.name=' '"], False, "hydra.job.name=' ' is not allowed: a plain name"),  # ' .log
    (["hydra.output_subdir=../esc"], True, "hydra.output_subdir='../esc' is not allowed: null or a folder inside"),
])  # fmt: skip
def test_what_hydra_reads_before_any_job_is_checked(make_cfg, overrides: list[str], multirun: bool, message: str):
    from initlab.run.checks import launch

    search = "hparams_search=optuna" in overrides
    if search:
        pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the optuna extra is not installed")
    with pytest.raises(InitLabError, match=re.escape(message)):
        launch(make_cfg(*overrides), multirun=multirun)
    if search:
        launch(make_cfg("hparams_search=optuna"), multirun=True)  # a search, under -m: fine


def test_a_sweep_is_checked_before_its_first_job(make_cfg) -> None:
    from omegaconf import open_dict, read_write

    from initlab.run.checks import launch

    cfg = make_cfg("summary.tune=optimizer.lr")
    with pytest.raises(InitLabError, match=re.escape("summary.tune='optimizer.lr' is not allowed: a key this sweep "
                                                     "gives several values (swept: none)")):  # fmt: skip
        launch(cfg, multirun=True)
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.sweeper.params = {"optimizer.lr": "0.1,0.3", "seed": "0,1"}  # as an experiment file sweeps it
    launch(cfg, multirun=True)  # swept: fine
    with pytest.raises(InitLabError, match=re.escape("summary.tune='seed' is not allowed")):
        launch(make_cfg("summary.tune=seed"), multirun=True)
    with pytest.raises(InitLabError, match=re.escape("experiment=['deep', 'cnn_table'] is not allowed: one choice (to "
                                                     "sweep, -m experiment=deep,cnn_table)")):  # fmt: skip
        launch(make_cfg("experiment=[deep,cnn_table]"), multirun=True)


@pytest.mark.slow
def test_config_mistakes_are_found_before_torch_is_imported(tiny_mnist: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from initlab.run.cli import main\n"
        f"sys.argv = ['train.py', 'data.data_dir={tiny_mnist}', 'seed=-1', 'hydra.run.dir={tmp_path}/run']\n"
        "try:\n    main()\nexcept SystemExit as e:\n"
        "    print(e.code, 'torch' in sys.modules, 'lightning' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.stdout.split() == ["1", "False", "False"], proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].endswith("seed=-1 is not allowed: an integer in [0, 4294967295]")


@pytest.mark.slow
def test_a_sweep_job_with_a_mistake_is_failed_in_the_summary_and_the_rest_run(tiny_mnist: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", "optimizer.lr=0.1,-1", f"data.data_dir={tiny_mnist}", *FAST, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1 and "1 of 2 jobs did not run to their end" in proc.stderr, proc.stderr[-2000:]
    status = {p.parent.name: json.loads(p.read_text())["status"] for p in sweep.glob("*/metrics.json")}
    assert sorted(status.values()) == ["failed", "ok"]  # the good job still ran
    summary = (sweep / "summary.md").read_text()
    assert "failed" in summary and "optimizer.lr=-1 is not allowed: a finite number > 0" in summary


@pytest.mark.parametrize(("args", "said"), [
    (["experiment=classic_table", "seed=-3"], "seed=-3 is not allowed"),  # shared by all 8 jobs: 8 failures once
    pytest.param(["act=relu,bogus"], "Could not find 'act/bogus'", marks=pytest.mark.slow),  # it left the dir
])  # fmt: skip
def test_a_sweep_mistake_before_the_first_job_is_one_line_and_no_dir(tiny_mnist: Path, tmp_path: Path, args, said):
    proc = run_cli("-m", *args, f"data.data_dir={tiny_mnist}", *FAST, f"hydra.sweep.dir={tmp_path}/s")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert said in proc.stderr.strip().splitlines()[-1] and not (tmp_path / "s").exists()


def test_a_search_path_that_is_not_there_is_named(tmp_path: Path) -> None:
    from initlab.run.cli import missing_searchpath

    assert "nonexist is not a directory" in missing_searchpath([f"hydra.searchpath=[file://{tmp_path}/nonexist]"])
    assert "no package 'nope'" in missing_searchpath(["hydra.searchpath=[pkg://nope.conf]", "act=relu"])
    assert missing_searchpath([f"hydra.searchpath=[file://{USER_CONF},pkg://initlab.conf]"]) is None
    assert missing_searchpath(["act=relu"]) is None


def test_the_optimizer_takes_a_step_before_the_data_loads(make_cfg) -> None:
    from initlab.run.build import dry_run

    dry_run(make_cfg())  # the classic SGD: fine
    with pytest.raises(InitLabError, match=r"^optimizer: TypeError: _fused_sgd_\(\) received an invalid combination"):
        dry_run(make_cfg("+optimizer.maximize=yes"))  # past its constructor, it failed the first fused step


def test_a_validation_interval_of_a_whole_epoch_is_allowed(make_cfg, tmp_path: Path) -> None:
    record = run(make_cfg("trainer.check_val_every_n_epoch=1", "trainer.val_check_interval=5", out=tmp_path / "run"))
    assert [step for step, _ in record["val_history"]] == [5, 10]  # 5 batches an epoch, validated at each end
