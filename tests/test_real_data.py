"""Checks on the real MNIST (../shared/data here); skipped where it is absent."""

import pytest

from tests.conftest import REAL_DATA, run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (REAL_DATA / "MNIST" / "raw").is_dir(), reason=f"no real MNIST at {REAL_DATA}"),
]


def test_one_epoch_kaiming_relu_reaches_95_percent(make_cfg) -> None:
    cfg = make_cfg(
        f"data.data_dir={REAL_DATA}", "init=kaiming", "act=relu", "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false", "num_threads=1", fast=False,
    )  # fmt: skip
    metrics = run(cfg)
    assert metrics["steps"] == 550  # 55k training images / batch 100
    assert metrics["test/acc"] >= 0.95, metrics


def test_classic_defaults_normal_tanh_lands_clearly_below_kaiming_relu(make_cfg, tmp_path) -> None:
    acc = {}
    for init, act in (("normal", "tanh"), ("kaiming", "relu")):
        cfg = make_cfg(f"data.data_dir={REAL_DATA}", f"init={init}", f"act={act}", "trainer.enable_progress_bar=false",
                       "callbacks.diagnostics.every_n_steps=0", fast=False, out=tmp_path / init)  # fmt: skip
        acc[init] = run(cfg)["test/acc"]
    assert 0.91 <= acc["normal"] <= 0.94 and acc["kaiming"] >= 0.97, acc  # the classic table: ~92.7 vs ~97.4 %
