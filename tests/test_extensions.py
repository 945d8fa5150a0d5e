"""Each extension is one file, used from a user's config dir with no edit to the package: an activation (its
theory and diagnostics derived from the module), an init (data-dependent ones too), a data set."""

import json
import math
from pathlib import Path

import pytest
import torch

from initlab.inits import apply_init
from tests.conftest import USER_CONF, build, run

USER = f"hydra.searchpath=[file://{USER_CONF}]"


@pytest.mark.parametrize("act", ["softplus", "mish", "scaled_tanh"])
def test_an_activation_gets_its_theory_and_family_statistic_from_the_module(make_cfg, act: str) -> None:
    record = run(make_cfg(USER, f"act={act}", "init=lecun", "model.depth=3", "model.width=200"))
    diag = record["diagnostics"]
    family = "saturated_frac" if act == "scaled_tanh" else "flat_frac"  # bounded at +-2, or no flat side
    for layer in (1, 2, 3):
        assert f"act{layer}/{family}" in diag and 0 <= diag[f"act{layer}/{family}"] <= 1
        theory, measured = diag[f"act{layer}/preact_var_theory"], diag[f"act{layer}/preact_var"]
        assert theory > 0 and measured == pytest.approx(theory, rel=0.25)  # width 200: mean-field, roughly


def test_lsuv_gives_unit_preactivation_variance_at_every_layer_at_step_0(make_cfg) -> None:
    record = run(make_cfg("init=lsuv", "act=tanh", "model.depth=4", "model.width=64"))
    diag = record["diagnostics"]
    for layer in (1, 2, 3, 4):
        assert diag[f"act{layer}/preact_var"] == pytest.approx(1.0, abs=0.05)  # measured on the same first batch
    assert not [k for k in diag if k.endswith("weight_std_init")]  # no closed form: nothing to compare against
    assert "preact_var_theory" not in str(diag)


def test_lsuv_runs_once_and_never_on_resume(make_cfg, tmp_path: Path, monkeypatch) -> None:
    from tests.conftest import CRASH

    calls = []
    import initlab.inits as inits

    real = inits.lsuv
    monkeypatch.setattr(inits, "lsuv", lambda *a, **k: calls.append(1) or real(*a, **k))
    whole = run(make_cfg(CRASH, "init=lsuv", out=tmp_path / "whole"))
    assert len(calls) == 1
    monkeypatch.setenv("CRASH_AT", "7")
    with pytest.raises(RuntimeError):
        run(make_cfg(CRASH, "init=lsuv", out=tmp_path / "run"))
    monkeypatch.delenv("CRASH_AT")
    resumed = run(make_cfg(CRASH, "ckpt_path=last", out=tmp_path / "run"))
    assert len(calls) == 2 and resumed["test/acc"] == whole["test/acc"]  # not a third time: the resume keeps weights


def test_a_depth_scaled_init_asks_for_its_layers_name_index_and_depth(make_cfg) -> None:
    net = build(make_cfg(USER, "init=fixup", "model.depth=3", "model.width=400"))[1].net
    for i, layer in enumerate((net.fc1, net.fc2, net.fc3)):  # std = sqrt(1 / fan_in) / sqrt(depth = 4 layers)
        assert layer.weight.std().item() == pytest.approx(math.sqrt(1 / layer.in_features) / 2, rel=0.05), i
    assert net.out.weight.abs().max().item() == 0  # the last layer starts at zero
    assert net.fc1.bias.abs().max().item() == 0


def test_apply_init_passes_only_what_a_function_asks_for() -> None:
    seen = {}

    def fill_(tensor: torch.Tensor, index: int) -> torch.Tensor:
        seen[index] = tuple(tensor.shape)
        return tensor.fill_(index)

    import sys
    import types

    mod = types.ModuleType("user_fill")
    mod.fill_ = fill_
    sys.modules["user_fill"] = mod
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    apply_init(net, {"weight": {"_target_": "user_fill.fill_"}, "bias": "zero", "variance": None})
    assert seen == {0: (4, 3), 1: (2, 4)} and net[2].weight.unique().tolist() == [1.0]


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_cifar10_trains_the_mlp_and_the_cnn_with_no_shape_override(make_cfg, tiny_cifar10: Path, model: str) -> None:
    cfg = make_cfg("data=cifar10", f"data.data_dir={tiny_cifar10}", f"model={model}", "data.val_size=50",
                   "trainer.max_epochs=3")  # fmt: skip
    net = build(cfg)[1].net
    first = net.fc1 if model == "mlp" else net.conv1
    assert (first.in_features if model == "mlp" else first.in_channels) == (3072 if model == "mlp" else 3)
    record = run(cfg)
    assert record["data"] == "cifar10" and record["model"] == model and record["status"] == "ok"
    assert record["steps"] == 3 * 3  # 250 training images (300 - 50 held out), batches of 100: 3 a epoch
    assert 0.0 < record["test/acc"] < 0.9


