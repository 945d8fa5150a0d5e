"""Shared fixtures and helpers: tiny data sets written in the real formats, configs composed as the CLI would,
runs in-process and through the command line, and the callbacks that crash or signal a run on cue."""

import copy
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from initlab.run import signals
from initlab.run.cli import CONF_DIR, job_from_hydra
from initlab.run.job import run as run_job
from initlab.run.rundir import ClaimRunDir

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data"  # the real MNIST, where this machine has it
USER_CONF = Path(__file__).parent / "user_conf"  # a user's own config dir (hydra.searchpath)
TIMING = ("wall_time_s", "first_step_unix", "startup_s", "resumed")  # what may differ between equal runs


# --- data in the real formats -------------------------------------------------------------------------------------


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


def write_cifar_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    """One CIFAR-10 python batch file as the official ones are: a protocol-2 pickle of a dict with byte keys."""
    batch = {b"batch_label": b"synthetic", b"labels": list(labels), b"data": images.reshape(len(images), -1),
             b"filenames": [f"{i}.png".encode() for i in range(len(images))]}  # fmt: skip
    path.write_bytes(pickle.dumps(batch, protocol=2))


def make_tiny_cifar10(root: Path, n_per_batch: int = 60, n_test: int = 100, seed: int = 0) -> Path:
    """Fake CIFAR-10 in torchvision's layout: class k tints a quadrant of the image a little, over noise, and a
    quarter of the labels are random, as the tiny MNIST."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in [*((f"data_batch_{i}", n_per_batch) for i in range(1, 6)), ("test_batch", n_test)]:
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 160, (n, 3, 32, 32))
        for i, k in enumerate(y):
            channel, (r, c) = int(k) % 3, divmod(int(k) % 4, 2)
            x[i, channel, 16 * r : 16 * r + 16, 16 * c : 16 * c + 16] += 80
        noisy = rng.random(n) < 0.25
        y[noisy] = rng.integers(0, 10, noisy.sum())
        write_cifar_batch(folder / name, np.clip(x, 0, 255).astype(np.uint8), [int(v) for v in y])
    return root


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mnist(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def tiny_cifar10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_cifar10(tmp_path_factory.mktemp("cifar"))


def mnist_data(data_dir: Path, **kwargs: object) -> pl.LightningDataModule:
    """The MNIST data module as conf/data/mnist.yaml builds it, on `data_dir`."""
    from initlab.data.datamodule import ImageData

    load = {"_target_": "initlab.data.mnist.load", "dataset": "MNIST"}
    return ImageData(load, [1, 28, 28], 10, data_dir=str(data_dir), **kwargs)


# --- configs and runs ---------------------------------------------------------------------------------------------

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


_COMPOSED: dict[tuple[str, ...], DictConfig] = {}  # Hydra's compose takes ~65 ms; a deep copy ~4 ms


@pytest.fixture
def make_cfg(tiny_mnist: Path, tmp_path: Path) -> Callable[..., DictConfig]:
    """compose(overrides) -> a config as `python train.py <overrides>` would see it, run dir `out` or tmp_path."""
    ClaimRunDir()  # registers the resolver that names run dirs, as Hydra does when it builds its callbacks

    def _make(*overrides: str, fast: bool = True, out: Path | None = None) -> DictConfig:
        items = (f"data.data_dir={tiny_mnist}", *(FAST if fast else []), *overrides)
        base = _COMPOSED.get(items)
        if base is None:
            GlobalHydra.instance().clear()
            with initialize_config_dir(CONF_DIR, version_base="1.3"):
                base = compose("train", overrides=list(items), return_hydra_config=True)
            if not any("searchpath" in o and str(USER_CONF) not in o for o in items):  # a test's own configs change
                _COMPOSED[items] = base
        cfg = copy.deepcopy(base)  # the same overrides compose the same config: Hydra's compose is the slow part
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


def build(cfg: DictConfig, loggers: bool = False) -> tuple:
    """(datamodule, module, trainer) as a job would build them from `cfg`; without its loggers unless asked (a
    logger's writer makes files, and a dir with a TensorBoard file holds a run)."""
    from initlab.run.build import build as build_job
    from initlab.run.resume import Plan

    if not loggers:
        cfg = cfg.copy()
        with open_dict(cfg):
            cfg.logger = {}
    job = job_from_hydra(cfg.hydra)
    parts = build_job(Plan(cfg, job.choices, job.overrides), job)
    return parts.dm, parts.module, parts.trainer


def run_cli(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python train.py <args>` as a user would; returns the finished process (output captured)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def start(*args: str, cwd: Path = ROOT) -> subprocess.Popen:
    """`python train.py <args>` in the background, in a session of its own (to signal it, or count its workers)."""
    cmd = [sys.executable, str(ROOT / "train.py"), *args]
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def same_record(resumed: dict, whole: dict, skip: tuple[str, ...] = ()) -> None:
    """Equal but for timings (and `skip`): what a resumed run must share with the uninterrupted one."""
    drop = (*TIMING, *skip)
    assert {k: v for k, v in resumed.items() if k not in drop} == {k: v for k, v in whole.items() if k not in drop}


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every TensorBoard scalar of a run dir as TensorBoard shows it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    return {t: sorted((e.step, e.value) for e in acc.Scalars(t)) for t in acc.Tags()["scalars"]}


_WHOLE: dict[tuple[str, ...], tuple[dict, Path]] = {}  # a session's uninterrupted runs, by their overrides


@pytest.fixture
def uninterrupted(make_cfg: Callable[..., DictConfig], tmp_path_factory: pytest.TempPathFactory) -> Callable:
    """uninterrupted(*overrides) -> (record, run dir) of the uninterrupted run, run once a session: what a resumed
    run must equal. Callbacks that crash or signal on cue change no number, so they are left out of the key."""

    def _whole(*overrides: str) -> tuple[dict, Path]:
        key = tuple(o for o in overrides if o not in (CRASH, SIGNAL_AT, SIGNAL_IN))
        if key not in _WHOLE:
            out = tmp_path_factory.mktemp("whole")
            _WHOLE[key] = (run(make_cfg(*key, out=out)), out)
        record, out = _WHOLE[key]
        return copy.deepcopy(record), out

    return _whole


def real_checkpoint(uninterrupted: Callable) -> Path:
    """A finished run's last.ckpt (the session's default run: read it, never change it in place)."""
    return uninterrupted()[1] / "checkpoints" / "last.ckpt"


def fake_job(sweep: Path, overrides: list[str], metrics: dict | list | None) -> Path:
    """A sweep job dir as Hydra and a run leave it: .hydra/overrides.yaml and (unless None) metrics.json."""
    job = sweep / ",".join(overrides)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    return job


def write_multirun(sweep: Path, task: list[str], **extra: object) -> None:
    """The sweep's multirun.yaml with its command-line overrides (and any other keys, e.g. summary)."""
    OmegaConf.save(OmegaConf.create({"hydra": {"overrides": {"task": task}}, **extra}), sweep / "multirun.yaml")


def read_wandb(path: Path) -> dict[str, dict]:
    """A W&B offline run file (run-*.wandb, LevelDB-log framing of protobuf Records) -> {config, summary, history}:
    history holds each logged key's last value, as W&B's run summary shows it once synced."""
    from wandb.proto import wandb_internal_pb2 as pb

    buf, pos, block, records, pending = path.read_bytes(), 7, 32768, [], b""  # 7: the ":W&B" header
    while pos + 7 <= len(buf):
        if block - pos % block < 7:  # a block's tail too short for a record header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", buf[pos : pos + 7])
        data, pos = buf[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        pending = data if kind in (1, 2) else pending + data  # full, first / middle, last
        if kind in (1, 4):
            records.append(pending)
    out: dict[str, dict] = {"config": {}, "summary": {}, "history": {}}
    for data in records:
        rec = pb.Record.FromString(data)
        kind = rec.WhichOneof("record_type")
        if kind == "config":
            out["config"] |= {u.key: json.loads(u.value_json) for u in rec.config.update}
        elif kind == "summary":
            out["summary"] |= {u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in rec.summary.update}
        elif kind == "history":  # a key with "/" is stored as its nested_key
            out["history"] |= {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item}
    return out


# --- callbacks that crash or signal a run on cue (configs name them: +callbacks.x._target_=tests.conftest.X) ------


class CrashAt(pl.Callback):
    """Kills training at step $CRASH_AT, as a node failure would: no checkpoint is written on the way out.

    The step comes from the environment, so the resumed run (whose config is the checkpoint's) runs on.
    """

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        step = int(os.environ.get("CRASH_AT", -1))
        if trainer.global_step == step:
            raise RuntimeError(f"killed at step {step}")


class SignalAt(pl.Callback):
    """Sends this process $SIGNAL_AT_SIGNAL during training step $SIGNAL_AT, as `kill` or SLURM would."""

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == int(os.environ.get("SIGNAL_AT", -1)):
            os.kill(os.getpid(), getattr(signal, os.environ["SIGNAL_AT_SIGNAL"]))


class SignalIn(pl.Callback):
    """Sends this process SIGTERM once, in the hook named by $SIGNAL_IN (a validation inside fit, or the test)."""

    def _maybe(self, trainer: pl.Trainer, hook: str) -> None:
        due = hook != "validation" or (trainer.state.fn == "fit" and trainer.global_step == 6)
        if os.environ.get("SIGNAL_IN") == hook and not signals.STATE.received and due:
            os.kill(os.getpid(), signal.SIGTERM)

    def on_validation_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        self._maybe(trainer, "validation")

    def on_test_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        self._maybe(trainer, "test")


CRASH = "+callbacks.crash._target_=tests.conftest.CrashAt"
SIGNAL_AT = "+callbacks.signal._target_=tests.conftest.SignalAt"
SIGNAL_IN = "+callbacks.signal._target_=tests.conftest.SignalIn"


@pytest.fixture
def signalled() -> Callable[[], None]:
    """Our signal handlers for the test's duration, as the CLI installs them; a clean slate after."""
    signals.install()
    yield
    for s in signals.HANDLED:
        signal.signal(s, signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL)
    signals.STATE.received = None  # a new process would start clean
