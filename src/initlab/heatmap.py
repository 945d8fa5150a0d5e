"""The sweep summary as a picture (summary.png): matplotlib is imported only here, when a sweep ends."""

import io
from pathlib import Path
from typing import TYPE_CHECKING

from initlab.record import write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# (row key, col key, row labels, col labels, {(row, col): (mean test acc %, cell text)}), as summary._grid gives
Grid = tuple[str, str, list[str], list[str], dict[tuple[str, str], tuple[float, str]]]


def to_png(grid: Grid, path: Path, title: str, theory: dict | None = None) -> None:
    buf = io.BytesIO()
    figure(grid, title, theory).savefig(buf, format="png", dpi=120)
    write_atomic(path, buf.getvalue())


def depth_curve(grid: Grid, theory: dict) -> tuple[list[float], list[float]] | None:
    """Mean-field trainable depth 6 xi_c(sigma_w2), in the heatmap's cell coordinates (columns sigma_w2,
    rows depth; numeric, increasing), or None when the table is not laid out that way."""
    import numpy as np

    from initlab.theory import mean_field

    row_key, col_key, rows, cols, _ = grid
    if not (row_key.endswith("depth") and col_key.endswith("sigma_w2")):
        return None
    depths, s_w2 = [float(r) for r in rows], [float(c) for c in cols]
    xs = np.linspace(min(s_w2), max(s_w2), 80)
    ys = [6 * mean_field(theory.get("act", "tanh"), float(x), float(theory.get("sigma_b2", 0.0))).xi_c for x in xs]
    col_pos = np.interp(xs, s_w2, range(len(cols)))  # sorted columns assumed, as sweeps list them
    row_pos = [np.interp(y, depths, range(len(rows))) if y <= max(depths) * 1.05 else np.nan for y in ys]
    return list(col_pos), list(row_pos)


def figure(grid: Grid, title: str, theory: dict | None = None) -> "Figure":
    """A heatmap of a sweep's table: rows down, columns across; colour = mean test accuracy, numbers in the
    cells, a colour bar."""
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend lookup

    row_key, col_key, rows, cols, cells = grid
    values = np.array([[cells.get((r, c), (np.nan, ""))[0] for c in cols] for r in rows])
    fig = Figure(figsize=(1.6 + 1.5 * len(cols), 1.2 + 0.55 * len(rows)), constrained_layout=True)
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto")
    lo, hi = (
        np.nanmin(values) if np.isfinite(values).any() else 0,
        np.nanmax(values) if np.isfinite(values).any() else 1,
    )
    for (i, r), (k, c) in ((a, b) for a in enumerate(rows) for b in enumerate(cols)):
        mean, text = cells.get((r, c), (np.nan, "–"))
        light = mean == mean and mean < lo + 0.5 * (hi - lo)  # white text on the dark end of viridis
        ax.text(k, i, text.replace(" ± ", "\n± "), ha="center", va="center", fontsize=8, color="w" if light else "k")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(col_key)
    ax.set_ylabel(row_key)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="test accuracy (%)")
    curve = depth_curve(grid, theory) if theory else None
    if curve:  # below the curve (towards small depth) mean-field theory expects the net to train
        ax.plot(*curve, color="w", linestyle="--", linewidth=2, label="6 ξ_c (mean-field theory)")
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.legend(loc="lower right", fontsize=7, framealpha=0.6)
    return fig