def test_a_data_set_is_one_yaml_and_one_function(make_cfg) -> None:
    record = run(make_cfg(USER, "data=blobs", "trainer.max_epochs=4"))
    net = build(make_cfg(USER, "data=blobs"))[1].net
    assert net.fc1.in_features == 2 * 8 * 8 and net.out.out_features == 3  # read from the data config
    assert record["data"] == "blobs" and record["status"] == "ok" and 0.2 < record["test/acc"] < 1.0


def test_the_edge_of_chaos_composes_on_cifar10(make_cfg) -> None:
    cfg = make_cfg("experiment=edge_of_chaos", "data=cifar10")
    assert list(cfg.data.image_shape) == [3, 32, 32] and cfg.model.image_shape == [3, 32, 32]
    assert cfg.init.sigma_b2 == 0.05 and cfg.hydra.sweeper.params["model.depth"]


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ("blobs_missing", "data.load=tests.user_models.load_missing failed: FileNotFoundError: no blobs.npz in "),
        ("blobs_int64", "data.load (tests.user_models.load_blobs_int64) gave training images of dtype int64 "
                        "(values 0..1000); images must be uint8 (pixels 0..255) or float"),
        ("blobs_grad", "data.load (tests.user_models.load_blobs_grad) gave training images that require grad "
                       "(requires_grad=True); return plain data: x.detach()"),
    ],
    ids=["raises", "int64", "requires_grad"],
)  # fmt: skip
def test_a_users_data_set_that_fails_is_one_line_naming_its_load(make_cfg, data: str, line: str) -> None:
    from initlab.errors import DataError

    with pytest.raises(DataError) as e:
        run(make_cfg(USER, f"data={data}"))
    assert str(e.value).startswith(line) and "\n" not in str(e.value)


@pytest.mark.slow
def test_a_users_load_that_raises_an_oserror_is_blamed_on_the_load_not_the_run_dir(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    out = tmp_path / "run"
    cli = run_cli(USER, "data=blobs_missing", "trainer.enable_progress_bar=false", f"hydra.run.dir={out}")
    lines = cli.stderr.strip().splitlines()
    assert cli.returncode == 1 and "Traceback" not in cli.stderr, cli.stderr
    assert lines[-1].endswith("- data.load=tests.user_models.load_missing failed: FileNotFoundError: no blobs.npz "
                              "in data")  # fmt: skip
    assert str(out) not in lines[-1] and not out.exists()  # the run dir is not blamed, and not left behind


def test_the_cnn_names_the_smallest_images_it_takes() -> None:
    """LeNet's two 5x5 convs and 2x2 pools need 12x12 (12 -> 6 -> 2 -> 1); the README's 2x8x8 blobs are refused."""
    from torch import nn

    from initlab.models import CNN

    for shape, found in (((2, 8, 8), "8x8"), ((1, 11, 28), "11x28"), ((3, 32, 11), "32x11")):
        with pytest.raises(ValueError, match=rf"^CNN needs images of at least 12x12 \(two 5x5 convolutions and 2x2 "
                           rf"pools\); this data's are {found}$"):  # fmt: skip
            CNN(nn.ReLU, image_shape=shape, num_classes=3)
    assert CNN(nn.ReLU, image_shape=(1, 28, 28)).fc1.in_features == 16 * 5 * 5  # the published LeNet: unchanged
    assert CNN(nn.ReLU, image_shape=(2, 12, 12), num_classes=3).fc1.in_features == 16 * 1 * 1  # the smallest
    with pytest.raises(ValueError, match=r"at least 32x32 \(three 5x5 convolutions and 2x2 pools\); .* 28x28$"):
        CNN(nn.ReLU, image_shape=(1, 28, 28), channels=(6, 16, 32))


def test_the_cnn_on_too_small_a_data_set_is_one_line(make_cfg) -> None:
    from initlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"cannot build the model \(model=cnn .*CNN needs images of at least 12x12 "
                       r"\(two 5x5 convolutions and 2x2 pools\); this data's are 8x8") as e:  # fmt: skip
        build(make_cfg(USER, "data=blobs", "model=cnn"))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("data", "why"), [("blobs_exit", "SystemExit: 3"), ("blobs_ctrl_c", "KeyboardInterrupt")], ids=["exit", "ctrl_c"]
)
def test_a_users_load_that_exits_is_a_failure_of_that_load(make_cfg, tmp_path: Path, data: str, why: str) -> None:
    """sys.exit() or a KeyboardInterrupt raised by the load itself (no signal was sent) is the load's failure: one
    line naming it, and no record (a single run's mistake before training), not a silent exit."""
    from initlab.errors import DataError

    out = tmp_path / "run"
    with pytest.raises(DataError) as e:
        run(make_cfg(USER, f"data={data}", out=out))
    load = data.replace("blobs_", "load_")
    assert str(e.value) == f"data.load=tests.user_models.{load} failed: {why}"
    assert not (out / "metrics.json").exists()


