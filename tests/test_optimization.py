"""What a run builds and what happens in it: the models' layers, the optimizer's settings, the lr schedule, the
data split and loaders, and evaluation as a per-sample mean."""

from pathlib import Path

import pytest
import torch
from torch import nn

from initlab.errors import ConfigError
from initlab.models import CNN, MLP
from tests.conftest import build, mnist_data, run, scalars


def optimizer_of(cfg) -> torch.optim.Optimizer:
    _, module, trainer = build(cfg)
    module.trainer = trainer
    return module.configure_optimizers()


@pytest.mark.parametrize(
    ("choice", "cls", "settings"),
    [
        ("sgd", torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.0}),
        ("adam", torch.optim.Adam, {"lr": 0.001, "weight_decay": 0.0}),
        ("adamw", torch.optim.AdamW, {"lr": 0.001, "weight_decay": 0.01}),
    ],
)
def test_the_optimizer_gets_its_settings(make_cfg, choice: str, cls: type, settings: dict) -> None:
    built = optimizer_of(make_cfg(f"optimizer={choice}"))["optimizer"]
    assert type(built) is cls
    group = built.param_groups[0]
    assert {k: group[k] for k in settings} == settings
    assert sum(p.numel() for p in group["params"]) == 784 * 100 + 100 + 100 * 10 + 10  # every weight and bias


def test_classic_lr_decays_by_0_96_each_epoch(make_cfg, tmp_path: Path) -> None:
    run(make_cfg("trainer.max_epochs=3", "trainer.log_every_n_steps=1"))
    lr = dict(scalars(tmp_path)["lr"])  # LearningRateMonitor: at each epoch's start (5 steps an epoch)
    assert sorted(lr) == [0, 5, 10]
    assert lr[0] == pytest.approx(0.1) and lr[5] == pytest.approx(0.096) and lr[10] == pytest.approx(0.1 * 0.96**2)


def test_cosine_and_constant_schedules(make_cfg, tmp_path: Path) -> None:
    run(make_cfg("scheduler=cosine", "trainer.max_epochs=2", "trainer.log_every_n_steps=1", out=tmp_path / "cos"))
    lr = dict(scalars(tmp_path / "cos")["lr"])
    assert lr[0] == pytest.approx(0.1) and lr[5] == pytest.approx(0.05)  # half way down a 2-epoch cosine
    run(make_cfg("scheduler=none", "trainer.max_epochs=2", "trainer.log_every_n_steps=1", out=tmp_path / "none"))
    assert all(v == pytest.approx(0.1) for v in dict(scalars(tmp_path / "none")["lr"]).values())


def test_a_step_interval_and_reduce_on_plateau_work(make_cfg, tmp_path: Path) -> None:
    step = ["scheduler.interval=step", "trainer.log_every_n_steps=1"]
    run(make_cfg(*step, "scheduler.scheduler.gamma=0.5", out=tmp_path / "step"))
    lr = dict(scalars(tmp_path / "step")["lr"])
    assert lr[1] == pytest.approx(0.05) and lr[3] == pytest.approx(0.1 * 0.5**3)
    plateau = ["~scheduler.scheduler", "+scheduler.scheduler._target_=torch.optim.lr_scheduler.ReduceLROnPlateau",
               "+scheduler.scheduler.factor=0.5", "+scheduler.scheduler.patience=0", "+scheduler.scheduler.mode=max",
               "+scheduler.scheduler.threshold=10.0", "+scheduler.monitor=val/acc", "trainer.max_epochs=4"]  # fmt: skip
    record = run(make_cfg(*plateau, out=tmp_path / "plateau"))
    assert record["status"] == "ok"
    lr = dict(scalars(tmp_path / "plateau")["lr"])  # threshold 10: no val/acc "improves" on the first
    assert [lr[s] for s in (0, 5, 10, 15)] == pytest.approx([0.1, 0.1, 0.05, 0.025])  # the first epoch sets the best


