"""One results table per sweep: summary.csv, summary.md and summary.png in the sweep dir.

    python -m initlab.summary outputs/multirun/2026-11-25/10-00-00    # rebuild from any sweep dir

Runs by itself at the end of every `-m` sweep (the `SweepSummary` Hydra callback in conf/train.yaml).
Works with whatever keys were swept: rows are `init` (or the first swept key), columns `act` (or the
second); further keys join the row label; seeds are averaged (mean ± std over the jobs in a cell).
"""

import csv
import io
import logging
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from initlab.heatmap import Grid, to_png
from initlab.record import RUN_KEYS, write_atomic
from initlab.signals import sweep_interrupted
from initlab.sweep import collect, sweep_config

log = logging.getLogger(__name__)
CHOICES = tuple(k for k in RUN_KEYS if k != "seed")  # true names from metrics.json, even when set via a combo
METRICS = ("val/acc", "val/acc_best", "test/acc", "train/loss", "steps_to_90", "wall_time_s")


def swept_keys(jobs: list[dict[str, Any]]) -> list[str]:
    """Keys whose value differs between jobs, minus keys implied by the others (combo=x sets init and act)."""
    seen = dict.fromkeys(k for j in jobs for k in j["choices"])
    keys = [
        k for k in seen if len({j["choices"][k] for j in jobs if k in j["choices"]}) > 1
    ]  # a job lacking k: no vote
    keys.sort(key=lambda k: (CHOICES.index(k) if k in CHOICES else len(CHOICES), k == "seed"))

    def implied(k: str) -> bool:
        values: dict[tuple, set[str]] = defaultdict(set)
        for j in jobs:
            values[tuple(str(j["choices"].get(o)) for o in keys if o != k)].add(str(j["choices"].get(k)))
        return all(len(v) == 1 for v in values.values())

    return [k for k in keys if k in CHOICES or k == "seed" or not implied(k)]


def _cell(accs: list[float]) -> tuple[float, str]:
    mean = statistics.fmean(accs) * 100
    text = f"{mean:.2f}" if len(accs) == 1 else f"{mean:.2f} ± {statistics.stdev(accs) * 100:.2f}"
    return mean, text


def table(jobs: list[dict[str, Any]]) -> tuple[str, str, list[str], list[str], dict[tuple[str, str], list[dict]]]:
    """-> (row key, col key, row labels, col labels, {(row, col): jobs}); seeds share a cell."""
    keys = [k for k in swept_keys(jobs) if k != "seed"] or ["init"]
    row_keys, col_key = ([keys[0], *keys[2:]], keys[1]) if len(keys) > 1 else (keys, "")
    cells: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for j in jobs:
        row = ", ".join(
            str(j["choices"].get(k)) if i == 0 else f"{k}={j['choices'].get(k)}" for i, k in enumerate(row_keys)
        )
        cells[row, str(j["choices"].get(col_key)) if col_key else "test acc"].append(j)
    rows, cols = list(dict.fromkeys(r for r, _ in cells)), list(dict.fromkeys(c for _, c in cells))
    return ", ".join(row_keys), col_key, rows, cols, cells


def steps_to(history: list[list[float]] | None, target: float = 0.9) -> int | None:
    return next((int(step) for step, acc in history or [] if acc is not None and acc >= target), None)


def to_csv(jobs: list[dict[str, Any]]) -> str:
    keys = swept_keys(jobs)
    keys += [] if "seed" in keys else ["seed"]
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["job", *keys, *METRICS, "status", "error"])
    for j in jobs:
        m = {**j["metrics"], "steps_to_90": steps_to(j["metrics"].get("val_history"))}
        w.writerow(
            [
                j["dir"],
                *(j["choices"].get(k) for k in keys),
                *(m.get(k) for k in METRICS),
                j["status"],
                m.get("error", ""),
            ]
        )
    return out.getvalue()


def _grid(jobs: list[dict[str, Any]]) -> Grid:
    """The table as (row key, col key, rows, cols, {(row, col): (mean %, text)}); absent cells are missing."""
    row_key, col_key, rows, cols, cells = table(jobs)
    out = {}
    for rc, js in cells.items():
        accs = [j["metrics"]["test/acc"] for j in js if isinstance(j["metrics"].get("test/acc"), float)]
        mean, text = _cell(accs) if accs else (float("nan"), "/".join(sorted({j["status"] for j in js})))
        flags = sorted({j["status"] for j in js} - {"ok"} if accs else set())
        out[rc] = (mean, text + "".join(f" ({f})" for f in flags))
    return row_key, col_key, rows, cols, out