@pytest.mark.parametrize(
    ("model", "line"),
    [
        ("two_outputs", "model=two_outputs gives a tuple for 2 images, not a tensor of shape [2, 10] (the logits for "
                        "data=mnist's 10 classes)"),
        ("no_parameters", "model=no_parameters has no trainable parameters: the optimizer would have nothing to train"),
        ("detached", "model=detached gives outputs that do not depend on its parameters (no gradient reaches them)"),
        ("integer_logits", "model=integer_logits gives outputs of dtype int64; logits are float"),
    ],
    ids=["tuple", "no_parameters", "detached", "integer logits"],
)  # fmt: skip
def test_a_model_that_cannot_train_is_one_line_before_training(make_cfg, model: str, line: str) -> None:
    from initlab.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        build(make_cfg(USER, f"model={model}"))
    assert str(e.value) == line


def test_layers_an_init_does_not_fill_are_named_in_one_line(make_cfg, caplog: pytest.LogCaptureFixture) -> None:
    """An LSTM's weights, a batch norm's scale, a parameter of the model's own: left at torch's init, all named."""
    import logging

    caplog.set_level(logging.INFO, logger="initlab.inits")
    torch.manual_seed(0)
    default_lstm = torch.nn.LSTM(28, 16, batch_first=True).weight_hh_l0
    torch.manual_seed(0)
    net = build(make_cfg(USER, "model=recurrent", "init=zero"))[1].net
    lines = [r.getMessage() for r in caplog.records if "torch's default" in r.getMessage()]
    assert lines == ["init leaves RecurrentNet's own parameters, rnn (LSTM), norm (BatchNorm1d) at torch's default"]
    assert net.out.weight.abs().max().item() == 0  # the Linear is the init's
    assert torch.equal(net.rnn.weight_hh_l0, default_lstm) and net.temperature.item() == 1.0  # the rest is torch's


def test_a_calibration_that_exits_fails_the_run_in_one_line(make_cfg, tmp_path: Path) -> None:
    """sys.exit(0) in a user's calibrate is that code's failure, not a run that ended well: one line, `failed`."""
    from initlab.errors import ConfigError
    from tests.conftest import record

    line = ("init.calibrate (tests.user_models.exit_calibration) failed on the first training batch: "
            "SystemExit: 0")  # fmt: skip
    with pytest.raises(ConfigError) as e:
        run(make_cfg(USER, "init=exiting_calibration", out=tmp_path / "run"))
    assert str(e.value) == line
    saved = record(tmp_path / "run")  # training had begun: its record says how it ended
    assert saved["status"] == "failed" and saved["error"] == line and saved["init"] == "exiting_calibration"


def test_a_model_that_exits_during_training_fails_the_run_in_one_line(make_cfg, tmp_path: Path) -> None:
    from initlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^training stopped at step 2: code of model=exiting or a callback raised "
                                          r"SystemExit: 0, with no signal$"):  # fmt: skip
        run(make_cfg(USER, "model=exiting", out=tmp_path))
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("choice", "line", "left"),
    [
        ("data=blobs_exit", "data.load=tests.user_models.load_exit failed: SystemExit: 3", False),
        ("init=exiting_calibration", "init.calibrate (tests.user_models.exit_calibration) failed on the first "
                                     "training batch: SystemExit: 0", True),
        ("model=exiting", "training stopped at step 2: code of model=exiting or a callback raised SystemExit: 0, "
                          "with no signal", True),
    ],
    ids=["load", "calibrate", "model"],
)  # fmt: skip
def test_user_code_that_exits_ends_the_run_with_status_1_and_one_line(
    tmp_path: Path, tiny_mnist: Path, choice: str, line: str, left: bool
) -> None:
    """Its exit status is not the run's: sys.exit(0) in a calibration exited 0 with no line, sys.exit(3) in a load 3."""
    from tests.conftest import FAST, record, run_cli

    out = tmp_path / "run"
    cli = run_cli(USER, choice, f"data.data_dir={tiny_mnist}", *FAST, f"hydra.run.dir={out}")
    assert cli.returncode == 1 and "Traceback" not in cli.stderr, cli.stderr
    assert cli.stderr.strip().splitlines()[-1].endswith(f"- {line}")
    assert record(out)["status"] == "failed" if left else not out.exists()  # a run that trained keeps its record
