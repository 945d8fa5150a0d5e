"""`pip install .` (not editable) gives a working `initlab-train`: the configs ship inside the package."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import FAST, ROOT

pytestmark = pytest.mark.slow


def test_a_built_wheel_carries_every_config_and_trains_from_anywhere(tiny_mnist: Path, tmp_path: Path) -> None:
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(tmp_path / "whl")],
                   check=True, capture_output=True)  # fmt: skip
    wheel = next((tmp_path / "whl").glob("initlab-*.whl"))
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("initlab/conf/")}
    conf = ROOT / "src" / "initlab" / "conf"
    source = {f"initlab/conf/{p.relative_to(conf)}" for p in conf.rglob("*.yaml")}
    assert source and source <= shipped
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    script = str(target / "bin" / "initlab-train")
    cmd = [script, f"data.data_dir={tiny_mnist}", *FAST, "init=lecun", "hydra.run.dir=run"]
    proc = subprocess.run(cmd, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((elsewhere / "run" / "metrics.json").read_text())
    assert record["status"] == "ok" and record["init"] == "lecun"
    assert str(target) in (elsewhere / "run" / ".hydra" / "hydra.yaml").read_text()  # configs from the wheel
