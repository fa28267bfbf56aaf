"""The loss curve of a training run (train and val loss against the optimizer step), drawn with matplotlib.

The y axis is logarithmic when the losses span more than a factor of 10 (a diverging or badly initialised run would
otherwise flatten everything else into a line). Written as PNG (for the Prefect UI's markdown artifacts) and SVG.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

Series = list[tuple[float, float]]
COLORS = {"train/loss": "tab:blue", "val/loss": "tab:red"}


def read_loss_series(logs_dir: str | Path) -> dict[str, Series]:
    """train/loss and val/loss by step from every CSVLogger metrics.csv under logs_dir (later runs win on a step)."""
    series: dict[str, dict[float, float]] = {name: {} for name in COLORS}
    files = sorted(Path(logs_dir).glob("**/metrics.csv"), key=lambda p: (len(str(p)), str(p)))
    for path in files:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                for name in series:
                    if row.get(name):
                        series[name][float(row["step"])] = float(row[name])
    return {name: sorted(points.items()) for name, points in series.items()}


def loss_curve_figure(series: dict[str, Series], title: str = "loss"):  # -> matplotlib.figure.Figure
    """A figure of the named series; non-finite values are left out."""
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in worker threads

    series = {k: [(x, y) for x, y in v if math.isfinite(y)] for k, v in series.items()}
    fig = Figure(figsize=(6.4, 3.6), dpi=100, layout="constrained")
    ax = fig.subplots()
    for name, points in series.items():
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, label=name, color=COLORS.get(name), marker="o" if len(points) == 1 else None)
    values = [y for points in series.values() for _, y in points]
    if values and min(values) > 0 and max(values) / min(values) > 10:
        ax.set_yscale("log")
    ax.set(title=title, xlabel="optimizer step", ylabel="loss (nats/token)")
    ax.grid(True, alpha=0.3)
    if values:
        ax.legend()
    return fig


def write_loss_curve(logs_dir: str | Path, out_path: str | Path, title: str = "loss") -> Path:
    """Write the run's loss curve as out_path's .png and .svg; return the PNG's path."""
    out = Path(out_path)
    fig = loss_curve_figure(read_loss_series(logs_dir), title)
    for suffix in (".png", ".svg"):
        fig.savefig(out.with_suffix(suffix))
    return out.with_suffix(".png")
