"""Rebuild a sweep's summary and report, or gather several dirs into one report.

python -m initlab.report outputs/multirun/2026-11-30/10-00-00          # summary.{csv,md,png}, cells.csv,
                                                                       # report.html in that sweep dir
python -m initlab.report SWEEP_DIR --tune optimizer.lr                 # each cell at its own best lr
python -m initlab.report DIR1 DIR2 RUN_DIR --out study.html            # several sweeps or runs, one table
"""

import argparse
import logging
import sys
from pathlib import Path

from initlab.report.html import report_dirs
from initlab.report.summary import write_summary

log = logging.getLogger("initlab.report")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m initlab.report", description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="+", type=Path, help="sweep dirs (or single run dirs)")
    p.add_argument("--out", type=Path, help="one report over all the dirs (default: each sweep's own files)")
    p.add_argument("--tune", help="a swept key to tune per cell, e.g. optimizer.lr (default: the sweep's own)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        log.error("not a directory: %s", ", ".join(missing))
        return 1
    try:
        if args.out is not None:
            report_dirs(args.dirs, args.out, args.tune)
            return 0
        for d in args.dirs:
            if (d / "metrics.json").exists() and not (d / "multirun.yaml").exists():  # a single run: its report
                report_dirs([d], d / "report.html", args.tune)
                continue
            write_summary(d, args.tune)
            print((d / "summary.md").read_text(), end="")
    except FileNotFoundError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
