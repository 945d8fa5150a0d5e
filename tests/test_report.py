"""report.html: one self-contained page per sweep (or over several dirs) with the table and its intervals, a heatmap
that separates the top cells, learning curves, step-0 diagnostics across depth, the chosen hyperparameters and the
jobs that did not run to their end. Its pictures are embedded PNGs that decode; nothing is fetched."""

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from initlab.report.__main__ import main as report_main
from initlab.report.summary import write_summary
from tests.conftest import FAST, fake_job, run_cli, write_multirun


def sweep_with_diagnostics(root: Path) -> Path:
    for init in ("lecun", "kaiming"):
        for act in ("tanh", "relu"):
            for seed in (0, 1):
                acc = {"lecun": 0.95, "kaiming": 0.96}[init] + 0.005 * seed
                diag = {f"act{i}/{s}": v / i for i in (1, 2, 3) for s, v in (("act_std", 0.5), ("dead_frac", 0.1))}
                m = {"init": init, "act": act, "seed": seed, "status": "ok", "test/acc": acc, "val/acc": acc,
                     "val_history": [[100, acc - 0.1], [200, acc]], "diagnostics": diag}  # fmt: skip
                fake_job(root, [f"init={init}", f"act={act}", f"seed={seed}"], m)
    fake_job(root, ["init=normal", "act=tanh", "seed=0"], {"status": "failed", "error": "boom: one line"})
    write_multirun(root, ["init=lecun,kaiming,normal", "act=tanh,relu", "seed=0,1"])
    return root


def images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_the_report_holds_every_part_and_is_self_contained(tmp_path: Path) -> None:
    import matplotlib.image

    root = sweep_with_diagnostics(tmp_path)
    write_summary(root)
    page = (root / "report.html").read_text()
    for part in ("<h2>Table</h2>", "<h2>Heatmap</h2>", "<h2>Learning curves</h2>",
                 "<h2>Step-0 diagnostics across depth</h2>", "<h2>Chosen hyperparameters</h2>",
                 "<h2>Failed, stopped and not-run jobs</h2>"):  # fmt: skip
        assert part in page, part
    assert "96.25 ± 3.18" in page  # kaiming: 0.96 and 0.965 over 2 seeds, t(0.975, 1) = 12.706
    assert "boom: one line" in page and "not run" in page  # normal/tanh failed; normal/relu never ran
    pictures = images(page)
    assert len(pictures) == 3  # heatmap, curves, diagnostics
    for png in pictures:
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.image.imread(io.BytesIO(png), format="png").size > 0
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", page) and "<script" not in page  # offline


def test_several_dirs_make_one_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b = sweep_with_diagnostics(tmp_path / "a"), tmp_path / "b"
    for seed in (0, 1):
        fake_job(b, ["init=xavier", "act=tanh", f"seed={seed}"], {"init": "xavier", "act": "tanh", "seed": seed,
                 "status": "ok", "test/acc": 0.97, "val/acc": 0.97})  # fmt: skip
    write_multirun(b, ["init=xavier", "act=tanh", "seed=0,1"])
    out = tmp_path / "study.html"
    assert report_main([str(a), str(b), "--out", str(out)]) == 0
    page = out.read_text()
    rows = re.findall(r"<tr><td>(\w+)</td>", page.split("<h2>Heatmap</h2>")[0])
    assert rows == ["lecun", "kaiming", "normal", "xavier"]  # both sweeps' inits, one table
    assert report_main([str(tmp_path / "nothing")]) == 1


def test_a_single_run_dir_gets_its_report(make_cfg, tmp_path: Path) -> None:
    from tests.conftest import run

    run(make_cfg(out=tmp_path / "run"))
    assert report_main([str(tmp_path / "run")]) == 0
    page = (tmp_path / "run" / "report.html").read_text()
    assert "<h2>Table</h2>" in page and len(images(page)) == 3


