"""The CUDA path (`trainer=gpu`); skipped without a GPU (as in CI). On a GPU machine: `pytest tests/test_gpu.py`."""

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from tests.conftest import FAST, build, run, run_cli

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class Devices(pl.Callback):
    """Where the weights and each batch are while training."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch, batch_idx: int) -> None:
        self.seen |= {str(batch[0].device), str(batch[1].device), str(next(module.parameters()).device)}


def test_data_live_on_the_gpu_and_batches_are_sliced_there(make_cfg) -> None:
    dm, module, trainer = build(make_cfg("trainer=gpu"))
    devices = Devices()
    trainer.callbacks.append(devices)
    trainer.fit(module, datamodule=dm)
    assert devices.seen == {"cuda:0"}
    for split in ("train", "val"):
        assert all(t.device.type == "cuda" for t in dm.splits[split])  # moved once, when the loader was made
    x, y = next(iter(dm.train_dataloader()))  # [B, 784], [B]: sliced on the GPU, nothing to copy per step
    assert x.device.type == y.device.type == "cuda"


def test_gpu_runs_repeat_exactly_and_checkpoints_evaluate_on_cpu(make_cfg, tmp_path: Path) -> None:
    a, b = (run(make_cfg("trainer=gpu", "init=xavier", "act=tanh", out=tmp_path / d)) for d in "ab")
    assert a["status"] == "ok" and a["test/acc"] > 0.5
    assert (a["test/acc"], a["val_history"]) == (b["test/acc"], b["val_history"])  # deterministic=true on CUDA too
    ckpt = tmp_path / "a" / "checkpoints" / "last.ckpt"
    on_cpu = run(make_cfg("trainer=cpu", "train=false", f"ckpt_path={ckpt}", out=tmp_path / "cpu"))
    assert abs(on_cpu["test/acc"] - a["test/acc"]) <= 0.01  # same weights; float sums differ by device


def test_joblib_sweep_shares_one_gpu(tiny_mnist: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", "init=lecun,kaiming", "act=tanh,relu", "hydra/launcher=joblib", "trainer=gpu",
                   f"data.data_dir={tiny_mnist}", *FAST, f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [json.loads(p.read_text())["status"] for p in sweep.glob("*/metrics.json")] == ["ok"] * 4