@pytest.mark.slow
def test_a_plateau_scheduler_before_the_first_validation_skips_its_step(make_cfg, tmp_path: Path) -> None:
    plateau = ["~scheduler.scheduler", "+scheduler.scheduler._target_=torch.optim.lr_scheduler.ReduceLROnPlateau",
               "+scheduler.scheduler.factor=0.5", "+scheduler.scheduler.patience=0", "+scheduler.scheduler.mode=max",
               "+scheduler.scheduler.threshold=10.0", "+scheduler.monitor=val/acc", "trainer.max_epochs=4"]  # fmt: skip
    late = ["trainer.val_check_interval=7"]  # the first validation after step 7: epoch 1 (steps 1-5) ends without one
    record = run(make_cfg(*plateau, *late, out=tmp_path / "late"))  # Lightning's strict default stopped the run
    lr = dict(scalars(tmp_path / "late")["lr"])  # epoch 1: skipped (val/acc missing); epochs 2, 3 set and keep it
    assert record["status"] == "ok" and [lr[s] for s in (0, 5, 10, 15)] == pytest.approx([0.1, 0.1, 0.1, 0.05])
    with pytest.raises(
        ConfigError,
        match=r"^trainer, callbacks or scheduler: MisconfigurationException: "
        "ReduceLROnPlateau conditioned on metric val/acc which is not available",
    ):
        run(make_cfg(*plateau, *late, "+scheduler.strict=true", out=tmp_path / "strict"))  # as asked: one line


@pytest.mark.slow
def test_what_a_checkpoint_or_scheduler_may_monitor_is_what_training_logs(make_cfg, tmp_path: Path) -> None:
    from initlab.run.checks import FIT_METRICS

    run(make_cfg("trainer.log_every_n_steps=1"))
    assert set(FIT_METRICS) <= set(scalars(tmp_path))


def test_the_split_depends_on_the_seed_and_nothing_leaks(tiny_mnist: Path) -> None:
    splits = {}
    for seed in (0, 0, 1):
        dm = mnist_data(tiny_mnist, val_size=100, seed=seed)
        dm.setup()
        splits.setdefault(seed, []).append(dm.splits)
    a, b, c = splits[0][0], splits[0][1], splits[1][0]
    assert torch.equal(a["val"][0], b["val"][0]) and not torch.equal(a["val"][0], c["val"][0])
    train_rows = {tuple(r.flatten().tolist()) for r in a["train"][0]}
    assert not any(tuple(r.flatten().tolist()) in train_rows for r in a["val"][0])  # validation is held out
    assert len(a["test"][1]) == 200 and torch.equal(a["test"][0], c["test"][0])  # the test set is fixed


@pytest.mark.parametrize(("act", "cls"), [("sigmoid", nn.Sigmoid), ("tanh", nn.Tanh), ("relu", nn.ReLU),
                                          ("leaky_relu", nn.LeakyReLU), ("elu", nn.ELU), ("selu", nn.SELU),
                                          ("gelu", nn.GELU), ("silu", nn.SiLU)])  # fmt: skip
def test_each_activation_builds_its_module_and_computes_its_function(make_cfg, act: str, cls: type) -> None:
    net = build(make_cfg(f"act={act}", "model.hidden_dims=[7,5]"))[1].net
    acts = [m for m in net if not isinstance(m, nn.Linear)]
    assert len(acts) == 2 and all(type(m) is cls for m in acts) and acts[0] is not acts[1]
    z = torch.linspace(-3, 3, 13)
    expected = {"sigmoid": torch.sigmoid(z), "tanh": torch.tanh(z), "relu": z.clamp(min=0),
                "leaky_relu": torch.where(z > 0, z, 0.01 * z), "elu": torch.where(z > 0, z, torch.expm1(z)),
                "selu": 1.0507009873554805 * torch.where(z > 0, z, 1.6732632423543772 * torch.expm1(z)),
                "gelu": z * 0.5 * (1 + torch.erf(z / 2**0.5)), "silu": z * torch.sigmoid(z)}[act]  # fmt: skip
    assert torch.allclose(acts[0](z), expected, atol=1e-6)


