"""A dependency-free SVG line chart for loss curves (train and val loss against the optimizer step)."""
from __future__ import annotations

import csv
import math
from html import escape
from pathlib import Path

Series = list[tuple[float, float]]
COLORS = {"train/loss": "#1f77b4", "val/loss": "#d62728"}


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


def loss_curve_svg(series: dict[str, Series], title: str = "loss", width: int = 640, height: int = 360) -> str:
    """An SVG chart of the named series; non-finite values are left out."""
    series = {k: [(x, y) for x, y in v if math.isfinite(y)] for k, v in series.items()}
    points = [p for s in series.values() for p in s]
    left, right, top, bottom = 56, 16, 32, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    x0, x1 = (min(p[0] for p in points), max(p[0] for p in points)) if points else (0.0, 1.0)
    y0, y1 = (min(p[1] for p in points), max(p[1] for p in points)) if points else (0.0, 1.0)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
    ]
    for i in range(5):  # y ticks
        y = y0 + (y1 - y0) * i / 4
        out.append(f'<text x="{left - 4}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.3g}</text>')
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>')
    for i in range(5):  # x ticks
        x = x0 + (x1 - x0) * i / 4
        out.append(f'<text x="{sx(x):.1f}" y="{top + plot_h + 14}" text-anchor="middle">{x:.0f}</text>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">step</text>')
    for n, (name, pts) in enumerate(series.items()):
        color = COLORS.get(name, "#333")
        if len(pts) == 1:
            out.append(f'<circle cx="{sx(pts[0][0]):.1f}" cy="{sy(pts[0][1]):.1f}" r="3" fill="{color}"/>')
        elif pts:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        out.append(f'<text x="{left + plot_w - 8}" y="{top + 16 + 14 * n}" text-anchor="end" fill="{color}">'
                   f'{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_loss_curve(logs_dir: str | Path, out_path: str | Path, title: str = "loss") -> Path:
    out_path = Path(out_path)
    out_path.write_text(loss_curve_svg(read_loss_series(logs_dir), title))
    return out_path
