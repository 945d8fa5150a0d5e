"""report.html: one self-contained page per sweep (or over several dirs) with the table and its intervals, a heatmap
that separates the top cells, learning curves, step-0 diagnostics across depth, the chosen hyperparameters and the
jobs that did not run to their end. Its pictures are embedded PNGs that decode; nothing is fetched."""

import base64
import io
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
