"""Shared fixtures: a tiny MNIST in torchvision's IDX layout, and configs composed as the CLI would."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from initlab.cli import CONF_DIR, job_from_hydra
from initlab.job import run as run_job

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data"  # the real MNIST, where this machine has it


def write_idx(path: Path, array: np.ndarray) -> None:
    magic = {3: 2051, 1: 2049}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_tiny_mnist(root: Path, n_train: int = 600, n_test: int = 200, seed: int = 0, dataset: str = "MNIST") -> Path:
    """Fake digits that are learnable but never easy: class k brightens a 7x7 block at position k a little,
    over strong noise, and a quarter of the labels are random. Short runs stay well below 100 % (the best
    possible is ~80 %), so accuracy comparisons between settings mean something."""
    rng = np.random.default_rng(seed)
    raw = root / dataset / "raw"  # FashionMNIST and KMNIST: the same layout under their own folder
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 150, (n, 28, 28))
        for i, k in enumerate(y):
            r, c = divmod(int(k), 4)
            x[i, 7 * r : 7 * r + 7, 7 * c : 7 * c + 7] += 90  # a faint block over the noise
        noisy = rng.random(n) < 0.25
        y[noisy] = rng.integers(0, 10, noisy.sum())
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.clip(x, 0, 255))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
    return root


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mnist(tmp_path_factory.mktemp("data"))


FAST = [  # shrink the classic run to seconds on the tiny data
    "data.val_size=100",
    "data.eval_batch_size=100",
    "trainer.max_epochs=2",
    "trainer.val_check_interval=3",
    "trainer.log_every_n_steps=2",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "num_threads=1",
]


@pytest.fixture
def make_cfg(tiny_mnist: Path, tmp_path: Path) -> Callable[..., DictConfig]:
    """compose(overrides) -> a config as `python train.py <overrides>` would see it, run dir `out` or tmp_path."""

    def _make(*overrides: str, fast: bool = True, out: Path | None = None) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            cfg = compose(
                "train",
                overrides=[f"data.data_dir={tiny_mnist}", *(FAST if fast else []), *overrides],
                return_hydra_config=True,
            )
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(out or tmp_path)
            cfg.hydra.job.num = 0
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield _make
    GlobalHydra.instance().clear()


def run(cfg: DictConfig) -> dict:
    """One job from a composed config, as the CLI would run it (without its error policy)."""
    return run_job(cfg, job_from_hydra(cfg.hydra))


def build(cfg: DictConfig) -> tuple:
    """(datamodule, module, trainer) as a job would build them from `cfg`."""
    from initlab.fit import build as build_job
    from initlab.runstate import RunState

    return build_job(cfg, RunState({}, {}, []), job_from_hydra(cfg.hydra).parallel_jobs > 1)


def run_cli(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python train.py <args>` as a user would; returns the finished process (output captured)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
