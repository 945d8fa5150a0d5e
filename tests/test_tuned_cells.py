"""Each cell at its own best learning rate, checked by hand on a synthetic sweep of 2 inits x 2 acts x 3 lrs x 3
seeds: the chosen value (by val/acc only), the mean and its Student-t interval, the marks against the column's best
(Welch, Holm), the edge flags, and cells.csv."""

import csv
import math
import random
from pathlib import Path

import pytest

from initlab.report.summary import write_summary
from initlab.report.sweep import collect
from initlab.report.table import summarise
from tests.conftest import fake_job, write_multirun

LRS = ("0.01", "0.1", "1.0")
VAL = {  # (init, act): mean val/acc at each lr -> the choice: tanh/a interior, b at the top edge; relu/a bottom edge
    ("a", "tanh"): (0.80, 0.90, 0.85),
    ("b", "tanh"): (0.70, 0.75, 0.88),
    ("a", "relu"): (0.92, 0.85, 0.50),
    ("b", "relu"): (0.90, 0.93, 0.60),
}
CHOSEN = {("a", "tanh"): "0.1", ("b", "tanh"): "1.0", ("a", "relu"): "0.01", ("b", "relu"): "0.1"}
TEST = {  # test/acc of the 3 seeds at the chosen lr
    ("a", "tanh"): (0.90, 0.91, 0.92),
    ("b", "tanh"): (0.86, 0.87, 0.88),
    ("a", "relu"): (0.95, 0.96, 0.94),
    ("b", "relu"): (0.93, 0.945, 0.96),
}
T_975_2 = 4.302652729911275  # Student's t, 97.5 % quantile, 2 degrees of freedom (tables; scipy.stats.t.ppf)


def make_sweep(root: Path, test_of: dict | None = None) -> Path:
    """The sweep dir: 36 jobs; val/acc = the cell's mean at that lr + a seed offset that sums to 0 over seeds."""
    for (init, act), means in VAL.items():
        for lr, val in zip(LRS, means, strict=True):
            for seed in range(3):
                test = TEST[init, act][seed] if lr == CHOSEN[init, act] else 0.5 + 0.1 * seed  # others: arbitrary
                if test_of is not None:
                    test = test_of[init, act, lr, seed]
                m = {"init": init, "act": act, "seed": seed, "status": "ok", "val/acc": val + 0.01 * (seed - 1),
                     "test/acc": test, "val_history": [[10, val - 0.1], [20, val + 0.01 * (seed - 1)]]}  # fmt: skip
                fake_job(root, [f"init={init}", f"act={act}", f"optimizer.lr={lr}", f"seed={seed}"], m)
    write_multirun(root, ["init=a,b", "act=tanh,relu", f"optimizer.lr={','.join(LRS)}", "seed=0,1,2"],
                   summary={"tune": "optimizer.lr"})  # fmt: skip
    return root


def cells_by_key(root: Path) -> dict:
    jobs = collect(root)
    cells, _ = summarise(jobs, "optimizer.lr", {"optimizer.lr": list(LRS)})
    return {(c.keys["init"], c.keys["act"]): c for c in cells}


def test_each_cell_takes_the_lr_with_the_best_mean_val_acc(tmp_path: Path) -> None:
    cells = cells_by_key(make_sweep(tmp_path))
    assert {k: c.chosen for k, c in cells.items()} == CHOSEN
    assert {k: c.at_edge for k, c in cells.items()} == {("a", "tanh"): False, ("b", "tanh"): True,
                                                         ("a", "relu"): True, ("b", "relu"): False}  # fmt: skip
    assert all(len(c.jobs) == 3 for c in cells.values())


