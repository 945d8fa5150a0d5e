"""The sweep summary on a fake sweep dir: csv, markdown, heatmap, the rebuild command and the callback; every job
the sweep meant to run is listed, and a malformed record is named and skipped, never a traceback."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from initlab.report.summary import SweepSummary, steps_to, write_summary
from initlab.report.sweep import collect
from initlab.report.table import grid, summarise, swept_keys
from tests.conftest import fake_job, write_multirun


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
    write_multirun(tmp_path, ["init=normal,lecun", "act=tanh,relu", "seed=0,1"])
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


def test_steps_to_90_is_the_first_validation_at_or_above_90_percent() -> None:
    assert steps_to([[500, 0.85], [1000, 0.9], [1500, 0.95]]) == 1000  # reaching 90.00 % counts
    assert steps_to([[500, 0.85], [1000, 0.8999999761581421]]) == 1000  # 90 % as a run writes it (float32)
    assert steps_to([[500, None], [1000, 0.93], [1500, 0.89]]) == 1000  # a missing value is skipped, not a stop
    assert steps_to([[500, 0.5], [1000, 0.899]]) is None and steps_to(None) is None  # never reached: empty


def test_markdown_table_mean_std_best_and_failures(sweep: Path) -> None:
    write_summary(sweep)
    md = (sweep / "summary.md").read_text()
    assert "| init \\ act | tanh | relu |" in md  # sweep order, not alphabetical
    lines = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    # 92 and 93 over 2 seeds: mean 92.5, 95 % CI half-width t(0.975, 1) * 0.707 / sqrt(2) = 12.706 * 0.5 = 6.35
    assert "92.50 ± 6.35" in lines["normal"] and "9.80 ± 0.00 (diverged)" in lines["normal"]
    assert "**97.50 ± 6.35**" in lines["lecun"]  # the column's best, in bold
    assert "| **97.20 (failed)** |" in lines["lecun"]  # relu's best: seed 0 ran, seed 1 failed
    assert "over 2 seeds" in md and "failed: `init=lecun,act=relu,seed=1,data.data_dir=x`: no metrics.json" in md


def test_png_heatmap_is_written(sweep: Path) -> None:
    write_summary(sweep)
    png = (sweep / "summary.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_callback_writes_summary_and_fails_the_sweep(sweep: Path) -> None:
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    with pytest.raises(SystemExit) as exit_info:
        SweepSummary().on_multirun_end(cfg)
    assert exit_info.value.code == 1 and (sweep / "summary.md").is_file()


def test_a_sweep_with_a_job_that_never_ran_fails_even_when_none_failed(tmp_path: Path) -> None:
    fake_job(tmp_path, ["init=lecun"], {"init": "lecun", "act": "relu", "seed": 0, "status": "ok", "test/acc": 0.9})
    write_multirun(tmp_path, ["init=lecun,kaiming"])
    with pytest.raises(SystemExit) as exit_info:
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert exit_info.value.code == 1
    fake_job(tmp_path, ["init=kaiming"], {"init": "kaiming", "act": "relu", "seed": 0, "status": "ok",
                                          "test/acc": 0.9})  # fmt: skip
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))  # all ran: 0


def test_a_job_that_failed_in_the_sweeps_last_run_is_failed_whatever_its_dir_holds(tmp_path: Path) -> None:
    from initlab.run.signals import clear_sweep_marks, mark_failed

    ok = {"act": "relu", "seed": 0, "status": "ok", "test/acc": 0.9}
    fake_job(tmp_path, ["init=lecun"], ok | {"init": "lecun"})
    job = fake_job(tmp_path, ["init=kaiming"], ok | {"init": "kaiming"})  # an older run's record, still "ok"
    write_multirun(tmp_path, ["init=lecun,kaiming"])
    mark_failed(tmp_path, job, "hydra.run.dir='...' holds train.log, a symbolic link the run did not make")
    with pytest.raises(SystemExit) as exit_info:
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert exit_info.value.code == 1
    by = {r["init"]: r for r in csv.DictReader((tmp_path / "summary.csv").open())}
    assert by["kaiming"]["status"] == "failed" and by["lecun"]["status"] == "ok"
    assert "a symbolic link the run did not make" in (tmp_path / "summary.md").read_text()
    clear_sweep_marks(tmp_path)  # the sweep run again starts with no failures
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))


def test_a_sweep_whose_summary_cannot_be_written_fails(tmp_path: Path) -> None:
    for init in ("lecun", "kaiming"):  # every job ran to its end: only the summary fails
        fake_job(tmp_path, [f"init={init}"], {"init": init, "act": "relu", "seed": 0, "status": "ok", "test/acc": 0.9})
    write_multirun(tmp_path, ["init=lecun,kaiming"])
    (tmp_path / "summary.png").mkdir()  # its place is taken: the write fails, as on a full disk
    with pytest.raises(SystemExit) as exit_info:
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert exit_info.value.code == 1


@pytest.mark.slow  # subprocesses
def test_rebuild_command(sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    proc = subprocess.run([sys.executable, "-m", "initlab.report", str(sweep)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "| init \\ act |" in proc.stdout and (sweep / "summary.csv").is_file() and (sweep / "report.html").is_file()
    empty = tmp_path_factory.mktemp("empty")
    proc = subprocess.run([sys.executable, "-m", "initlab.report", str(empty)], capture_output=True, text=True)
    assert proc.returncode == 1 and "no job dirs" in proc.stderr


def test_any_swept_keys(tmp_path: Path) -> None:
    for lr in ("0.1", "0.01"):
        for opt in ("sgd", "adam"):
            m = {"init": "kaiming", "act": "relu", "seed": 0, "optimizer": opt, "status": "ok", "test/acc": 0.9}
            fake_job(tmp_path, [f"optimizer={opt}", f"optimizer.lr={lr}"], m)
    jobs = write_summary(tmp_path)
    assert swept_keys(jobs) == ["optimizer", "optimizer.lr"]
    assert "| optimizer \\ optimizer.lr |" in (tmp_path / "summary.md").read_text()


def test_heatmap_rows_are_inits_columns_are_activations_and_colours_the_gap_to_the_best(sweep: Path) -> None:
    from initlab.report.heatmap import figure

    jobs = collect(sweep)
    ax = figure(grid(jobs, *summarise(jobs, None, {})), "t").axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["normal", "lecun"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["tanh", "relu"]
    assert (ax.get_ylabel(), ax.get_xlabel()) == ("init", "act")
    shown = ax.images[0].get_array()  # [rows, cols]: points below the column's best, clipped to [0.05, 30]
    assert shown[0, 0] == pytest.approx(5.0) and shown[1, 0] == pytest.approx(0.05)  # normal/tanh 5 points below
    assert shown[0, 1] == pytest.approx(30.0)  # normal/relu: diverged at 9.8 %, 87 points below: the darkest
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


@pytest.mark.slow  # a 2-D theory grid
def test_edge_of_chaos_heatmap_draws_the_trainable_depth(tmp_path: Path) -> None:
    from initlab.report.heatmap import depth_curve, figure

    for depth in (10, 30, 60, 100):
        for s in ("1.0", "1.76", "4.0"):
            m = {"init": "gaussian", "act": "tanh", "seed": 0, "status": "ok", "test/acc": 0.5}
            fake_job(tmp_path, [f"model.depth={depth}", f"init.sigma_w2={s}"], m)
    task = ["model.depth=10,30,60,100", "init.sigma_w2=1.0,1.76,4.0"]
    theory = {"act": "tanh", "sigma_b2": 0.05}
    hydra = {"overrides": {"task": task}, "callbacks": {"summary": {"theory": theory}}}
    OmegaConf.save(OmegaConf.create({"hydra": hydra}), tmp_path / "multirun.yaml")
    jobs = collect(tmp_path)
    table = grid(jobs, *summarise(jobs, None, {}))
    xs, ys = depth_curve(table, theory)
    assert xs[0] == 0 and xs[-1] == 2  # from the first column to the last
    assert ys[0] == pytest.approx((6 * 3.63 - 10) / 20, abs=0.05)  # 6 xi_c = 21.8 at sigma_w2 = 1: rows 10..30
    assert ys[-1] == pytest.approx(1 + (6 * 6.98 - 30) / 30, abs=0.05)  # 41.9 at 4: rows 30..60
    middle = ys[len(ys) * 76 // 300]  # sigma_w2 near 1.76: xi_c diverges, off the top of the chart
    assert middle != middle  # NaN: not drawn
    ax = figure(table, "t", theory).axes[0]
    assert [line.get_label() for line in ax.lines] == ["6 ξ_c (mean-field theory)"]
    write_summary(tmp_path)  # the rebuild reads the theory back from multirun.yaml
    assert (tmp_path / "summary.png").stat().st_size > 5000


def test_every_planned_job_that_never_ran_is_listed_even_beside_one_that_did(tmp_path: Path) -> None:
    """A job that ran stands for one planned job only: (lecun, relu) ran; (lecun, tanh) and (normal, relu), which
    share a value with it, did not, and neither did (normal, tanh)."""
    m = {"init": "lecun", "act": "relu", "seed": 0, "status": "ok", "test/acc": 0.9, "val/acc": 0.9}
    fake_job(tmp_path, ["init=lecun", "act=relu"], m)
    write_multirun(tmp_path, ["init=normal,lecun", "act=tanh,relu"])
    jobs = collect(tmp_path)
    planned = {(j["choices"]["init"], j["choices"]["act"]): j["status"] for j in jobs}
    assert planned == {("lecun", "relu"): "ok", ("lecun", "tanh"): "not run", ("normal", "relu"): "not run",
                       ("normal", "tanh"): "not run"}  # fmt: skip
    twice = tmp_path / "twice"
    fake_job(twice, ["init=kaiming"], {"init": "kaiming", "status": "ok", "test/acc": 0.9})
    write_multirun(twice, ["init=kaiming,kaiming"])  # an old sweep with a value twice: one ran, one did not
    assert sorted(j["status"] for j in collect(twice)) == ["not run", "ok"]


@pytest.mark.parametrize("bad", [[1, 2], pytest.param("text", marks=pytest.mark.slow),
                                 {"status": "ok", "test/acc": "high"},
                                 {"status": "ok", "test/acc": 0.9, "val_history": [[1, "x"]]},
                                 pytest.param({"status": "ok", "test/acc": 0.9, "val_history": "none"},
                                              marks=pytest.mark.slow),
                                 {"status": "ok", "test/acc": 0.9, "val/acc": 97.0}])  # fmt: skip
def test_a_malformed_record_is_named_and_the_summary_goes_on(tmp_path: Path, caplog, bad: object) -> None:
    good = {"init": "lecun", "act": "relu", "seed": 0, "status": "ok", "test/acc": 0.9, "val/acc": 0.9}
    fake_job(tmp_path, ["init=lecun"], good)
    fake_job(tmp_path, ["init=kaiming"], bad)
    write_multirun(tmp_path, ["init=lecun,kaiming"])
    jobs = write_summary(tmp_path)  # no traceback
    assert len(jobs) == 2 and str(tmp_path / "init=kaiming" / "metrics.json") in caplog.text
    assert "| lecun | **90.00** |" in (tmp_path / "summary.md").read_text()


def test_the_seed_count_counts_seeds_that_ran(tmp_path: Path) -> None:
    for seed in (0, 1, 2):
        m = {"init": "lecun", "act": "relu", "seed": seed, "status": "ok", "test/acc": 0.9 + seed / 100}
        fake_job(tmp_path, ["init=lecun", f"seed={seed}"], m)
    write_multirun(tmp_path, ["init=lecun,kaiming", "seed=0,1,2"])  # kaiming never ran: 3 not-run jobs
    write_summary(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "over 3 seeds" in md and "over 4 seeds" not in md and md.count("- not run:") == 3


def two_seed_sweep(root: Path, odd: dict) -> Path:
    """lecun and kaiming x seeds 0, 1; kaiming seed 0's record is `odd` over a good one."""
    for init in ("lecun", "kaiming"):
        for seed in (0, 1):
            acc = {"lecun": 0.95, "kaiming": 0.96}[init] + 0.005 * seed
            m = {"init": init, "act": "relu", "seed": seed, "status": "ok", "test/acc": acc, "val/acc": acc}
            fake_job(root, [f"init={init}", f"seed={seed}"], m | odd if (init, seed) == ("kaiming", 0) else m)
    write_multirun(root, ["init=lecun,kaiming", "seed=0,1"])
    return root


