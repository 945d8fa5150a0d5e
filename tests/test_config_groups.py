"""Every option of every config group composes, validates and builds (new YAML files are picked up); the defaults
are the classic experiment; a user's own init, activation and model come from their own config dir."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from torch import nn

from initlab.module import Classifier
from initlab.run.checks import validate
from initlab.run.cli import CONF_DIR
from tests.conftest import USER_CONF, build, run

GROUPS = [
    "init",
    "act",
    "optimizer",
    "scheduler",
    "data",
    "model",
    "trainer",
    "logger",
    "callbacks",
    "combo",
    "experiment",
    "hparams_search",
]
CHOICES = [(g, p.stem) for g in GROUPS for p in sorted((Path(CONF_DIR) / g).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "choice"), CHOICES, ids=[f"{g}={c}" for g, c in CHOICES])
def test_choice_composes_and_builds(make_cfg, group: str, choice: str) -> None:
    if group == "hparams_search":
        pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the optuna extra is not installed")
    cfg = make_cfg(f"{group}={choice}")
    validate(cfg)
    module = Classifier.from_config(cfg)
    optim = module.configure_optimizers()
    assert optim is not None
    if group == "callbacks":
        for node in cfg[group].values():
            assert instantiate(node) is not None
    if group == "trainer":
        assert cfg.trainer.max_epochs >= 1 and "accelerator" in cfg.trainer


def test_combo_sets_init_and_act(make_cfg) -> None:
    cfg = make_cfg("combo=xavier_relu")
    choices = cfg.hydra.runtime.choices
    assert (choices.init, choices.act) == ("xavier", "relu")
    assert cfg.init.weight._target_ == "torch.nn.init.xavier_normal_" and cfg.act._target_ == "torch.nn.ReLU"


def test_experiments_are_sweeps_that_say_how_to_run_them(make_cfg) -> None:
    for path in sorted((Path(CONF_DIR) / "experiment").glob("*.yaml")):
        text = path.read_text()
        assert f"python train.py experiment={path.stem}" in text and "Should show" in text, path
        cfg = make_cfg(f"experiment={path.stem}")
        assert cfg.hydra.mode.name == "MULTIRUN" and cfg.hydra.sweeper.params, path
    assert len(make_cfg("experiment=deep").model.hidden_dims) >= 8


def test_defaults_are_the_classic_experiment(make_cfg) -> None:
    cfg = make_cfg(fast=False)
    assert list(cfg.model.hidden_dims) == [100] and cfg.data.batch_size == 100
    assert (cfg.data.val_size, cfg.trainer.val_check_interval) == (5000, 500)  # 55k to train on: 550 steps an epoch
    assert (cfg.optimizer.lr, cfg.optimizer.momentum, cfg.optimizer.nesterov) == (0.1, 0.9, True)
    assert cfg.scheduler.scheduler.step_size == 1 and cfg.scheduler.scheduler.gamma == 0.96
    assert cfg.scheduler.interval == "epoch" and cfg.trainer.max_epochs == 5
    assert (cfg.init.weight._target_, cfg.init.weight.nonlinearity, cfg.init.bias) == (
        "torch.nn.init.kaiming_normal_", "relu", "zero")  # fmt: skip
    assert (cfg.act._target_, cfg.seed) == ("torch.nn.ReLU", 0)
    assert cfg.trainer.accelerator == "auto"


def test_hparams_are_plain_values(make_cfg) -> None:
    cfg = make_cfg("act=leaky_relu")
    module = Classifier.from_config(cfg)
    allowed = (str, int, float, bool, type(None), list, dict)

    def check(v: object) -> None:
        assert isinstance(v, allowed), type(v)
        for item in v.values() if isinstance(v, dict) else v if isinstance(v, list) else []:
            check(item)

    check(dict(module.hparams))
    assert module.net[1].negative_slope == 0.01


def test_an_init_and_an_activation_from_the_users_own_config_dir(make_cfg, tmp_path: Path) -> None:
    from tests.user_models import ScaledTanh

    cfg = make_cfg(f"hydra.searchpath=[file://{USER_CONF}]", "init=kaiming_out", "act=scaled_tanh")
    net = build(cfg)[1].net
    assert isinstance(net[1], ScaledTanh) and net[1].scale == 2.0
    assert net[0].weight.var().item() == pytest.approx(2 / 100, rel=0.05)  # fan_out = 100, not fan_in = 784
    record = run(cfg)
    assert (record["init"], record["act"]) == ("kaiming_out", "scaled_tanh")  # named by their file names
    assert record["steps"] == 10 and "test/acc" in record


def test_experiment_files_choose_their_sweep_dir(make_cfg) -> None:
    for path in sorted((Path(CONF_DIR) / "experiment").glob("*.yaml")):
        assert f"outputs/multirun/{path.stem}/" in make_cfg(f"experiment={path.stem}").hydra.sweep.dir


INITS = sorted(p.stem for p in (Path(CONF_DIR) / "init").glob("*.yaml"))
ACTS = sorted(p.stem for p in (Path(CONF_DIR) / "act").glob("*.yaml"))


def test_a_model_of_the_users_own_builds_with_their_config(make_cfg) -> None:
    net = build(make_cfg(f"hydra.searchpath=[file://{USER_CONF}]", "model=tiny_convnet", "act=elu", "init=lecun"))[
        1
    ].net
    assert type(net).__name__ == "TinyConvNet" and isinstance(net.features[1], nn.ELU)
    assert net.features[0].weight.var().item() == pytest.approx(1 / 9, rel=0.5)  # lecun on a 3x3 kernel: 1/fan_in
    assert net.head[0].bias.abs().max().item() == 0.0  # zero biases on every layer, conv and linear


@pytest.mark.slow
@pytest.mark.parametrize(("init", "act"), [*((i, "relu") for i in INITS), *(("lecun", a) for a in ACTS)])
def test_a_model_of_the_users_own_trains_with_every_init_and_act(make_cfg, init: str, act: str) -> None:
    record = run(make_cfg(f"hydra.searchpath=[file://{USER_CONF}]", "model=tiny_convnet", f"init={init}", f"act={act}"))
    assert record["steps"] == 10 and record["init"] == init and record["act"] == act and "test/acc" in record


@pytest.mark.parametrize("choice", [None, "disabled", "none"])
def test_hydra_logging_choices_replace_ours_whole(make_cfg, choice: str | None) -> None:
    """Logs go to stderr; Hydra's own hydra/job_logging choices replace that whole (disabled once met a console
    handler holding only a stream: "Unable to configure handler 'console'")."""
    from omegaconf import OmegaConf

    cfg = make_cfg(*([f"hydra/job_logging={choice}", f"hydra/hydra_logging={choice}"] if choice else []))
    for node in (cfg.hydra.job_logging, cfg.hydra.hydra_logging):
        handlers = (OmegaConf.to_container(node, resolve=False) or {}).get("handlers", {})
        assert all("class" in h for h in handlers.values()), handlers  # what logging.config needs of each
        assert (handlers.get("console", {}).get("stream") == "ext://sys.stderr") == (choice is None)
