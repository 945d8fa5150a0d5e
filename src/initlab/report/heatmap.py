"""The sweep summary as a picture (summary.png): matplotlib is imported only here, when a sweep ends."""

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from initlab.files import write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# (row key, col key, row labels, col labels, {(row, col): (mean test acc %, cell text)}), as summary._grid gives
Grid = tuple[str, str, list[str], list[str], dict[tuple[str, str], tuple[float, str]]]


def png(fig: "Figure", dpi: int) -> bytes:
    """The figure as PNG bytes. A grid too crowded for its size is drawn as it is: matplotlib's warning that it
    could not apply its constrained layout would reach the user's terminal as a stray source line."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="constrained_layout not applied", category=UserWarning)
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def to_png(grid: Grid, path: Path, title: str, theory: dict | None = None) -> None:
    write_atomic(path, png(figure(grid, title, theory), dpi=120))


def depth_curve(grid: Grid, theory: dict) -> tuple[list[float], list[float]] | None:
    """Mean-field trainable depth 6 xi_c(sigma_w2), in the heatmap's cell coordinates (columns sigma_w2,
    rows depth; numeric, increasing), or None when the table is not laid out that way."""
    import numpy as np

    from initlab.theory import load_act, mean_field

    row_key, col_key, rows, cols, _ = grid
    if not (row_key.endswith("depth") and col_key.endswith("sigma_w2")):
        return None
    depths, s_w2 = [float(r) for r in rows], [float(c) for c in cols]
    xs = np.linspace(min(s_w2), max(s_w2), 40)  # a smooth curve; each point a mean-field solve (~50 ms)
    act = load_act(theory.get("act", "tanh"))
    ys = [6 * mean_field(act, float(x), float(theory.get("sigma_b2", 0.0))).xi_c for x in xs]
    col_pos = np.interp(xs, s_w2, range(len(cols)))  # sorted columns assumed, as sweeps list them
    row_pos = [np.interp(y, depths, range(len(rows))) if y <= max(depths) * 1.05 else np.nan for y in ys]
    return list(col_pos), list(row_pos)


def gaps(values: "np.ndarray") -> "np.ndarray":  # noqa: F821
    """Points below the best cell of each column ([rows, cols]; NaN stays NaN)."""
    import numpy as np

    best = np.nanmax(np.where(np.isfinite(values), values, -np.inf), axis=0, keepdims=True)  # [1, cols]
    return best - values


def figure(grid: Grid, title: str, theory: dict | None = None) -> "Figure":
    """A heatmap of a sweep's table: rows down, columns across; the numbers in the cells. The colour is how far
    each cell is below its column's best, on a log scale from 0.05 to 30 points, so that cells a few tenths
    apart look apart and a failed cell still looks failed. With `theory` (a depth x sigma_w2 sweep) the colour
    is the accuracy itself, under the trainable-depth curve."""
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend lookup

    row_key, col_key, rows, cols, cells = grid
    values = np.array([[cells.get((r, c), (np.nan, ""))[0] for c in cols] for r in rows])  # [rows, cols], %
    fig = Figure(figsize=(1.6 + 1.6 * len(cols), 1.2 + 0.55 * len(rows)), constrained_layout=True)
    ax = fig.subplots()
    if theory:
        shown, norm, cmap, label = values, None, "viridis", "test accuracy (%)"
    else:
        shown, cmap, label = np.clip(gaps(values), 0.05, 30.0), "viridis_r", "points below the column's best"
        norm = LogNorm(0.05, 30.0)
    image = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, norm=norm, aspect="auto")
    for (i, r), (k, c) in ((a, b) for a in enumerate(rows) for b in enumerate(cols)):
        _, text = cells.get((r, c), (np.nan, "–"))
        rgba = image.cmap(image.norm(shown[i, k])) if np.isfinite(shown[i, k]) else (1, 1, 1, 1)
        dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5  # white text on a dark cell
        ax.text(k, i, text.replace(" ± ", "\n± ").replace(" @", "\n@"), ha="center", va="center", fontsize=7,
                color="w" if dark else "k")  # fmt: skip
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(col_key)
    ax.set_ylabel(row_key)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label=label)
    curve = depth_curve(grid, theory) if theory else None
    if curve:  # below the curve (towards small depth) mean-field theory expects the net to train
        ax.plot(*curve, color="w", linestyle="--", linewidth=2, label="6 ξ_c (mean-field theory)")
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.legend(loc="lower right", fontsize=7, framealpha=0.6)
    return fig