@pytest.mark.parametrize(("value", "status"), [(float("nan"), "ok"), (float("inf"), "ok"), (float("nan"), "stopped")])
def test_a_non_finite_test_acc_is_named_and_listed_as_diverged(tmp_path: Path, caplog, value: float,
                                                               status: str) -> None:  # fmt: skip
    root = two_seed_sweep(tmp_path, {"test/acc": value, "status": status})  # NaN / Infinity, as json.dumps writes
    assert "NaN" in (root / "init=kaiming,seed=0" / "metrics.json").read_text() or value == float("inf")
    write_summary(root)  # no traceback (inf used to reach statistics.stdev)
    name = "init=kaiming,seed=0"
    assert f"{root / name / 'metrics.json'}: test/acc={value}, not a finite number; the job is listed as diverged" in (
        caplog.text
    )
    rows = {r["job"]: r for r in csv.DictReader((root / "summary.csv").open())}
    assert (rows[name]["status"], rows[name]["test/acc"]) == ("diverged", "")  # not "ok" with nan
    md = (root / "summary.md").read_text()
    assert f"- diverged: `{name}`: test/acc={value} in its metrics.json (not a finite number)" in md
    assert "| kaiming | **96.50 (diverged)** |" in md  # the one finite seed (0.965), n = 1; a seed diverged
    assert f"<code>{name}</code>" in (root / "report.html").read_text().split("jobs diverged")[1]


