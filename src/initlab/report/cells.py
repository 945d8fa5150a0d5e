"""Cells of a sweep: each combination of the swept keys (seeds aside, and the tuned key aside), its chosen value
of the tuned key, and its test accuracy with a confidence interval, marked against its column's best.

With `summary.tune=KEY` (a swept key, e.g. optimizer.lr), each cell takes the value of KEY whose mean final
val/acc over seeds is best, never test/acc, and flags a choice at either end of the swept values (the optimum
may lie outside the grid: that cell is not tuned). A cell's column is the value of the table's column key (the
second swept key, act in an init x act grid); a cell that a two-sided Welch test at 5 %, Holm-corrected within
the column, cannot tell from the column's best is marked so.

Several dirs gathered into one table (python -m initlab.report A B --out ...) may hold jobs that never set the
tuned key (a single run, a sweep over other keys): a cell none of whose jobs set it is shown as it is, untuned
(`chosen` None); in a cell where some do, the others (at a value nobody knows) are left out, named in a log line.
"""

import csv
import io
import logging
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from initlab.report.stats import holm, mean_ci, welch_p

log = logging.getLogger(__name__)
COLUMNS = ("tuned_key", "chosen", "n_seeds", "test_acc_mean", "ci_low", "ci_high", "best_in_column", "at_edge")


@dataclass
class Cell:
    keys: dict[str, str]  # the cell's value of each cell key
    chosen: str | None = None  # the tuned key's value picked by mean val/acc (None: nothing tuned)
    at_edge: bool = False  # the chosen value is the first or last swept: the optimum may lie outside
    jobs: list[dict[str, Any]] = field(default_factory=list)  # the jobs at the chosen value, one a seed
    mean: float = float("nan")  # test/acc over those jobs, with its 95 % CI
    low: float = float("nan")
    high: float = float("nan")
    best_in_column: bool | None = None  # the column's best, or one a test cannot tell from it (None: n < 2)
    best: bool = False  # the column's best itself

    @property
    def tests(self) -> list[float]:
        return [j["metrics"]["test/acc"] for j in self.jobs]


def _number(job: dict[str, Any], key: str) -> float | None:
    v = job["metrics"].get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def _mean_val(jobs: list[dict[str, Any]]) -> float | None:
    accs = [x for x in (_number(j, "val/acc") for j in jobs) if x is not None]
    return statistics.fmean(accs) if accs else None


def numeric(values: list[str]) -> bool:
    try:
        return all(math.isfinite(float(v)) for v in values)
    except ValueError:
        return False


def ordered(values: list[str]) -> list[str]:
    """Swept values in their natural order: by number where they are all numbers, else as given."""
    return sorted(values, key=float) if numeric(values) else list(values)


def _choose(by_value: dict[str, list[dict]], swept: list[str]) -> tuple[str, bool]:
    """The value with the best mean final val/acc over its seeds (the smaller on a tie), and whether it sits at
    either end of the swept values: numbers only (act=relu,tanh has no ends, nothing lies beyond them)."""
    values = [v for v in swept if v in by_value] + [v for v in by_value if v not in swept]  # gathered dirs: any
    means = {v: m for v in values if (m := _mean_val(by_value[v])) is not None}
    chosen = max(means, key=lambda v: (means[v], -values.index(v))) if means else values[0]
    return chosen, len(swept) > 1 and numeric(swept) and chosen in (swept[0], swept[-1])


def build_cells(jobs: list[dict[str, Any]], keys: list[str], tune: str | None,
                tuned_values: list[str]) -> list[Cell]:  # fmt: skip
    """The sweep's cells, in the order their first jobs come (the sweep's order), each with its statistics."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for j in jobs:
        if _number(j, "test/acc") is not None:  # failed and not-run jobs are listed apart, not averaged in
            groups[tuple(str(j["choices"].get(k)) for k in keys)].append(j)
    cells = []
    for values, members in groups.items():
        cell = Cell(dict(zip(keys, values, strict=True)))
        if tune:
            by_value: dict[str, list[dict]] = defaultdict(list)
            for j in members:
                if j["choices"].get(tune) is not None:
                    by_value[str(j["choices"][tune])].append(j)
            if by_value:  # else: no job of the cell set the tuned key: the cell is shown untuned
                cell.chosen, cell.at_edge = _choose(by_value, ordered(tuned_values))
                unset = [j["dir"] for j in members if j["choices"].get(tune) is None]
                if unset:
                    log.warning("%s: no %s (not swept there); left out of their cell, which is tuned over %s",
                                ", ".join(unset), tune, ", ".join(by_value))  # fmt: skip
                members = by_value[cell.chosen]
        cell.jobs = members
        cell.mean, cell.low, cell.high = mean_ci(cell.tests)
        cells.append(cell)
    return cells


def mark_best(cells: list[Cell], column_key: str | None) -> None:
    """Per column: the best mean test/acc, and every cell a Holm-corrected Welch test cannot tell from it."""
    columns: dict[str, list[Cell]] = defaultdict(list)
    for c in cells:
        columns[c.keys.get(column_key, "") if column_key else ""].append(c)
    for members in columns.values():
        best = max(members, key=lambda c: c.mean)
        others = [c for c in members if c is not best]
        p_values = [welch_p(c.tests, best.tests) for c in others]
        best.best = best.best_in_column = True
        if any(p is None for p in p_values):  # a cell of one seed: no test can say
            for c in others:
                c.best_in_column = None
            continue
        for c, rejected in zip(others, holm(p_values), strict=True):
            c.best_in_column = not rejected


def to_csv(cells: list[Cell], keys: list[str], tune: str | None) -> str:
    """cells.csv: one row a cell; `best_in_column` is true where the cell is its column's best or cannot be told
    from it, `at_edge` where the chosen value is at an end of the swept values. A cell of one seed has no interval:
    ci_low and ci_high are left empty (a zero-width one would claim a certainty nothing measured)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([*keys, *COLUMNS])
    for c in cells:
        flag = "" if c.best_in_column is None else str(c.best_in_column).lower()
        ci = [f"{c.low:.6f}", f"{c.high:.6f}"] if len(c.jobs) > 1 else ["", ""]
        w.writerow([*(c.keys[k] for k in keys), tune or "", c.chosen or "", len(c.jobs), f"{c.mean:.6f}", *ci,
                    flag, str(c.at_edge).lower()])  # fmt: skip
    return out.getvalue()