def test_each_loader_serves_its_own_split(tiny_mnist: Path) -> None:
    dm = mnist_data(tiny_mnist, val_size=100, eval_batch_size=1000, seed=0)
    dm.setup()
    for split, loader in (("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
        x, y = next(iter(loader))
        assert torch.equal(x, dm.splits[split][0]) and torch.equal(y, dm.splits[split][1])  # all of it, in order
    train = torch.cat([y for _, y in dm.train_dataloader()])
    assert len(train) == 500 and sorted(train.tolist()) == sorted(dm.splits["train"][1].tolist())


def test_val_and_test_metrics_are_per_sample_means_over_uneven_batches(make_cfg, tmp_path: Path) -> None:
    import torch.nn.functional as F

    cfg = make_cfg("data.eval_batch_size=30")  # 100 val images: batches of 30, 30, 30, 10
    record = run(cfg)
    dm, module, _ = build(cfg)
    module.load_state_dict(torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"])
    dm.setup()
    with torch.no_grad():
        for split in ("val", "test"):
            x, y = dm.splits[split]
            logits = module(x)
            assert record[f"{split}/loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
            assert record[f"{split}/acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item(), abs=1e-6)


def test_the_mlp_is_linear_act_pairs_ending_in_logits(make_cfg) -> None:
    net = build(make_cfg("model.hidden_dims=[30,20]", "act=tanh"))[1].net
    assert [(n, type(m).__name__) for n, m in net.named_children()] == [
        ("fc1", "Linear"), ("act1", "Tanh"), ("fc2", "Linear"), ("act2", "Tanh"), ("out", "Linear")]  # fmt: skip
    assert (net.fc1.in_features, net.fc1.out_features, net.fc2.out_features, net.out.out_features) == (784, 30, 20, 10)
    deep = MLP(nn.ReLU, depth=3, width=7)
    assert [m.out_features for m in deep if isinstance(m, nn.Linear)] == [7, 7, 7, 10]


def test_every_hidden_layer_of_the_cnn_feeds_an_activation(make_cfg) -> None:
    """conv -> act -> pool twice, then every hidden Linear -> act; only the logits have none."""
    net = build(make_cfg("model=cnn", "act=elu"))[1].net
    names = [(n, type(m).__name__) for n, m in net.named_children()]
    assert names == [("conv1", "Conv2d"), ("act1", "ELU"), ("pool1", "MaxPool2d"), ("conv2", "Conv2d"),
                     ("act2", "ELU"), ("pool2", "MaxPool2d"), ("flatten", "Flatten"), ("fc1", "Linear"),
                     ("act3", "ELU"), ("fc2", "Linear"), ("act4", "ELU"), ("out", "Linear")]  # fmt: skip
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: seen.append(n)) for n, m in net.named_children()]
    net(torch.zeros(2, 1, 28, 28))
    for h in hooks:
        h.remove()
    assert seen == [n for n, _ in names]  # the activations sit in the forward path, in this order
    assert CNN(nn.ReLU, image_shape=(3, 32, 32)).fc1.in_features == 16 * 6 * 6  # 32 -> 32 -> 16 -> 12 -> 6


def test_logistic_regression_is_a_model_too(make_cfg, tmp_path: Path) -> None:
    net = build(make_cfg("model.hidden_dims=[]", out=tmp_path / "built"))[1].net
    cfg = make_cfg("model.hidden_dims=[]", "trainer.max_epochs=4")
    assert [type(m).__name__ for m in net] == ["Linear"] and net[0].in_features == 784
    record = run(cfg)
    assert record["status"] == "ok" and 0.3 < record["test/acc"] < 0.95  # learns; the tiny data is hard
