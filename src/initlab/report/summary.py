"""One results table per sweep: summary.csv (a row a job), cells.csv (a row a cell), summary.md, summary.png and
report.html in the sweep dir, written by the `SweepSummary` Hydra callback when a `-m` sweep ends and rebuilt by
`python -m initlab.report SWEEP_DIR`.

Works with whatever keys were swept: rows are `init` (or the first swept key), columns `act` (or the second);
further keys join the row label; seeds are averaged (mean with its 95 % confidence interval over seeds). With
`summary.tune=KEY` each cell is shown at its own best value of KEY, chosen by validation accuracy (cells.py).
"""

import csv
import io
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from initlab.errors import describe
from initlab.files import write_atomic
from initlab.report.cells import Cell
from initlab.report.cells import to_csv as cells_csv
from initlab.report.heatmap import to_png
from initlab.report.html import write_report
from initlab.report.sweep import collect, study, sweep_config, sweep_order
from initlab.report.table import (
    UNFINISHED,
    Layout,
    check_tune,
    grid,
    held_fixed,
    seed_count,
    summarise,
    swept_keys,
    why,
)
from initlab.run.signals import sweep_interrupted

log = logging.getLogger(__name__)
METRICS = ("val/acc", "val/acc_best", "test/acc", "train/loss", "steps_to_90", "wall_time_s")


def steps_to(history: list[list[float]] | None, target: float = 0.9) -> int | None:
    # a run's accuracy is a float32 ratio of counts: 90 % is written 0.8999999761581421, and still reaches 90 %
    return next((int(step) for step, acc in history or [] if acc is not None and acc >= target - 1e-6), None)


def jobs_csv(jobs: list[dict[str, Any]]) -> str:
    """summary.csv: one row a job (its swept values, seed, numbers, status and error)."""
    keys = swept_keys(jobs)
    keys += [] if "seed" in keys else ["seed"]
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["job", *keys, *METRICS, "status", "error"])
    for j in jobs:
        m = {**j["metrics"], "steps_to_90": steps_to(j["metrics"].get("val_history"))}
        w.writerow([j["dir"], *(j["choices"].get(k) for k in keys), *(m.get(k) for k in METRICS), j["status"],
                    m.get("error", "")])  # fmt: skip
    return out.getvalue()


def to_markdown(jobs: list[dict[str, Any]], cells: list[Cell], lay: Layout, title: str) -> str:
    row_key, col_key, rows, cols, texts = grid(jobs, cells, lay)
    marks = {(lay.row(c.keys), lay.col(c.keys)): c for c in cells}
    seeds = seed_count(jobs)
    over = f"; mean ± 95 % CI (Student t) over {seeds} seeds" if seeds > 1 else ""
    legend = "; **bold**: the column's best, ≈: cannot be told from it (Welch, 5 %, Holm within the column)."
    lines = [f"# {title}", "", f"Test accuracy (%) — {len(jobs)} jobs{over}{legend}"]
    if lay.tune:
        lines += ["", f"Each cell at its own best {lay.tune} (of {', '.join(lay.tuned_values)}), chosen by mean final "
                  "val/acc over seeds, never test/acc; (edge): the best was at an end of the swept values, so the "
                  "cell may not be tuned."]  # fmt: skip
        if any(c.chosen is None for c in cells):
            lines[-1] += f" A cell without @value: none of its jobs set {lay.tune} (not swept there), so it is untuned."
    fixed = held_fixed(jobs)
    lines += ["", f"Held fixed: {', '.join(f'{k}={v}' for k, v in fixed.items())}."] if fixed else []
    corner = f"{row_key} \\ {col_key}" if col_key else row_key
    lines += ["", f"| {corner} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in rows:
        shown = []
        for c in cols:
            text, cell = texts.get((r, c), (None, "–"))[1], marks.get((r, c))
            best, near = cell is not None and cell.best, cell is not None and cell.best_in_column and not cell.best
            shown.append(f"**{text}**" if best else f"{text} ≈" if near else text)
        lines.append(f"| {r} | " + " | ".join(shown) + " |")
    unfinished = [j for j in jobs if j["status"] in UNFINISHED]
    diverged = [j for j in jobs if j["status"] == "diverged"]  # ran to their end; in the table where chosen
    lines += ["", *(f"- {j['status']}: `{j['dir']}`: {why(j)}" for j in [*unfinished, *diverged])]
    return "\n".join(lines).rstrip() + "\n"


def study_lines(found: dict[str, Any] | None) -> list[str]:
    """The Optuna study in a line: its trials and its best, by the objective (the final val/acc)."""
    if not found:
        return []
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in found["best_params"].items())
    return ["", f"Optuna study `{found['name']}` ({found['storage']}): {found['trials']} trials; the best, trial "
            f"#{found['best_trial']}: val/acc {found['best_value']:.4f} at {params}."]  # fmt: skip


