"""The sweep summary on a fake sweep dir: csv, markdown, heatmap, the rebuild command and the callback."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from initlab.summary import SweepSummary, collect, swept_keys, write_summary


def fake_job(sweep: Path, overrides: list[str], metrics: dict | None) -> None:
    job = sweep / ",".join(overrides)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """2 inits x 2 acts x 2 seeds; lecun/relu seed 1 failed without metrics, normal/relu diverged."""
    for init in ("normal", "lecun"):
        for act in ("tanh", "relu"):
            for seed in (0, 1):
                ov = [f"init={init}", f"act={act}", f"seed={seed}", "data.data_dir=x"]
                acc = {"normal": 0.92, "lecun": 0.97}[init] + 0.01 * seed + (0.002 if act == "relu" else 0)
                m = {"init": init, "act": act, "seed": seed, "optimizer": "sgd", "scheduler": "step",
                     "status": "ok", "test/acc": acc, "val/acc": acc, "val/acc_best": acc, "train/loss": 0.1,
                     "wall_time_s": 4.0, "val_history": [[500, 0.85], [1000, 0.91], [1500, 0.95]]}  # fmt: skip
                if (init, act, seed) == ("lecun", "relu", 1):
                    m = None
                elif (init, act) == ("normal", "relu"):
                    m |= {"status": "diverged", "test/acc": 0.098, "train/loss": None}
                fake_job(tmp_path, ov, m)
    task = ["init=normal,lecun", "act=tanh,relu", "seed=0,1"]
    OmegaConf.save(OmegaConf.create({"hydra": {"overrides": {"task": task}}}), tmp_path / "multirun.yaml")
    return tmp_path


def test_swept_keys_drop_constant_and_implied(sweep: Path) -> None:
    jobs = collect(sweep)
    assert swept_keys(jobs) == ["init", "act", "seed"]  # data.data_dir, optimizer: constant
    for j in jobs:
        j["choices"]["combo"] = f"{j['choices']['init']}_{j['choices']['act']}"
    assert swept_keys(jobs) == ["init", "act", "seed"]  # combo adds nothing init and act don't say


def test_csv_has_one_row_per_job_with_status(sweep: Path) -> None:
    write_summary(sweep)
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 8
    assert list(rows[0])[:5] == ["job", "init", "act", "seed", "val/acc"]
    by = {(r["init"], r["act"], r["seed"]): r for r in rows}
    assert by["lecun", "relu", "1"]["status"] == "failed"
    assert by["normal", "relu", "0"]["status"] == "diverged"
    assert by["lecun", "tanh", "0"]["steps_to_90"] == "1000"
    assert float(by["lecun", "tanh", "1"]["test/acc"]) == pytest.approx(0.98)


def test_markdown_table_mean_std_best_and_failures(sweep: Path) -> None:
    write_summary(sweep)
    md = (sweep / "summary.md").read_text()
    assert "| init \\ act | tanh | relu |" in md  # sweep order, not alphabetical
    lines = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    assert "92.50 ± 0.71" in lines["normal"] and "9.80 ± 0.00 (diverged)" in lines["normal"]
    assert "**97.50 ± 0.71**" in lines["lecun"]  # the best cell, in bold
    assert "| 97.20 (failed) |" in lines["lecun"]  # relu: seed 0 ran, seed 1 failed
    assert "failed: `init=lecun,act=relu,seed=1,data.data_dir=x`: no metrics.json" in md


def test_png_heatmap_is_written(sweep: Path) -> None:
    write_summary(sweep)
    png = (sweep / "summary.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_callback_writes_summary_and_fails_the_sweep(sweep: Path) -> None:
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    with pytest.raises(SystemExit) as exit_info:
        SweepSummary().on_multirun_end(cfg)
    assert exit_info.value.code == 1 and (sweep / "summary.md").is_file()


@pytest.mark.slow  # subprocesses
def test_rebuild_command(sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    proc = subprocess.run([sys.executable, "-m", "initlab.summary", str(sweep)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "| init \\ act |" in proc.stdout and (sweep / "summary.csv").is_file()
    empty = tmp_path_factory.mktemp("empty")
    proc = subprocess.run([sys.executable, "-m", "initlab.summary", str(empty)], capture_output=True, text=True)
    assert proc.returncode == 1 and "no job dirs" in proc.stderr


def test_any_swept_keys(tmp_path: Path) -> None:
    for lr in ("0.1", "0.01"):
        for opt in ("sgd", "adam"):
            m = {"init": "kaiming", "act": "relu", "seed": 0, "optimizer": opt, "status": "ok", "test/acc": 0.9}
            fake_job(tmp_path, [f"optimizer={opt}", f"optimizer.lr={lr}"], m)
    jobs = write_summary(tmp_path)
    assert swept_keys(jobs) == ["optimizer", "optimizer.lr"]
    assert "| optimizer \\ optimizer.lr |" in (tmp_path / "summary.md").read_text()


def test_heatmap_rows_are_inits_columns_are_activations_and_colours_are_the_cells(sweep: Path) -> None:
    from initlab.heatmap import figure
    from initlab.summary import _grid, collect

    grid = _grid(collect(sweep))
    ax = figure(grid, "t").axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["normal", "lecun"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["tanh", "relu"]
    assert (ax.get_ylabel(), ax.get_xlabel()) == ("init", "act")
    shown = ax.images[0].get_array()  # [rows, cols]
    assert shown[0, 0] == pytest.approx(92.5) and shown[1, 0] == pytest.approx(97.5)  # normal/tanh, lecun/tanh
    assert shown[0, 1] == pytest.approx(9.8)  # normal/relu: diverged, shown as measured
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert texts[1, 1] == "97.20 (failed)" and texts[0, 0].startswith("92.50")


def test_a_one_dimensional_sweep_says_what_was_held_fixed(tmp_path: Path) -> None:
    for act, acc in (("tanh", 0.92), ("relu", 0.97)):
        m = {"init": "kaiming", "act": act, "seed": 0, "optimizer": "sgd", "scheduler": "step", "status": "ok",
             "test/acc": acc}  # fmt: skip
        fake_job(tmp_path, [f"act={act}"], m)
    write_summary(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "Held fixed: init=kaiming, optimizer=sgd, scheduler=step, seed=0." in md
    assert "| act | test acc |" in md and "| tanh | 92.00 |" in md


def test_edge_of_chaos_heatmap_draws_the_trainable_depth(tmp_path: Path) -> None:
    from initlab.heatmap import depth_curve, figure
    from initlab.summary import _grid, collect

    for depth in (10, 30, 60, 100):
        for s in ("1.0", "1.76", "4.0"):
            m = {"init": "gaussian", "act": "tanh", "seed": 0, "status": "ok", "test/acc": 0.5}
            fake_job(tmp_path, [f"model.depth={depth}", f"init.sigma_w2={s}"], m)
    task = ["model.depth=10,30,60,100", "init.sigma_w2=1.0,1.76,4.0"]
    theory = {"act": "tanh", "sigma_b2": 0.05}
    hydra = {"overrides": {"task": task}, "callbacks": {"summary": {"theory": theory}}}
    OmegaConf.save(OmegaConf.create({"hydra": hydra}), tmp_path / "multirun.yaml")
    grid = _grid(collect(tmp_path))
    xs, ys = depth_curve(grid, theory)
    assert xs[0] == 0 and xs[-1] == 2  # from the first column to the last
    assert ys[0] == pytest.approx((6 * 3.63 - 10) / 20, abs=0.05)  # 6 xi_c = 21.8 at sigma_w2 = 1: rows 10..30
    assert ys[-1] == pytest.approx(1 + (6 * 6.98 - 30) / 30, abs=0.05)  # 41.9 at 4: rows 30..60
    middle = ys[len(ys) * 76 // 300]  # sigma_w2 near 1.76: xi_c diverges, off the top of the chart
    assert middle != middle  # NaN: not drawn
    ax = figure(grid, "t", theory).axes[0]
    assert [line.get_label() for line in ax.lines] == ["6 ξ_c (mean-field theory)"]
    write_summary(tmp_path)  # the rebuild reads the theory back from multirun.yaml
    assert (tmp_path / "summary.png").stat().st_size > 5000
