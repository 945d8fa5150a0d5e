"""Time the project's default run against two plain-PyTorch references, interleaved, and check the goals.

    python scripts/benchmark.py --data-dir ../shared/data              # single runs: tutorial, floor, project
    python scripts/benchmark.py --data-dir ../shared/data --grid       # + the 12-job joblib grid
    python scripts/benchmark.py --data-dir ../shared/data --cnn        # only model=cnn against the same CNN, bare
    python scripts/benchmark.py --data-dir DIR --repeats 1 --smoke     # quick plumbing check (no goals)
    python scripts/benchmark.py --data-dir DIR --grid --device cuda    # all of it on one GPU (trainer=gpu)

Procedures run in turn (A B C A B C ...) as whole processes, imports included; each time is a median.
Goals (exit 1 if missed): project <= 1.3x floor with test acc >= 97 %; grid <= 0.1x twelve sequential
tutorial runs and <= 1.2x perfect scaling (12 x project run / cores). With --device cuda: test acc >= 97 %
and the grid in < 60 s; the ratios are reported.
"""

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from initlab.run.build import usable_cores  # imports Hydra, not torch: the benchmark process stays light

log = logging.getLogger("benchmark")
ROOT = Path(__file__).resolve().parents[1]
GRID = ["init=normal,lecun,xavier,kaiming", "act=sigmoid,tanh,relu"]


def timed(cmd: list[str]) -> tuple[float, str]:
    """-> (wall seconds, stdout) of one whole process; raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, proc.stdout


def reference(name: str, args: argparse.Namespace) -> dict:
    script = str(ROOT / "scripts" / "references.py")
    cmd = [sys.executable, script, name, "--data-dir", args.data_dir, "--iters", str(args.iters)]
    wall, out = timed([*cmd, "--device", args.device])
    return {"wall": wall, "acc": json.loads(out.strip().splitlines()[-1])["test_acc"]}


def trainer(args: argparse.Namespace) -> list[str]:
    """The overrides every project run gets: the GPU preset on cuda, then the user's extras."""
    return (["trainer=gpu"] if args.device == "cuda" else []) + args.extra


def project(args: argparse.Namespace, run_dir: Path) -> dict:
    launched = time.time()
    cmd = [sys.executable, "train.py", f"data.data_dir={args.data_dir}", f"hydra.run.dir={run_dir}", *trainer(args)]
    wall, _ = timed(cmd)
    m = json.loads((run_dir / "metrics.json").read_text())
    return {"wall": wall, "acc": m["test/acc"], "startup": m["first_step_unix"] - launched}


def grid(args: argparse.Namespace, sweep: Path) -> dict:
    cmd = [sys.executable, "train.py", "-m", *GRID, "hydra/launcher=joblib", f"data.data_dir={args.data_dir}"]
    wall, _ = timed([*cmd, f"hydra.sweep.dir={sweep}", *trainer(args)])
    accs = [json.loads(p.read_text())["test/acc"] for p in sweep.glob("*/metrics.json")]
    if len(accs) != 12:
        raise RuntimeError(f"grid wrote {len(accs)} metrics.json files, expected 12")
    return {"wall": wall, "acc": min(accs)}


def cnn_runs(args: argparse.Namespace, tmp: Path) -> None:
    """model=cnn against a bare loop of the same CNN (2750 steps each, as the project's 5 epochs of 55k)."""
    walls: dict[str, list[float]] = {"cnn floor": [], "model=cnn": []}
    for i in range(args.repeats):
        cmd = [sys.executable, str(ROOT / "scripts" / "references.py"), "cnn", "--data-dir", args.data_dir]
        walls["cnn floor"].append(timed([*cmd, "--iters", str(args.iters)])[0])
        run_dir = tmp / f"cnn{i}"
        cmd = [sys.executable, "train.py", "model=cnn", f"data.data_dir={args.data_dir}", f"hydra.run.dir={run_dir}"]
        walls["model=cnn"].append(timed([*cmd, *args.extra])[0])
        log.info("cnn round %d: %s", i + 1, {k: round(v[-1], 2) for k, v in walls.items()})
    ratios = [p / f for p, f in zip(walls["model=cnn"], walls["cnn floor"], strict=True)]
    acc = json.loads((tmp / "cnn0" / "metrics.json").read_text())["test/acc"]
    log.info("cnn floor %.2f s, model=cnn %.2f s (test acc %.4f): model=cnn/cnn floor %.2fx (median of per-round "
             "ratios)", statistics.median(walls["cnn floor"]), statistics.median(walls["model=cnn"]), acc,
             statistics.median(ratios))  # fmt: skip


