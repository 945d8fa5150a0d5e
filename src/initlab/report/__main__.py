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

from initlab.errors import InitLabError, OneLineParser, OutputError
from initlab.files import SPECIAL, not_a_file
from initlab.report.html import gathered, report_dirs
from initlab.report.summary import sweep_jobs, write_summary
from initlab.report.table import check_tune

log = logging.getLogger("initlab.report")


def single_run(d: Path) -> bool:
    return (d / "metrics.json").exists() and not (d / "multirun.yaml").exists()


def out_problem(out: Path) -> str | None:
    """Why --out cannot be the report's file, where that shows before any work: a directory, a missing folder."""
    if out.is_dir():
        return f"--out={out} is a directory; give a file path, e.g. --out={out / 'report.html'}"
    kind = not_a_file(out, follow=False)
    if kind in SPECIAL:  # /dev/full: write_atomic refuses it too, but only after the report's work
        return f"--out={out} is {kind}, not a file; give a file path"
    if not out.parent.is_dir():
        return f"--out={out}: its folder {out.parent} does not exist; create it, or give a path in an existing folder"
    return None


def path_given(text: str) -> Path:
    if not text:  # Path("") is "."
        raise argparse.ArgumentTypeError("'' is an empty path; give a file path, e.g. --out=study.html")
    return Path(text)


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m initlab.report", description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="+", type=Path, help="sweep dirs (or single run dirs)")
    p.add_argument("--out", type=path_given, help="one report over all the dirs (default: each sweep's own files)")
    p.add_argument("--tune", help="a swept key to tune per cell, e.g. optimizer.lr (default: the sweep's own)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args = p.parse_args(argv)
    except argparse.ArgumentError as e:  # no dirs, an unknown option: one line, exit 1
        log.error("%s: error: %s (see --help)", p.prog, e)
        return 1
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        log.error("not a directory: %s", ", ".join(missing))
        return 1
    problem = out_problem(args.out) if args.out is not None else None
    if problem:
        log.error("%s", problem)
        return 1
    try:
        if args.out is not None:
            try:
                report_dirs(args.dirs, args.out, args.tune)
            except OutputError as e:
                log.error("--out=%s cannot be written (%s); give a file path in a writable folder", args.out, e)
                return 1
            return 0
        # every dir read, and a --tune checked against each, before any file is written
        found = [(d, gathered([d]) if single_run(d) else sweep_jobs(d)) for d in args.dirs]
        if args.tune is not None:
            for d, jobs in found:
                check_tune(jobs[0] if isinstance(jobs, tuple) else jobs, args.tune, str(d))
        for d, jobs in found:
            if isinstance(jobs, tuple):  # a single run: its report
                report_dirs([d], d / "report.html", args.tune, jobs)
                continue
            write_summary(d, args.tune, jobs)
            print((d / "summary.md").read_text(), end="")
    except (FileNotFoundError, InitLabError) as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
