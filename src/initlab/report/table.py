"""A sweep's table: which swept keys are its rows and columns, which jobs make each cell, and what each cell says.

Rows are `init` (or the first swept key), columns `act` (or the second); further keys join the row label; seeds
(and the tuned key, with `summary.tune`) are folded into a cell (initlab.report.cells).
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from initlab.errors import ConfigError
from initlab.report.cells import Cell, build_cells, mark_best
from initlab.report.heatmap import Grid
from initlab.report.sweep import valid_seed
from initlab.run.record import RUN_KEYS

log = logging.getLogger(__name__)
CHOICES = tuple(k for k in RUN_KEYS if k != "seed")  # true names from metrics.json, even when set via a combo
UNFINISHED = ("failed", "interrupted", "not run", "stopped")  # listed under a table, with why


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

    # a group choice that others imply adds nothing (combo=x sets init and act); a value (lr=...) always counts
    return [k for k in keys if k in CHOICES or k == "seed" or "." in k or not implied(k)]


@dataclass
class Layout:
    """How a sweep's table is laid out: rows, the column key, the keys that make a cell, the tuned key."""

    row_keys: list[str]
    col_key: str
    tune: str | None
    tuned_values: list[str]

    @property
    def cell_keys(self) -> list[str]:
        return [self.row_keys[0], *([self.col_key] if self.col_key else []), *self.row_keys[1:]]

    def row(self, keys: dict[str, str]) -> str:
        return ", ".join(keys[k] if i == 0 else f"{k}={keys[k]}" for i, k in enumerate(self.row_keys))

    def col(self, keys: dict[str, str]) -> str:
        return keys[self.col_key] if self.col_key else "test acc"


SEED_TUNED = "cannot tune the seed: each cell would be its luckiest seed"


def _settings(jobs: list[dict[str, Any]]) -> str:
    return ", ".join(k for k in swept_keys(jobs) if k != "seed") or "none"


def check_tune(jobs: list[dict[str, Any]], tune: str, where: str) -> None:
    """A --tune the user gave must name a setting these jobs swept: ConfigError, in one line, before any file."""
    if tune == "seed":
        raise ConfigError(f"--tune=seed: {SEED_TUNED}; give a swept setting of {where} (swept: {_settings(jobs)})")
    if tune not in swept_keys(jobs):
        raise ConfigError(f"--tune={tune} is not a swept key of {where} (swept: {_settings(jobs)}); give one of those")


def layout(jobs: list[dict[str, Any]], tune: str | None, order: dict[str, list[str]]) -> Layout:
    swept = swept_keys(jobs)
    if tune == "seed":  # the sweep's own summary.tune (a --tune is refused before: check_tune)
        log.error("summary.tune=seed: %s; nothing tuned (swept: %s)", SEED_TUNED, _settings(jobs))
        tune = None
    elif tune is not None and tune not in swept:
        log.error("summary.tune=%s is not a swept key (swept: %s); nothing tuned", tune, ", ".join(swept) or "none")
        tune = None
    keys = [k for k in swept if k not in ("seed", tune)] or ["init"]
    have = {str(j["choices"][tune]) for j in jobs if j["choices"].get(tune) is not None} if tune else set()
    tuned = [*order.get(tune, []), *sorted(have - set(order.get(tune, [])))] if tune else []
    return Layout([keys[0], *keys[2:]], keys[1] if len(keys) > 1 else "", tune, tuned)


def cell_text(cell: Cell, tune: str | None, statuses: set[str]) -> str:
    """'97.42 ± 0.12' (mean ± 95 % CI half-width, in %), the chosen value, flags for edges and for the statuses
    other than ok of the cell's jobs (at the chosen value)."""
    text = f"{cell.mean * 100:.2f}" + (f" ± {(cell.high - cell.mean) * 100:.2f}" if len(cell.jobs) > 1 else "")
    if tune and cell.chosen is not None:  # None: no job of the cell set the tuned key
        text += f" @{cell.chosen}" + (" (edge)" if cell.at_edge else "")
    return text + "".join(f" ({s})" for s in sorted(statuses - {"ok"}))


def place(job: dict[str, Any], lay: Layout) -> tuple[str, str]:
    """(row label, column label) of the cell a job belongs to."""
    keys = {k: str(job["choices"].get(k)) for k in lay.cell_keys}
    return lay.row(keys), lay.col(keys)


def grid(jobs: list[dict[str, Any]], cells: list[Cell], lay: Layout) -> Grid:
    """The table as (row key, col key, rows, cols, {(row, col): (mean %, text)}) in the sweep's order; a cell
    whose jobs all failed shows their statuses."""
    members: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for j in jobs:
        members[place(j, lay)].append(j)
    shown = {(lay.row(c.keys), lay.col(c.keys)): c for c in cells}
    out: dict[tuple[str, str], tuple[float, str]] = {}
    for at, js in members.items():
        cell = shown.get(at)
        if cell is None:
            out[at] = (float("nan"), "/".join(sorted({j["status"] for j in js})))
            continue
        chosen = [j for j in js if cell.chosen is None or str(j["choices"].get(lay.tune)) == cell.chosen]
        out[at] = (cell.mean * 100, cell_text(cell, lay.tune, {j["status"] for j in chosen}))
    rows, cols = list(dict.fromkeys(r for r, _ in out)), list(dict.fromkeys(c for _, c in out))
    return ", ".join(lay.row_keys), lay.col_key, rows, cols, out


def why(job: dict[str, Any]) -> str:
    """Why a job did not run to its end: its error, its reason, or that it left no record."""
    told = job["metrics"].get("error") or job["metrics"].get("reason")
    return str(told or ("no metrics.json" if job["status"] == "not run" else "its metrics.json gives no reason"))


def seed_count(jobs: list[dict[str, Any]]) -> int:
    """How many seeds the jobs that ran were run with: valid seeds only (an integer in [0, 2**32 - 1])."""
    seeds = (j["choices"].get("seed") for j in jobs if j["status"] != "not run")
    return len({int(s) for s in seeds if s is not None and valid_seed(s)})


def held_fixed(jobs: list[dict[str, Any]]) -> dict[str, str]:
    """The run keys (init, act, model, data, optimizer, scheduler, seed) every job shares: what a table did not
    vary."""
    ran = [j for j in jobs if j["status"] != "not run"] or jobs
    values = {k: {str(j["metrics"].get(k, j["choices"].get(k))) for j in ran} for k in RUN_KEYS}
    return {k: v.pop() for k, v in values.items() if len(v) == 1 and "None" not in v}


def summarise(jobs: list[dict[str, Any]], tune: str | None, order: dict[str, list[str]]) -> tuple[list[Cell], Layout]:
    """The cells of these jobs and the table's layout, each cell marked against its column's best."""
    lay = layout(jobs, tune, order)
    cells = build_cells(jobs, lay.cell_keys, lay.tune, lay.tuned_values)
    mark_best(cells, lay.col_key or None)
    return cells, lay