def test_a_tie_takes_the_smaller_value(tmp_path: Path) -> None:
    for lr, val in (("0.3", 0.9), ("0.1", 0.9), ("0.03", 0.8)):  # swept largest first; 0.3 and 0.1 tie
        fake_job(tmp_path, ["init=a", f"optimizer.lr={lr}"], {"init": "a", "act": "relu", "seed": 0, "status": "ok",
                                                                "val/acc": val, "test/acc": 0.9})  # fmt: skip
    write_multirun(tmp_path, ["init=a", "optimizer.lr=0.3,0.1,0.03"], summary={"tune": "optimizer.lr"})
    (cell,), _ = summarise(collect(tmp_path), "optimizer.lr", {"optimizer.lr": ["0.3", "0.1", "0.03"]})
    assert cell.chosen == "0.1" and not cell.at_edge  # the values in numeric order: 0.1 is interior


def test_the_mean_and_its_95_percent_interval_by_hand(tmp_path: Path) -> None:
    cell = cells_by_key(make_sweep(tmp_path))["a", "tanh"]
    half = T_975_2 * 0.01 / math.sqrt(3)  # sd of 0.90, 0.91, 0.92 is 0.01
    assert cell.mean == pytest.approx(0.91, abs=1e-12)
    assert (cell.low, cell.high) == pytest.approx((0.91 - half, 0.91 + half), abs=1e-9)
    assert half == pytest.approx(0.0248414, abs=1e-7)


def test_cells_that_cannot_be_told_from_their_columns_best(tmp_path: Path) -> None:
    cells = cells_by_key(make_sweep(tmp_path))
    # tanh: a (0.91) beats b (0.87): Welch t = 0.04 / sqrt(2 * 0.01^2 / 3) = 4.90, 4 df, p = 0.008 < 0.05: apart
    assert cells["a", "tanh"].best and cells["a", "tanh"].best_in_column
    assert cells["b", "tanh"].best_in_column is False
    # relu: a (0.950) vs b (0.945, sd 0.015): t = 0.48, p = 0.66: b cannot be told from the best
    assert cells["a", "relu"].best and cells["b", "relu"].best_in_column is True and not cells["b", "relu"].best


def test_test_accuracy_never_influences_the_choice(tmp_path: Path) -> None:
    base = {(i, a, lr, s): (TEST[i, a][s] if lr == CHOSEN[i, a] else 0.5) for (i, a) in VAL for lr in LRS
            for s in range(3)}  # fmt: skip
    values = list(base.values())
    random.Random(0).shuffle(values)
    permuted = dict(zip(base, values, strict=True))
    for key in [k for k in permuted if k[2] != CHOSEN[k[0], k[1]]][:6]:
        permuted[key] = 0.99  # even a far better test/acc at another lr does not move the choice
    cells = cells_by_key(make_sweep(tmp_path, permuted))
    assert {k: c.chosen for k, c in cells.items()} == CHOSEN


def test_cells_csv_has_a_row_per_cell_with_its_choice_and_statistics(tmp_path: Path) -> None:
    root = make_sweep(tmp_path)
    write_summary(root)
    rows = list(csv.DictReader((root / "cells.csv").open()))
    assert list(rows[0]) == ["init", "act", "tuned_key", "chosen", "n_seeds", "test_acc_mean", "ci_low", "ci_high",
                             "best_in_column", "at_edge"]  # fmt: skip
    by = {(r["init"], r["act"]): r for r in rows}
    assert len(rows) == 4 and {k: r["chosen"] for k, r in by.items()} == CHOSEN
    assert by["a", "tanh"]["tuned_key"] == "optimizer.lr" and by["a", "tanh"]["n_seeds"] == "3"
    assert float(by["a", "tanh"]["test_acc_mean"]) == pytest.approx(0.91)
    assert float(by["a", "tanh"]["ci_high"]) == pytest.approx(0.91 + T_975_2 * 0.01 / math.sqrt(3), abs=1e-6)
    assert [by[k]["best_in_column"] for k in VAL] == ["true", "false", "true", "true"]
    assert [by[k]["at_edge"] for k in VAL] == ["false", "true", "true", "false"]
    md = (root / "summary.md").read_text()
    assert "91.00 ± 2.48 @0.1" in md and "87.00 ± 2.48 @1.0 (edge)" in md and "≈" in md
    assert "Each cell at its own best optimizer.lr (of 0.01, 0.1, 1.0), chosen by mean final val/acc" in md