def held_fixed(jobs: list[dict[str, Any]]) -> dict[str, str]:
    """The run keys (init, act, optimizer, scheduler, seed) that every job shares: what a table did not vary."""
    values = {k: {str(j["metrics"].get(k, j["choices"].get(k))) for j in jobs} for k in RUN_KEYS}
    return {k: v.pop() for k, v in values.items() if len(v) == 1 and "None" not in v}


def to_markdown(jobs: list[dict[str, Any]], grid: Grid, title: str) -> str:
    row_key, col_key, rows, cols, cells = grid
    best = max((v[0] for v in cells.values() if v[0] == v[0]), default=None)  # v == v: not NaN
    n_seeds = len({j["choices"].get("seed") for j in jobs})
    lines = [f"# {title}", "", f"Test accuracy (%) — {len(jobs)} jobs"
             + (f", mean ± std over {n_seeds} seeds" if n_seeds > 1 else "") + "; best in bold.", ""]  # fmt: skip
    fixed = held_fixed(jobs)
    lines += [f"Held fixed: {', '.join(f'{k}={v}' for k, v in fixed.items())}.", ""] if fixed else []
    corner = f"{row_key} \\ {col_key}" if col_key else row_key
    lines += [f"| {corner} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in rows:
        texts = [cells.get((r, c), (None, "–")) for c in cols]
        lines.append(f"| {r} | " + " | ".join(f"**{t}**" if m == best else t for m, t in texts) + " |")
    unfinished = [j for j in jobs if j["status"] in ("failed", "interrupted", "not run")]
    lines += [
        "",
        *(f"- {j['status']}: `{j['dir']}`: {j['metrics'].get('error', 'no metrics.json')}" for j in unfinished),
    ]
    return "\n".join(lines).rstrip() + "\n"


def write_summary(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Write summary.csv, summary.md and summary.png into sweep_dir; -> the job records."""
    sweep_dir = Path(sweep_dir)
    jobs = collect(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"no job dirs (with .hydra/ or metrics.json) under {sweep_dir}")
    title = f"{sweep_dir.parent.name}/{sweep_dir.name}"
    write_atomic(sweep_dir / "summary.csv", to_csv(jobs))
    grid = _grid(jobs)
    write_atomic(sweep_dir / "summary.md", to_markdown(jobs, grid, title))
    theory = OmegaConf.select(sweep_config(sweep_dir), "hydra.callbacks.summary.theory", default=None)
    to_png(grid, sweep_dir / "summary.png", title, OmegaConf.to_container(theory) if theory else None)
    log.info("sweep summary (%d jobs) -> %s/summary.{csv,md,png}", len(jobs), sweep_dir)
    return jobs


class SweepSummary(Callback):
    """Hydra callback: summarise the sweep when it ends; exit non-zero if any job failed.

    theory: {act, sigma_b2} draws mean-field theory's trainable depth 6 xi_c over a (depth x sigma_w2)
    heatmap (experiment=edge_of_chaos); write_summary reads it back from the sweep's multirun.yaml.
    """

    def __init__(self, theory: dict | None = None) -> None:
        self.theory = theory

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from initlab import signals

        signals.STATE.sweep_dir = Path(config.hydra.sweep.dir).absolute()  # a signal now: mark, forward, finish
        signals.clear_sweep_marks(signals.STATE.sweep_dir)  # a sweep run again (to resume it) starts unmarked

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        import signal

        jobs = write_summary(config.hydra.sweep.dir)
        stopped = sweep_interrupted(Path(config.hydra.sweep.dir))
        if stopped:
            left = sum(j["status"] in ("interrupted", "not run") for j in jobs)
            log.error("sweep interrupted by %s: %d of %d jobs interrupted or not run", stopped, left, len(jobs))
            sys.exit(128 + signal.Signals[stopped])
        failed = [j["dir"] for j in jobs if j["status"] == "failed"]
        if failed:
            log.error("%d of %d jobs failed: %s (see their metrics.json)", len(failed), len(jobs), ", ".join(failed))
            sys.exit(1)  # Hydra turns a callback's exception into a warning; only exit sets the status


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m initlab.summary SWEEP_DIR", file=sys.stderr)
        return 2
    try:
        write_summary(args[0])
    except FileNotFoundError as e:
        log.error("%s", e)
        return 1
    print((Path(args[0]) / "summary.md").read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
