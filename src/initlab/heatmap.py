"""The sweep summary as a picture (summary.png): matplotlib is imported only here, when a sweep ends."""

import io
from pathlib import Path
from typing import TYPE_CHECKING

from initlab.record import write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# (row key, col key, row labels, col labels, {(row, col): (mean test acc %, cell text)}), as summary._grid gives
Grid = tuple[str, str, list[str], list[str], dict[tuple[str, str], tuple[float, str]]]


def to_png(grid: Grid, path: Path, title: str) -> None:
    buf = io.BytesIO()
    figure(grid, title).savefig(buf, format="png", dpi=120)
    write_atomic(path, buf.getvalue())


def figure(grid: Grid, title: str) -> "Figure":
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
    return fig
