"""Every bad setting is refused in one line naming the key, the value and what is allowed, before torch loads."""

import subprocess
import sys
from pathlib import Path

import pytest

from initlab.checks import RULES, validate
from initlab.errors import ConfigError
from tests.conftest import ROOT, run

BAD = {  # override: what the one line must say
    "seed=-1": "seed=-1 is not allowed: an integer in [0, 4294967295]",
    "seed=abc": "seed='abc' is not allowed: an integer",
    "seed=1.5": "seed=1.5 is not allowed: an integer",
    "seed=5000000000": "seed=5000000000 is not allowed",
    "seed=true": "seed=True is not allowed",
    "optimizer.lr=nan": "optimizer.lr=nan is not allowed: a finite number > 0",
    "optimizer.lr=inf": "optimizer.lr=inf is not allowed",
    "optimizer.lr=abc": "optimizer.lr='abc' is not allowed",
    "optimizer.momentum=-1": "optimizer.momentum=-1 is not allowed: a finite number in [0, 1)",
    "optimizer.momentum=1": "optimizer.momentum=1 is not allowed",
    "optimizer.weight_decay=-0.1": "optimizer.weight_decay=-0.1 is not allowed: a finite number >= 0",
    "optimizer.nesterov=maybe": "optimizer.nesterov='maybe' is not allowed: one of True, False",
    "scheduler.scheduler.gamma=0": "scheduler.scheduler.gamma=0 is not allowed",
    "scheduler.scheduler.step_size=0": "scheduler.scheduler.step_size=0 is not allowed: an integer >= 1",
    "scheduler.interval=batch": "scheduler.interval='batch' is not allowed: one of 'epoch', 'step'",
    "data.val_size=0": "data.val_size=0 is not allowed: an integer >= 1",
    "data.batch_size=2.5": "data.batch_size=2.5 is not allowed: an integer >= 1",
    "data.eval_batch_size=-1": "data.eval_batch_size=-1 is not allowed",
    "model.hidden_dims=100": "model.hidden_dims=100 is not allowed: a list",
    "model.hidden_dims=[100,0]": "model.hidden_dims[1]=0 is not allowed: an integer >= 1",
    "model.hidden_dims=[a]": "model.hidden_dims[0]='a' is not allowed",
    "model.num_classes=1": "model.num_classes=1 is not allowed: the data is 1x28x28 images of 10 classes",
    "model.num_classes=5": "model.num_classes=5 is not allowed: the data is 1x28x28 images of 10 classes",
    "model.input_dim=100": "model.input_dim=100 is not allowed: the data is 1x28x28 images of 10 classes, so it",
    "~optimizer.lr": "optimizer.lr is missing: the run needs it",
    "+sed=1": "sed=1 is not a setting here (a typo?)",
    "act=elu act.alpha=abc": "act.alpha='abc' is not allowed: a finite number",
    "act=leaky_relu act.negative_slope=nan": "act.negative_slope=nan is not allowed",
    "trainer.val_check_interval=0": "trainer.val_check_interval=0 is not allowed: an integer >= 1 or",
    "trainer.val_check_interval=1.5": "trainer.val_check_interval=1.5 is not allowed",
    "trainer.max_steps=-5": "trainer.max_steps=-5 is not allowed: an integer >= 1 or -1",
    "trainer.max_epochs=0": "trainer.max_epochs=0 is not allowed: an integer >= 1",
    "trainer.log_every_n_steps=0": "trainer.log_every_n_steps=0 is not allowed",
    "trainer.devices=0": "trainer.devices=0 is not allowed",
    "trainer.accelerator=quantum": "trainer.accelerator='quantum' is not allowed: one of",
    "+trainer.precision=foo": "trainer.precision='foo' is not allowed: one of",
    "num_threads=0": "num_threads=0 is not allowed",
    "callbacks.diagnostics.every_n_steps=-1": "callbacks.diagnostics.every_n_steps=-1 is not allowed",
    "train=maybe": "train='maybe' is not allowed: one of True, False",
}


@pytest.mark.parametrize("override", list(BAD))
def test_bad_setting_is_one_line_naming_key_value_and_allowed(make_cfg, override: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(make_cfg(*override.split()))
    assert str(info.value).startswith(BAD[override]) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "override",
    ["seed=0", "seed=4294967295", "model.hidden_dims=[]", "trainer.max_steps=-1", "trainer.val_check_interval=0.5",
     "trainer.devices=auto", "num_threads=auto", "+trainer.precision=bf16-mixed", "optimizer.momentum=0"],
)  # fmt: skip
def test_legitimate_settings_pass(make_cfg, override: str) -> None:
    validate(make_cfg(override))


def test_every_shipped_numeric_setting_has_a_rule(make_cfg) -> None:
    """A new numeric key in a shipped config must get a rule here, or its NaNs and negatives slip through."""
    from omegaconf import OmegaConf

    unchecked = []
    choices = {
        "optimizer": ("sgd", "adam", "adamw"),
        "scheduler": ("step", "cosine", "none"),
        "act": ("elu", "leaky_relu"),
    }
    for group, choice in [(g, c) for g, cs in choices.items() for c in cs]:
        cfg = OmegaConf.to_container(make_cfg(f"{group}={choice}"), resolve=True)
        for key in ("optimizer", "scheduler", "act", "data", "model", "trainer", "seed", "num_threads"):
            stack = [(key, cfg[key])]
            while stack:
                path, node = stack.pop()
                if isinstance(node, dict):
                    stack += [(f"{path}.{k}", v) for k, v in node.items() if not k.startswith("_")]
                elif isinstance(node, int | float) and not isinstance(node, bool) and path not in RULES:
                    unchecked.append(path)
    assert not unchecked, unchecked


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["+optimizer.weight_decy=0.1"], "optimizer.weight_decy is not an argument of SGD; it takes: lr, momentum"),
        (["+scheduler.scheduler.gama=0.5"], "scheduler.scheduler.gama is not an argument of StepLR"),
        (["act=elu", "+act.beta=2"], "act.beta is not an argument of ELU; it takes: alpha, inplace"),
        (["+trainer.max_step=5"], "trainer.max_step is not an argument of Trainer"),
    ],
)
def test_unknown_keyword_arguments_are_named(make_cfg, tmp_path: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        run(make_cfg(*overrides))


def test_a_trainer_error_names_the_key_at_fault(make_cfg) -> None:
    with pytest.raises(ConfigError, match=r"trainer\.accelerator='gpu' cannot run here"):
        run(make_cfg("trainer.accelerator=gpu"))


def test_config_mistakes_are_found_before_torch_is_imported(tiny_mnist: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from initlab.cli import main\n"
        f"sys.argv = ['train.py', 'data.data_dir={tiny_mnist}', 'seed=-1', 'hydra.run.dir={tmp_path}/run']\n"
        "try:\n    main()\nexcept SystemExit as e:\n"
        "    print(e.code, 'torch' in sys.modules, 'lightning' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.stdout.split() == ["1", "False", "False"], proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].endswith("seed=-1 is not allowed: an integer in [0, 4294967295]")