def test_a_malformed_status_or_seed_is_named_and_only_valid_seeds_count(tmp_path: Path, caplog) -> None:
    root = two_seed_sweep(tmp_path, {"seed": "zero", "status": ["ok"], "test/acc": {"x": 1}})
    fake_job(root, ["init=lecun", "seed=2"], {"init": "lecun", "act": "relu", "seed": 2, "status": "failed"})
    write_summary(root)
    md = (root / "summary.md").read_text()
    where = root / "init=kaiming,seed=0" / "metrics.json"
    assert f"{where}: seed is 'zero', not an integer in [0, 4294967295]; left out" in caplog.text
    assert f"{where}: status is ['ok'], not one of ok, diverged, stopped, failed, interrupted, not run" in caplog.text
    assert "over 3 seeds" in md and "over 4 seeds" not in md  # 0, 1 and 2 (the failed one ran): 'zero' is no seed
    assert (
        "- failed: `init=kaiming,seed=0`: metrics.json is malformed: status is ['ok'], not one of ok, diverged, "
        "stopped, failed, interrupted, not run; test/acc is {'x': 1}, not a number; seed is 'zero'"
    ) in md
    assert "- failed: `init=lecun,seed=2`: its metrics.json gives no reason" in md  # the file is there
    assert "no metrics.json" not in md
    rows = {r["job"]: r for r in csv.DictReader((root / "summary.csv").open())}
    assert rows["init=kaiming,seed=0"]["seed"] == "0"  # from the job's overrides, not 'zero'
    assert "3 seed(s)" in (root / "report.html").read_text()