@pytest.mark.slow
def test_a_sweep_writes_its_report_and_it_renders_in_chromium(tiny_mnist: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    grid = ["init=lecun,kaiming", "act=tanh,relu", "optimizer.lr=0.05,0.1", "summary.tune=optimizer.lr"]
    proc = run_cli(
        "-m", *grid, f"data.data_dir={tiny_mnist}", *FAST, f"hydra.sweep.dir={sweep}", "hydra/launcher=joblib"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (sweep / "report.html").read_text()
    assert "optimizer.lr per cell, chosen by mean final val/acc" in page and len(images(page)) == 3
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no headless Chromium here (Debian's chromium package)")
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", "--window-size=1200,2400", (sweep / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000  # a page, not a blank


def tuned_sweep(root: Path, inits: tuple[str, ...] = ("lecun", "kaiming")) -> Path:
    """inits x lr 0.03, 0.3 x seeds 0, 1 with summary.tune=optimizer.lr; lr 0.3 has the better val/acc."""
    for init in inits:
        for lr in ("0.03", "0.3"):
            for seed in (0, 1):
                acc = {"lecun": 0.95, "kaiming": 0.96}[init] + 0.005 * seed - (0.1 if lr == "0.03" else 0)
                m = {"init": init, "act": "relu", "seed": seed, "status": "ok", "test/acc": acc, "val/acc": acc}
                fake_job(root, [f"init={init}", f"optimizer.lr={lr}", f"seed={seed}"], m)
    task = [f"init={','.join(inits)}", "optimizer.lr=0.03,0.3", "seed=0,1"]
    write_multirun(root, task, summary={"tune": "optimizer.lr"})
    return root


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize("where", ["read-only", "a directory", "no parent", "a FIFO"])
def test_an_out_that_cannot_be_written_is_one_line_and_exit_1(tmp_path: Path, caplog, monkeypatch, where) -> None:
    import errno
    import os
    import stat
    import tempfile

    root = tuned_sweep(tmp_path / "sweep")
    out = {"read-only": tmp_path / "ro" / "x.html", "a directory": tmp_path / "ro",
           "no parent": tmp_path / "nope" / "x" / "y.html", "a FIFO": tmp_path / "ro" / "pipe"}[where]  # fmt: skip
    (tmp_path / "ro").mkdir()
    if where == "a FIFO":  # like /dev/full, a device: the report's rename once replaced it
        os.mkfifo(out)
    if where == "read-only":  # as a read-only mount answers (root writes through any mode bits)

        def refuse(*args: object, **kwargs: object) -> None:
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert report_main([str(root), "--out", str(out)]) == 1  # no OutputError traceback
    (line,) = errors(caplog)
    assert line.startswith(f"--out={out}") and "\n" not in line
    assert {"read-only": "Read-only file system", "a directory": "is a directory", "a FIFO": "is a named pipe",
            "no parent": f"its folder {out.parent} does not exist"}[where] in line  # fmt: skip
    left = [p.name for p in (tmp_path / "ro").iterdir()]
    assert left == (["pipe"] if where == "a FIFO" else []) and not (tmp_path / "nope").exists()  # nothing left
    assert where != "a FIFO" or stat.S_ISFIFO(os.lstat(out).st_mode)  # still the FIFO


def test_a_tuned_sweep_gathers_with_a_single_run_and_an_untuned_sweep(tmp_path: Path, caplog) -> None:
    tuned = tuned_sweep(tmp_path / "tuned")
    run_dir = fake_job(tmp_path / "runs", ["init=kaiming"], {"init": "kaiming", "act": "relu", "seed": 0,
                       "status": "ok", "test/acc": 0.99, "val/acc": 0.99})  # fmt: skip
    untuned = tmp_path / "untuned"
    for seed, acc in ((0, 0.97), (1, 0.975)):
        m = {"init": "xavier", "act": "relu", "seed": seed, "status": "ok", "test/acc": acc, "val/acc": acc}
        fake_job(untuned, ["init=xavier", f"seed={seed}"], m)
    write_multirun(untuned, ["init=xavier", "seed=0,1"])
    out = tmp_path / "study.html"
    assert report_main([str(tuned), str(run_dir), str(untuned), "--out", str(out)]) == 0  # no IndexError
    page = out.read_text()
    assert '<tr><td>kaiming</td><td class="near">96.25 ± 3.18 @0.3 (edge)</td></tr>' in page  # tuned, as before
    assert '<tr><td>xavier</td><td class="best">97.25 ± 3.18</td></tr>' in page  # no lr swept: shown untuned
    assert "<td>xavier</td><td>test acc</td><td>– (not swept there: untuned)</td><td>2</td>" in page
    # the single run (kaiming, lr not known) cannot stand at the kaiming cell's chosen lr: left out, and said so
    assert f"{run_dir}: no optimizer.lr (not swept there); left out of their cell" in caplog.text
    assert report_main([str(untuned), str(tuned), "--out", str(out)]) == 0  # the untuned sweep first: the same
    assert '<tr><td>xavier</td><td class="best">97.25 ± 3.18</td></tr>' in out.read_text()


def test_a_tune_that_was_not_swept_is_refused_and_writes_nothing(tmp_path: Path, caplog) -> None:
    root = tuned_sweep(tmp_path / "sweep")
    write_summary(root)  # the sweep's own files: tuned over optimizer.lr
    names = ("summary.csv", "cells.csv", "summary.md", "summary.png", "report.html")
    before = {n: (root / n).read_bytes() for n in names}
    for key in ("optimizer.momentum", "nope"):
        caplog.clear()
        assert report_main([str(root), "--tune", key]) == 1
        (line,) = errors(caplog)
        assert line == f"--tune={key} is not a swept key of {root} (swept: init, optimizer.lr); give one of those"
        assert {n: (root / n).read_bytes() for n in names} == before  # the tuned files stand
    out = tmp_path / "study.html"
    assert report_main([str(root), "--tune", "nope", "--out", str(out)]) == 1 and not out.exists()
    other = tmp_path / "other"  # two dirs, the second did not sweep the key: the first is not written either
    fake_job(other, ["init=xavier"], {"init": "xavier", "act": "relu", "seed": 0, "status": "ok", "test/acc": 0.9})
    write_multirun(other, ["init=xavier"])
    (root / "summary.md").unlink()
    assert report_main([str(root), str(other), "--tune", "optimizer.lr"]) == 1
    assert not (root / "summary.md").exists() and not (other / "summary.md").exists()
    assert f"--tune=optimizer.lr is not a swept key of {other}" in errors(caplog)[-1]


def test_tuning_the_seed_is_refused(tmp_path: Path, caplog) -> None:
    root = tuned_sweep(tmp_path / "sweep")
    assert report_main([str(root), "--tune", "seed"]) == 1 and not (root / "summary.md").exists()
    (line,) = errors(caplog)
    assert line == (f"--tune=seed: cannot tune the seed: each cell would be its luckiest seed; give a swept setting "
                    f"of {root} (swept: init, optimizer.lr)")  # fmt: skip


@pytest.mark.slow
def test_the_same_sweep_twice_is_counted_once(tmp_path: Path, caplog) -> None:
    a = sweep_with_diagnostics(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)  # a copy: the same settings and the same seeds
    c = tmp_path / "c"  # a new seed of kaiming/tanh: a seed more
    m = {"init": "kaiming", "act": "tanh", "seed": 2, "status": "ok", "test/acc": 0.97, "val/acc": 0.97}
    fake_job(c, ["init=kaiming", "act=tanh", "seed=2"], m)
    write_multirun(c, ["init=kaiming", "act=tanh", "seed=2"])
    out = tmp_path / "study.html"
    assert report_main([str(a), str(b), "--out", str(out)]) == 0
    page = out.read_text()
    assert "96.25 ± 3.18" in page and "12 jobs, 4 cells, 2 seed(s)" in page  # as a alone: 2 seeds, not 4
    assert "12 jobs repeat another's settings and seed and are counted once" in page
    assert "b/init=kaiming,act=relu,seed=1 repeats a/init=kaiming,act=relu,seed=1 (same settings, seed 1)" in page
    assert "b/init=kaiming,act=relu,seed=1 repeats a/init=kaiming,act=relu,seed=1" in caplog.text
    assert report_main([str(a), str(b), str(c), "--out", str(out)]) == 0
    assert "96.50 ± 1.24" in out.read_text()  # kaiming/tanh: 0.96, 0.965 (once each) and 0.97: 3 seeds


def test_the_same_runs_swept_with_and_without_a_tune_of_act_are_counted_once(tmp_path: Path, caplog) -> None:
    """summary.tune and the loggers change no number: two sweeps differing only there hold the same runs."""
    for name, extra in (("tuned", ["summary.tune=act"]), ("plain", [])):
        for act, acc in (("relu", 0.97), ("tanh", 0.96)):
            m = {"init": "kaiming", "act": act, "seed": 0, "status": "ok", "test/acc": acc, "val/acc": acc}
            fake_job(tmp_path / name, [f"act={act}", *extra], m)
        write_multirun(tmp_path / name, ["act=relu,tanh", *extra], **({"summary": {"tune": "act"}} if extra else {}))
    out = tmp_path / "study.html"
    assert report_main([str(tmp_path / "tuned"), str(tmp_path / "plain"), "--out", str(out)]) == 0
    page = out.read_text()
    assert "2 jobs repeat another's settings and seed and are counted once" in page and "1 seed(s)" in page
    assert "97.00 @relu</td>" in page and "(edge)" not in page  # one seed: no interval; act has no ends


def test_a_sweep_and_one_of_its_jobs_given_both_count_that_job_once(tmp_path: Path, caplog) -> None:
    a = sweep_with_diagnostics(tmp_path / "a")
    job = a / "init=kaiming,act=relu,seed=1"
    out = tmp_path / "study.html"
    assert report_main([str(a), str(job), "--out", str(out)]) == 0  # the job dir, given again as a single run
    page = out.read_text()
    assert "96.25 ± 3.18" in page and "12 jobs, 4 cells, 2 seed(s)" in page  # as a alone
    assert f"{job} is a/init=kaiming,act=relu,seed=1 (the same run dir): counted once" in caplog.text


@pytest.mark.parametrize(
    "junk", ["junk", {}, pytest.param([1, 2], marks=pytest.mark.slow), pytest.param({"act1/act_std": "x"},
             marks=pytest.mark.slow)], ids=["text", "empty", "list", "words"])  # fmt: skip
def test_malformed_step_0_diagnostics_are_named_and_the_report_goes_on(tmp_path: Path, caplog, junk: object) -> None:
    root = sweep_with_diagnostics(tmp_path / "s")
    path = root / "init=kaiming,act=relu,seed=1" / "metrics.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps(record | {"diagnostics": junk, "wall_time_s": -3}))
    assert report_main([str(root)]) == 0
    assert "<img" in (root / "report.html").read_text()
    if junk != {}:  # an empty dict is no diagnostics, not a malformed one
        assert f"{path}: diagnostics is malformed (not a dict of numbers); left out" in caplog.text
    assert f"{path}: wall_time_s is -3" in caplog.text


@pytest.mark.parametrize(("argv", "said"), [([], "the following arguments are required: dirs"),
                                            (["x", "--bogus"], "unrecognized arguments: --bogus"),
                                            (["x", "--out", ""], "--out: '' is an empty path")])  # fmt: skip
def test_a_command_line_mistake_is_one_line_and_exit_1(caplog, argv: list[str], said: str) -> None:
    assert report_main(argv) == 1  # argparse alone: its usage and the message, exit 2
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and said in lines[0] and "\n" not in lines[0]