def sweep_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """The sweep's jobs (sweep.collect); FileNotFoundError where it has none."""
    jobs = collect(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"no job dirs (with .hydra/ or metrics.json) under {sweep_dir}")
    return jobs


def write_summary(sweep_dir: str | Path, tune: str | None = None,
                  jobs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Write summary.csv, cells.csv, summary.md, summary.png and report.html into sweep_dir; -> the jobs (`jobs`:
    as sweep_jobs gave them, read already). `tune` (a --tune) must name a swept key but the seed, else ConfigError
    and nothing is written; without it, the sweep's own summary.tune (not tuned, and said so, where it cannot be)."""
    sweep_dir = Path(sweep_dir)
    jobs = sweep_jobs(sweep_dir) if jobs is None else jobs
    if tune is not None:
        check_tune(jobs, tune, str(sweep_dir))
    sweep = sweep_config(sweep_dir)
    cells, lay = summarise(jobs, tune or OmegaConf.select(sweep, "summary.tune", default=None), sweep_order(sweep))
    title = f"{sweep_dir.parent.name}/{sweep_dir.name}"
    write_atomic(sweep_dir / "summary.csv", jobs_csv(jobs))
    write_atomic(sweep_dir / "cells.csv", cells_csv(cells, lay.cell_keys, lay.tune))
    found = study(sweep_dir)
    write_atomic(sweep_dir / "summary.md", to_markdown(jobs, cells, lay, title) + "\n".join(study_lines(found)))
    theory = OmegaConf.select(sweep, "hydra.callbacks.summary.theory", default=None)
    to_png(grid(jobs, cells, lay), sweep_dir / "summary.png", title, OmegaConf.to_container(theory) if theory else None)
    write_report(sweep_dir / "report.html", jobs, cells, lay, title, found)
    log.info("sweep summary (%d jobs) -> %s/{summary.csv,cells.csv,summary.md,summary.png,report.html}",
             len(jobs), sweep_dir)  # fmt: skip
    return jobs


class SweepSummary(Callback):
    """Hydra callback: summarise the sweep when it ends; exit non-zero if any job did not run to its end.

    theory: {act, sigma_b2} draws mean-field theory's trainable depth 6 xi_c over a (depth x sigma_w2)
    heatmap (experiment=edge_of_chaos); write_summary reads it back from the sweep's multirun.yaml.
    """

    def __init__(self, theory: dict | None = None) -> None:
        self.theory = theory

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from initlab.run import signals

        signals.STATE.sweep_dir = Path(config.hydra.sweep.dir).absolute()  # a signal now: mark, forward, finish
        signals.STATE.summarise = write_summary  # a launcher that breaks: the run's last word is this summary
        signals.clear_sweep_marks(signals.STATE.sweep_dir)  # a sweep run again (to resume it) starts unmarked
        # the sweep's config, as Hydra's basic sweeper leaves it (other sweepers, Optuna's, write none)
        write_atomic(signals.STATE.sweep_dir / "multirun.yaml", OmegaConf.to_yaml(config))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        unwritten = False  # a sweep whose summary could not be written exits non-zero, whatever its jobs did
        try:
            jobs = write_summary(config.hydra.sweep.dir)
        except Exception as e:  # Hydra would turn it into a warning and exit 0
            log.error("could not write the sweep's summary: %s", describe(e))
            jobs, unwritten = collect(Path(config.hydra.sweep.dir)) or [{"dir": "(none)", "status": "failed"}], True
        stopped = sweep_interrupted(Path(config.hydra.sweep.dir))
        if stopped:
            left = sum(j["status"] in ("interrupted", "not run") for j in jobs)
            log.error("sweep interrupted by %s: %d of %d jobs interrupted or not run", stopped, left, len(jobs))
            sys.exit(128 + signal.Signals[stopped])
        failed = [j["dir"] for j in jobs if j["status"] in ("failed", "not run", "interrupted")]
        if failed:
            log.error("%d of %d jobs did not run to their end: %s (see their metrics.json)", len(failed), len(jobs),
                      ", ".join(failed))  # fmt: skip
            sys.exit(1)  # Hydra turns a callback's exception into a warning; only exit sets the status
        if unwritten:
            sys.exit(1)