@pytest.mark.parametrize("broken", ["overrides", "multirun"])
def test_a_sweep_file_that_is_not_yaml_is_named_and_the_summary_goes_on(tmp_path: Path, caplog, broken: str) -> None:
    for init in ("lecun", "kaiming"):
        fake_job(tmp_path, [f"init={init}"], {"init": init, "act": "relu", "seed": 0, "status": "ok", "test/acc": 0.9})
    write_multirun(tmp_path, ["init=lecun,kaiming"])
    path = tmp_path / ("init=lecun/.hydra/overrides.yaml" if broken == "overrides" else "multirun.yaml")
    path.write_text("- [unclosed\n  : x: {\n")  # PyYAML's ScannerError, not one of OmegaConf's
    jobs = write_summary(tmp_path)
    assert {j["choices"]["init"] for j in jobs} == {"lecun", "kaiming"} and (tmp_path / "summary.md").is_file()
    said = [r.getMessage() for r in caplog.records if f"{path} cannot be read" in r.getMessage()]
    assert len(said) == 1 and "\n" not in said[0]  # once, in one line (3 lines, 3 times)


def test_a_cell_without_diagnostics_beside_one_with_them_is_drawn(tmp_path: Path) -> None:
    from initlab.run.overrides import swept

    for every, diag in (("0", None), ("100", {"act1/act_std": 0.8, "act1/dead_frac": 0.1})):
        m = {"init": "kaiming", "act": "relu", "seed": 0, "status": "ok", "test/acc": 0.9}
        fake_job(
            tmp_path, [f"callbacks.diagnostics.every_n_steps={every}"], m | ({"diagnostics": diag} if diag else {})
        )
    write_multirun(tmp_path, ["callbacks.diagnostics.every_n_steps=0,100"])
    write_summary(tmp_path)  # one layer: bars, one of them empty (an IndexError before)
    assert "<img" in (tmp_path / "report.html").read_text()
    assert swept(["init=glob(xav*)", "act=relu"]) == ["init"]  # a glob sweeps, whatever it matches


def test_a_job_without_its_overrides_file_is_matched_by_its_records_overrides(tmp_path: Path, caplog) -> None:
    """Matched by `init`, which its record names, a job whose .hydra/overrides.yaml is gone was fine; by a key the
    record holds only among its overrides (optimizer.lr), it was listed twice: `not run`, and a row of None."""
    for lr in ("0.1", "0.3"):
        m = {
            "init": "kaiming",
            "act": "relu",
            "seed": 0,
            "status": "ok",
            "test/acc": 0.9,
            "overrides": [f"optimizer.lr={lr}"],
        }
        fake_job(tmp_path, [f"optimizer.lr={lr}"], m)
    write_multirun(tmp_path, ["optimizer.lr=0.1,0.3"])
    (tmp_path / "optimizer.lr=0.3" / ".hydra" / "overrides.yaml").unlink()
    jobs = write_summary(tmp_path)
    assert sorted((j["choices"].get("optimizer.lr"), j["status"]) for j in jobs) == [("0.1", "ok"), ("0.3", "ok")]
    assert f"{tmp_path / 'optimizer.lr=0.3' / '.hydra' / 'overrides.yaml'} is missing" in caplog.text
