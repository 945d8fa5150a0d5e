"""report.html: a sweep's study report to read at a glance, one self-contained file (its pictures embedded as PNG,
no scripts, no fetches: it opens offline from the sweep dir). It holds the table with confidence intervals, a
heatmap that separates the top cells, each cell's learning curve, its step-0 diagnostics across depth, the
chosen hyperparameters, and the jobs that failed or never ran. Several dirs (sweeps or single runs) make one
report over all their jobs.
"""

import base64
import html
import logging
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from initlab.files import write_atomic
from initlab.report.cells import Cell
from initlab.report.heatmap import figure as heatmap
from initlab.report.heatmap import png
from initlab.report.sweep import collect, load_job, sweep_config, sweep_order
from initlab.report.table import UNFINISHED, Layout, check_tune, grid, held_fixed, seed_count, summarise, why
from initlab.run.resume import FROM_COMMAND

log = logging.getLogger(__name__)
STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.best{font-weight:bold;background:#e6f4e6}
.near{background:#f2f9f2}.edge{color:#b35900}img{max-width:100%;border:1px solid #eee}.note{color:#555}"""


def gather(dirs: list[Path]) -> tuple[list[dict[str, Any]], dict[str, list[str]], str | None]:
    """The jobs of every dir (a sweep dir's jobs, or a single run dir as one job), the sweeps' value orders (each
    key's values over all the sweeps, the first sweep's first) and their summary.tune (the first that has one)."""
    jobs, order, tune = [], {}, None
    for d in dirs:
        if (d / "metrics.json").exists() and not (d / "multirun.yaml").exists():  # a single run
            jobs.append({**load_job(d, ()), "dir": str(d), "path": d.resolve()})
            continue
        sweep = sweep_config(d)
        for key, values in sweep_order(sweep).items():
            order[key] = list(dict.fromkeys([*order.get(key, []), *values]))
        tune = tune or OmegaConf.select(sweep, "summary.tune", default=None)
        for j in collect(d):
            ran = j["status"] != "not run"  # a planned job that never ran has no dir
            jobs.append({**j, "dir": f"{d.name}/{j['dir']}" if len(dirs) > 1 else j["dir"],
                         "path": (d / j["dir"]).resolve() if ran else None})  # fmt: skip
    return jobs, order, tune


NO_NUMBER = tuple(f"{k}." for k in FROM_COMMAND) + FROM_COMMAND  # summary.tune=..., logger=...: the same run


def once(jobs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Jobs with the same settings and the same seed (one sweep passed twice, or copied) are one job, not more
    seeds: the first is kept (a planned job that never ran gives way to one that ran); -> (jobs, a note for
    each job left out, naming it and the one kept)."""
    kept: dict[tuple, int] = {}
    seen: dict[Path, str] = {}  # a run dir reached twice (a sweep and one of its jobs, given both) is one job
    out: list[dict[str, Any]] = []
    notes = []
    for j in jobs:
        if j.get("path") is not None and j["path"] in seen:
            notes.append(f"{j['dir']} is {seen[j['path']]} (the same run dir): counted once")
            log.warning("%s", notes[-1])
            continue
        if j.get("path") is not None:
            seen[j["path"]] = j["dir"]
        key = tuple(sorted((k, v) for k, v in j["choices"].items() if not k.startswith(NO_NUMBER)))
        first = kept.get(key)
        if first is None:
            kept[key] = len(out)
            out.append(j)
            continue
        if out[first]["status"] == "not run" and j["status"] != "not run":  # the one that ran stands
            j, out[first] = out[first], j
        seed = j["choices"].get("seed", "not given")
        notes.append(f"{j['dir']} repeats {out[first]['dir']} (same settings, seed {seed}): counted once")
        log.warning("%s; not an independent seed", notes[-1])
    return out, notes


def _png(fig: Any) -> str:
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(png(fig, dpi=100)).decode()}">'


def _by_column(cells: list[Cell], lay: Layout) -> dict[str, list[Cell]]:
    columns: dict[str, list[Cell]] = defaultdict(list)
    for c in cells:
        columns[lay.col(c.keys)].append(c)
    return columns


def curves(cells: list[Cell], lay: Layout) -> Any:
    """val/acc over steps, one panel a column, one line a row: the mean over seeds, a band from min to max."""
    from matplotlib.figure import Figure

    columns = _by_column(cells, lay)
    fig = Figure(figsize=(4.2 * len(columns), 3.2), constrained_layout=True)
    for ax, (col, members) in zip(fig.subplots(1, len(columns), squeeze=False)[0], columns.items(), strict=True):
        for c in members:
            runs = [dict(map(tuple, j["metrics"].get("val_history") or [])) for j in c.jobs]
            steps = sorted(set.intersection(*(set(r) for r in runs))) if runs else []
            if not steps:
                continue
            ys = [[r[s] * 100 for r in runs] for s in steps]  # [steps][seeds]
            line = ax.plot(steps, [statistics.fmean(y) for y in ys], label=lay.row(c.keys))[0]
            ax.fill_between(steps, [min(y) for y in ys], [max(y) for y in ys], color=line.get_color(), alpha=0.2)
        ax.set(title=f"{lay.col_key or 'all'} = {col}" if lay.col_key else "", xlabel="step", ylabel="val acc (%)")
        if ax.lines:
            ax.legend(fontsize=7)
    return fig


def _layer_means(cell: Cell, stat: str) -> list[float]:
    """A cell's step-0 `stat` (act_std, or the family's *_frac) per activation layer, mean over its seeds."""
    stats = [j["metrics"].get("diagnostics") or {} for j in cell.jobs]
    layers = sorted({key.rsplit("/", 1)[0] for s in stats for key in s if key.endswith("/act_std")},
                    key=lambda n: (len(n), n))  # act1, act2, ..., act10  # fmt: skip
    per_layer = [[v for s in stats for key, v in s.items() if key.startswith(f"{n}/") and key.endswith(stat)]
                 for n in layers]  # fmt: skip
    return [statistics.fmean(vs) if vs else float("nan") for vs in per_layer]


def diagnostics(cells: list[Cell], lay: Layout) -> Any | None:
    """Step 0, before any update: activation std and the family statistic (saturated, dead or flat fraction)
    across the activation layers, a pair of panels a column, a line a row (mean over seeds); bars where the net has
    one activation layer."""
    from matplotlib.figure import Figure

    columns = _by_column(cells, lay)
    if not any(j["metrics"].get("diagnostics") for c in cells for j in c.jobs):
        return None
    fig = Figure(figsize=(4.2 * len(columns), 6.0), constrained_layout=True)
    axes = fig.subplots(2, len(columns), squeeze=False)
    for k, (col, members) in enumerate(columns.items()):
        for row, stat in enumerate(("act_std", "frac")):
            ax = axes[row, k]
            values = [_layer_means(c, stat) for c in members]
            if max(len(v) for v in values) == 1:  # one layer: a bar a row
                bars = [v[0] if v else float("nan") for v in values]  # a cell whose runs logged no diagnostics
                ax.bar(range(len(members)), bars, color=[f"C{i}" for i in range(len(members))])
                ax.set_xticks(range(len(members)), [lay.row(c.keys) for c in members], rotation=45, fontsize=7)
                continue
            for c, ys in zip(members, values, strict=True):
                ax.plot(range(1, len(ys) + 1), ys, marker="o", ms=3, label=lay.row(c.keys))
            ax.set_xlabel("activation layer")
        axes[0, k].set(title=f"{lay.col_key} = {col}" if lay.col_key else "", ylabel="activation std", yscale="log")
        axes[1, k].set(ylabel="saturated / dead / flat fraction", ylim=(0, 1.02))
        if axes[0, k].lines:
            axes[0, k].legend(fontsize=7)
    return fig


def _table(jobs: list[dict[str, Any]], cells: list[Cell], lay: Layout) -> str:
    row_key, col_key, rows, cols, texts = grid(jobs, cells, lay)
    at = {(lay.row(c.keys), lay.col(c.keys)): c for c in cells}
    corner = f"{row_key} \\ {col_key}" if col_key else row_key
    head = f"<tr><th>{html.escape(corner)}</th>"
    out = [head + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"]
    for r in rows:
        tds = []
        for c in cols:
            cell = at.get((r, c))
            cls = "best" if cell and cell.best else "near" if cell and cell.best_in_column else ""
            text = html.escape(texts.get((r, c), (None, "–"))[1])
            tds.append(f'<td class="{cls}">{text}</td>')
        out.append(f"<tr><td>{html.escape(r)}</td>{''.join(tds)}</tr>")
    return "<table>" + "".join(out) + "</table>"


def _chosen(cells: list[Cell], lay: Layout) -> str:
    if not lay.tune:
        return "<p class=note>No key was tuned (give <code>summary.tune=KEY</code> for a swept KEY).</p>"
    rows = "".join(f"<tr><td>{html.escape(lay.row(c.keys))}</td><td>{html.escape(lay.col(c.keys))}</td>"
                   f"<td>{html.escape(c.chosen or '– (not swept there: untuned)')}</td><td>{len(c.jobs)}</td>"
                   f"<td class={'edge' if c.at_edge else ''}>{'yes: may not be tuned' if c.at_edge else ''}</td></tr>"
                   for c in cells)  # fmt: skip
    return (f"<p>{html.escape(lay.tune)} per cell, chosen by mean final val/acc over seeds among "
            f"{html.escape(', '.join(lay.tuned_values))}:</p><table><tr><th>row</th><th>column</th><th>chosen</th>"
            f"<th>seeds</th><th>at an end of the grid</th></tr>{rows}</table>")  # fmt: skip


def _study(found: dict[str, Any] | None) -> str:
    if not found:
        return ""
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td></tr>" if isinstance(v, float) else
                   f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                   for k, v in found["best_params"].items())  # fmt: skip
    return (f"<h2>Optuna study</h2><p><code>{html.escape(found['name'])}</code> in "
            f"<code>{html.escape(found['storage'])}</code>: {found['trials']} trials; the best is trial "
            f"#{found['best_trial']}, val/acc {found['best_value']:.4f}, at:</p><table>{rows}</table>")  # fmt: skip


def render(jobs: list[dict[str, Any]], cells: list[Cell], lay: Layout, title: str, found: dict | None = None,
           repeats: Sequence[str] = ()) -> str:  # fmt: skip
    """The whole page; `repeats`: the jobs counted once (once)."""
    fixed = held_fixed(jobs)
    unfinished = [j for j in jobs if j["status"] in UNFINISHED]
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{len(jobs)} jobs, {len(cells)} cells, {seed_count(jobs)} seed(s). Test accuracy (%): mean ± 95 % CI "
             "(Student t over seeds). <b>Green bold</b>: the column's best; light green: a Welch test (5 %, Holm "
             "within the column) cannot tell it from the best.</p>",
             *([f"<p class=note>{len(repeats)} jobs repeat another's settings and seed and are counted once, not "
                f"as more seeds: {html.escape('; '.join(repeats))}.</p>"] if repeats else []),
             f"<p class=note>Held fixed: {html.escape(', '.join(f'{k}={v}' for k, v in fixed.items()) or '-')}</p>",
             "<h2>Table</h2>", _table(jobs, cells, lay),
             "<h2>Heatmap</h2>", _png(heatmap(grid(jobs, cells, lay), title))]  # fmt: skip
    none = "<p class=note>No job has numbers yet.</p>"
    parts += ["<h2>Learning curves</h2>", _png(curves(cells, lay)) if cells else none]
    diag = diagnostics(cells, lay) if cells else None
    parts += ["<h2>Step-0 diagnostics across depth</h2>",
              _png(diag) if diag else "<p class=note>No step-0 diagnostics in these records.</p>"]  # fmt: skip
    parts += [
        "<h2>Chosen hyperparameters</h2>",
        _chosen(cells, lay),
        _study(found),
        "<h2>Failed, stopped and not-run jobs</h2>",
    ]
    items = "".join(f"<li>{html.escape(j['status'])}: <code>{html.escape(j['dir'])}</code>: {html.escape(why(j))}</li>"
                    for j in unfinished)  # fmt: skip
    parts.append(f"<ul>{items}</ul>" if unfinished else "<p>None.</p>")
    diverged = [j for j in jobs if j["status"] == "diverged"]
    if diverged:  # they ran to their end, and their numbers are in the table where they were chosen
        names = ", ".join(f"<code>{html.escape(j['dir'])}</code>" for j in diverged)
        parts.append(f"<p class=note>{len(diverged)} jobs diverged (their loss became NaN or rose): {names}</p>")
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style><body>{''.join(parts)}</body></html>\n")  # fmt: skip


def write_report(out: Path, jobs: list[dict[str, Any]], cells: list[Cell], lay: Layout, title: str,
                 found: dict | None = None, repeats: Sequence[str] = ()) -> None:  # fmt: skip
    write_atomic(out, render(jobs, cells, lay, title, found, repeats))
    log.info("report -> %s", out)


def gathered(dirs: list[Path]) -> tuple[list[dict[str, Any]], dict[str, list[str]], str | None, list[str]]:
    """gather, each job once (once): (jobs, order, the sweeps' summary.tune, the repeats left out); a
    FileNotFoundError where the dirs hold no job."""
    jobs, order, own_tune = gather(dirs)
    if not jobs:
        raise FileNotFoundError(f"no jobs (metrics.json or .hydra/) under {', '.join(map(str, dirs))}")
    jobs, repeats = once(jobs)
    return jobs, order, own_tune, repeats


def report_dirs(dirs: list[Path], out: Path, tune: str | None = None, found: tuple | None = None) -> None:
    """Gather the jobs of `dirs` (sweeps or single runs) into one table and write its report to `out` (`found`:
    what gathered(dirs) gave, read already). A `tune` (a --tune) must name a swept key but the seed, else
    ConfigError and nothing is written; without it, the sweeps' own summary.tune."""
    jobs, order, own_tune, repeats = gathered(dirs) if found is None else found
    if tune is not None:
        check_tune(jobs, tune, ", ".join(map(str, dirs)))
    cells, lay = summarise(jobs, tune or own_tune, order)
    title = " + ".join(f"{d.parent.name}/{d.name}" for d in dirs)
    write_report(out, jobs, cells, lay, title, repeats=repeats)