def test_without_tuning_cells_csv_has_the_same_columns_and_no_choice(tmp_path: Path) -> None:
    for init in ("a", "b"):
        for seed in range(2):
            m = {"init": init, "act": "relu", "seed": seed, "status": "ok", "val/acc": 0.9, "test/acc": 0.9 + seed / 50}
            fake_job(tmp_path, [f"init={init}", f"seed={seed}"], m)
    write_multirun(tmp_path, ["init=a,b", "seed=0,1"])
    write_summary(tmp_path)
    rows = list(csv.DictReader((tmp_path / "cells.csv").open()))
    assert list(rows[0])[1:] == ["tuned_key", "chosen", "n_seeds", "test_acc_mean", "ci_low", "ci_high",
                                 "best_in_column", "at_edge"]  # fmt: skip
    assert [(r["init"], r["chosen"], r["tuned_key"], r["n_seeds"]) for r in rows] == [("a", "", "", "2"),
                                                                                      ("b", "", "", "2")]  # fmt: skip
    assert float(rows[0]["ci_low"]) < 0.91 < float(rows[0]["ci_high"])


def test_a_cell_of_one_seed_has_no_interval_in_cells_csv(tmp_path: Path) -> None:
    for init, acc in (("a", 0.9), ("b", 0.8)):
        m = {"init": init, "act": "relu", "seed": 0, "status": "ok", "val/acc": acc, "test/acc": acc}
        fake_job(tmp_path, [f"init={init}"], m)
    write_multirun(tmp_path, ["init=a,b"])
    write_summary(tmp_path)
    rows = list(csv.DictReader((tmp_path / "cells.csv").open()))
    assert [(r["test_acc_mean"], r["ci_low"], r["ci_high"], r["best_in_column"]) for r in rows] == [
        ("0.900000", "", "", "true"),
        ("0.800000", "", "", ""),
    ]  # one seed: no interval, no test can tell them apart


def test_the_curve_of_a_cell_comes_from_its_chosen_lr(tmp_path: Path) -> None:
    from initlab.report.html import curves
    from initlab.report.table import summarise as cells_of

    jobs = collect(make_sweep(tmp_path))
    cells, lay = cells_of(jobs, "optimizer.lr", {"optimizer.lr": list(LRS)})
    fig = curves(cells, lay)
    tanh = next(ax for ax in fig.axes if ax.get_title() == "act = tanh")
    line = next(line for line in tanh.lines if line.get_label() == "a")
    assert list(line.get_ydata()) == pytest.approx([80.0, 90.0])  # lr 0.1's mean val/acc, in %, at steps 10, 20
    assert [int(x) for x in line.get_xdata()] == [10, 20]


def test_a_sweep_that_names_the_seed_as_its_tuned_key_is_not_tuned(tmp_path: Path, caplog) -> None:
    """summary.tune=seed would show each cell at its luckiest seed: the table stays over all seeds, said in a line."""
    for init in ("a", "b"):
        for seed, acc in ((0, 0.90), (1, 0.95)):
            m = {"init": init, "act": "relu", "seed": seed, "status": "ok", "val/acc": acc, "test/acc": acc}
            fake_job(tmp_path, [f"init={init}", f"seed={seed}"], m)
    write_multirun(tmp_path, ["init=a,b", "seed=0,1"], summary={"tune": "seed"})
    write_summary(tmp_path)
    assert "summary.tune=seed: cannot tune the seed: each cell would be its luckiest seed; nothing tuned" in caplog.text
    md = (tmp_path / "summary.md").read_text()
    assert "| a | **92.50 ± 31.77** |" in md and "@" not in md and "over 2 seeds" in md  # not 95.00 @1
    rows = list(csv.DictReader((tmp_path / "cells.csv").open()))
    assert [(r["tuned_key"], r["chosen"], r["n_seeds"]) for r in rows] == [("", "", "2"), ("", "", "2")]
