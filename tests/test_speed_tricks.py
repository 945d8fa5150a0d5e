"""The speed tricks change nothing a user gets: splits converted once a process, the collector left on; and the
console stays readable: no progress bar where it would interleave or fill a log file."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import build, mnist_data


def test_a_bar_only_on_a_terminal_and_never_for_parallel_jobs(make_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = ["hydra.mode=MULTIRUN", "hydra/launcher=joblib"]
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    single = build(make_cfg(fast=False))[2]
    parallel = build(make_cfg(*sweep, "hydra.launcher.n_jobs=2", fast=False))[2]
    one_at_a_time = build(make_cfg(*sweep, "hydra.launcher.n_jobs=1", fast=False))[2]
    assert single.progress_bar_callback is not None  # a single run in a terminal keeps its bar
    assert one_at_a_time.progress_bar_callback is not None
    assert parallel.progress_bar_callback is None  # bars of jobs sharing a terminal would interleave
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert build(make_cfg(fast=False))[2].progress_bar_callback is None  # a log file, a SLURM job: no \r bars


def test_splits_are_converted_once_per_process(tiny_mnist: Path) -> None:
    a, b, other = (mnist_data(tiny_mnist, val_size=100, seed=s) for s in (1, 1, 2))
    for dm in (a, b, other):
        dm.setup()
    assert a.splits["train"][0] is b.splits["train"][0]  # the second job of a sweep worker reuses the tensors
    assert other.splits["train"][0] is not a.splits["train"][0]  # another seed, another split


@pytest.mark.slow  # a subprocess
def test_import_frameworks_freezes_once_and_leaves_the_collector_on() -> None:
    code = (
        "import gc; from initlab.run.build import import_frameworks; import_frameworks(); n = gc.get_freeze_count(); "
        "junk = [[] for _ in range(99)]; import_frameworks(); print(gc.isenabled(), n > 0, gc.get_freeze_count() == n)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.split() == ["True", "True", "True"]  # a second job freezes nothing: its garbage stays collectable
