"""Plot the step-0 per-layer diagnostics of a sweep (e.g. experiment=deep) into one PNG.

    python scripts/plot_diagnostics.py outputs/multirun/deep/<stamp> docs/deep_diagnostics.png

Reads each job's TensorBoard events (diag/act{i}/..., diag/fc{i}/...: the MLP's module names) and draws,
per init/act pair, how activation
std, saturation (tanh) or dead units (relu), and gradient norm change with depth before any update.
"""

import argparse
import logging
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from initlab.report.sweep import load_job

log = logging.getLogger("plot_diagnostics")
PANELS = [("act_std", "activation std", True), ("unhealthy", "saturated (tanh) / dead (relu) fraction", False),
          ("grad_norm", "|dLoss/dW|", True)]  # fmt: skip


def step0(job_dir: Path) -> dict[str, list[float]]:
    """{stat: [value at step 0 for layer 1, 2, ...]} from a job's TensorBoard events."""
    acc = EventAccumulator(str(job_dir), size_guidance={"scalars": 0}).Reload()
    tags = acc.Tags()["scalars"]
    out: dict[str, list[float]] = {}
    for stat in ("act_std", "saturated_frac", "dead_frac", "grad_norm"):
        prefix = "fc" if stat == "grad_norm" else "act"  # gradients of the Linear feeding activation i
        layers = sorted((t for t in tags if re.fullmatch(rf"diag/{prefix}\d+/{stat}", t)),
                        key=lambda t: int(t.split("/")[1][len(prefix):]))  # fmt: skip
        out[stat] = [next(e.value for e in acc.Scalars(t) if e.step == 0) for t in layers]
    out["unhealthy"] = out["saturated_frac"] or out["dead_frac"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("out", type=Path)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    for job_dir in sorted(d for d in args.sweep_dir.iterdir() if (d / "metrics.json").is_file()):
        job = load_job(job_dir, ())
        stats, label = step0(job_dir), f"{job['choices']['init']}/{job['choices']['act']}"
        acc = job["metrics"].get("test/acc")
        label += f" ({acc * 100:.1f} %)" if acc is not None else ""
        style = "-" if job["choices"]["act"] == "relu" else "--"
        for ax, (key, title, log_scale) in zip(axes, PANELS, strict=True):
            ax.plot(range(1, len(stats[key]) + 1), stats[key], style, marker="o", ms=3, label=label)
            ax.set(title=f"{title} at step 0", xlabel="hidden layer", yscale="log" if log_scale else "linear")
    axes[-1].legend(fontsize=7, title="init/act (test acc)", title_fontsize=7)
    fig.suptitle(f"Per-layer diagnostics before training: {args.sweep_dir}", fontsize=9)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