def single_runs(args: argparse.Namespace, tmp: Path) -> dict[str, list[dict]]:
    """A B C A B C ...: interleaved, so drift in machine load hits all three alike."""
    runs: dict[str, list[dict]] = {"tutorial": [], "floor": [], "project": []}
    for i in range(args.repeats):
        for name in ("tutorial", "floor"):
            runs[name].append(reference(name, args))
        runs["project"].append(project(args, tmp / f"run{i}"))
        log.info("round %d: %s", i + 1, {k: round(v[-1]["wall"], 2) for k, v in runs.items()})
    return runs


def report(runs: dict[str, list[dict]], g: dict | None, cores: int, device: str) -> dict[str, bool]:
    """Log medians, ratios and accuracies; -> {goal: met}."""
    med = {k: statistics.median(r["wall"] for r in v) for k, v in runs.items()}
    acc = {k: statistics.median(r["acc"] for r in v) for k, v in runs.items()}
    log.info("machine: %d cores, %s, device %s; medians of %d runs", cores, os.uname().machine, device_name(device),
             len(runs["project"]))  # fmt: skip
    for k in runs:
        log.info("%-9s %6.2f s   test acc %.4f", k, med[k], acc[k])
    log.info(
        "start-up (launch -> first training step): %.2f s", statistics.median(r["startup"] for r in runs["project"])
    )

    def paired(a: str, b: str) -> float:  # median of per-round ratios: each pair ran back to back
        return statistics.median(x["wall"] / y["wall"] for x, y in zip(runs[a], runs[b], strict=True))

    ratio = paired("project", "floor")
    log.info("project/floor %.2fx   project/tutorial %.2fx   floor/tutorial %.2fx  (medians of per-round ratios)",
             ratio, paired("project", "tutorial"), paired("floor", "tutorial"))  # fmt: skip
    goals = {"project test acc >= 0.97": acc["project"] >= 0.97}
    if device == "cpu":
        goals["project <= 1.3x floor"] = ratio <= 1.3
    if g is not None:
        goals |= grid_goals(g, med, cores, device)
    for goal, ok in goals.items():
        log.info("%s %s", "PASS" if ok else "MISS", goal)
    return goals


def grid_goals(g: dict, med: dict[str, float], cores: int, device: str) -> dict[str, bool]:
    """Log the grid against twelve sequential tutorials and perfect scaling; -> {goal: met}."""
    seq, perfect = 12 * med["tutorial"], 12 * med["project"] / cores
    log.info("grid (12 jobs, joblib): %.2f s = %.3fx 12 sequential tutorials (%.1f s), %.2fx perfect scaling "
             "(%.1f s); worst test acc %.4f", g["wall"], g["wall"] / seq, seq, g["wall"] / perfect, perfect,
             g["acc"])  # fmt: skip
    if device != "cpu":
        return {"grid < 60 s on one GPU": g["wall"] < 60}
    return {
        "grid <= 0.1x sequential tutorials": g["wall"] <= 0.1 * seq,
        "grid <= 1.2x perfect scaling": g["wall"] <= 1.2 * perfect,
    }


def device_name(device: str) -> str:
    if device == "cpu":
        return "cpu"
    import torch  # only here: the benchmark itself stays light

    return torch.cuda.get_device_name(0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--iters", type=int, default=3000, help="reference iterations (3000 = the classic run)")
    p.add_argument("--grid", action="store_true", help="also time the 12-job grid with hydra/launcher=joblib")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where references and project run")
    p.add_argument("--cnn", action="store_true", help="only time model=cnn against a bare loop of the same CNN")
    p.add_argument("--smoke", action="store_true", help="report only; do not check the goals")
    p.add_argument("extra", nargs="*", help="extra overrides for train.py, e.g. trainer.max_epochs=1")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cores = usable_cores()
    with tempfile.TemporaryDirectory() as tmp:
        if args.cnn:
            cnn_runs(args, Path(tmp))
            return 0
        runs = single_runs(args, Path(tmp))
        g = grid(args, Path(tmp) / "grid") if args.grid else None
    goals = report(runs, g, cores, args.device)
    return 0 if args.smoke or all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
