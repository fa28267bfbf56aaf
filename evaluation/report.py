"""Results table (Markdown and JSON) and a picture of each metric against model size, next to the checkpoint.

Rows are task, protocol and metric; columns are this model, GPT-2 in the paper at the nearest size it reports, and the
difference. The paper's number stands only beside a number whose protocol claims to measure it the paper's way
(protocol `paper` with its default options); an `lm-eval` number or a modified protocol's has no paper column. The picture is plain SVG (no plotting library): one panel per metric the paper reports at all four
sizes, the paper's points joined by a line, our model a red diamond at its parameter count.
"""
from __future__ import annotations

import base64
import json
import math
import os
from html import escape
from pathlib import Path
from typing import Any

from evaluation.paper import PAPER, SIZES, paper_value

# Bookkeeping numbers that go to the JSON but are not scores.
_NOT_SCORES = {"examples", "units", "tokens", "detokenized_lines", "bytes", "words", "documents"}


def result_rows(results: dict[str, dict[str, dict[str, Any]]], n_params: int) -> list[dict[str, Any]]:
    """One row per score: results[task][protocol] holds the protocol's label, whether it claims the paper's
    measurement, its options and its metrics (evaluation.run.run_task)."""
    rows = []
    for task, by_protocol in results.items():
        for result in by_protocol.values():
            for metric, value in result["metrics"].items():
                if metric in _NOT_SCORES or not isinstance(value, (int, float)):
                    continue
                paper = paper_value(task, metric, n_params) if result["claims_paper"] else None
                rows.append(_row(task, result["protocol"], metric, value, paper))
    return rows


def _row(task: str, protocol: str, metric: str, value: float, paper: tuple[float, str, str] | None,
         ) -> dict[str, Any]:
    return {"task": task, "protocol": protocol, "metric": metric, "ours": round(float(value), 4),
            "paper": paper[0] if paper else None,
            "paper_size": paper[1] if paper else None,
            "difference": round(float(value) - paper[0], 4) if paper else None,
            "source": paper[2] if paper else None}


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| task | protocol | metric | this model | GPT-2 (paper) | paper size | difference | source |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['protocol']} | {r['metric']} | {_fmt(r['ours'])} | {_fmt(r['paper'])} | "
                     f"{r['paper_size'] or ''} | {_fmt(r['difference'])} | {r['source'] or ''} |")
    return "\n".join(lines)


def size_plot_svg(rows: list[dict[str, Any]], n_params: int) -> str | None:
    """Metric against parameter count (log scale) for every row the paper reports at all four sizes."""
    panels = [r for r in rows if r["paper"] is not None and (r["task"], r["metric"]) in PAPER
              and len(PAPER[(r["task"], r["metric"])].values) == len(SIZES)]
    if not panels:
        return None
    width, height, columns = 280, 200, 3
    rows_count = math.ceil(len(panels) / columns)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * columns}" height="{height * rows_count}" '
             f'font-family="sans-serif" font-size="10">', '<rect width="100%" height="100%" fill="white"/>']
    xs = [math.log10(p) for p in SIZES.values()] + [math.log10(max(n_params, 1))]
    x_lo, x_hi = min(xs) - 0.2, max(xs) + 0.2
    for i, row in enumerate(panels):
        ox, oy = (i % columns) * width, (i // columns) * height
        left, top, plot_w, plot_h = ox + 45, oy + 25, width - 60, height - 60
        number = PAPER[(row["task"], row["metric"])]
        points = [(math.log10(SIZES[s]), v) for s, v in number.values.items()]
        ours = (math.log10(max(n_params, 1)), row["ours"])
        ys = [v for _, v in points] + [ours[1]]
        y_lo, y_hi = min(ys), max(ys)
        pad = (y_hi - y_lo) * 0.1 or 1.0
        y_lo, y_hi = y_lo - pad, y_hi + pad

        def sx(x: float) -> float:
            return left + (x - x_lo) / (x_hi - x_lo) * plot_w

        def sy(y: float) -> float:
            return top + (y_hi - y) / (y_hi - y_lo) * plot_h

        parts.append(f'<text x="{ox + width / 2}" y="{oy + 15}" text-anchor="middle" font-weight="bold">'
                     f'{escape(row["task"])} {escape(row["metric"])}</text>')
        parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
        for value in (y_lo + pad, y_hi - pad):
            parts.append(f'<text x="{left - 4}" y="{sy(value) + 3:.1f}" text-anchor="end">{_fmt(value)}</text>')
        for label, count in SIZES.items():
            parts.append(f'<text x="{sx(math.log10(count)):.1f}" y="{top + plot_h + 12}" '
                         f'text-anchor="middle">{label}</text>')
        line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        parts.append(f'<polyline points="{line}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>')
        parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="#1f77b4"/>' for x, y in points]
        cx, cy = sx(ours[0]), sy(ours[1])
        parts.append(f'<polygon points="{cx},{cy - 5:.1f} {cx + 5:.1f},{cy} {cx},{cy + 5:.1f} {cx - 5:.1f},{cy}" '
                     f'fill="#d62728"><title>this model: {_fmt(ours[1])}</title></polygon>')
        parts.append(f'<text x="{left + plot_w}" y="{oy + height - 12}" text-anchor="end" fill="#555">'
                     f'params (log) · blue: paper · red: this model ({_fmt(ours[1])})</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + f".tmp{os.getpid()}")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def write_report(out_dir: Path, results: dict[str, dict[str, float]], n_params: int,
                 meta: dict[str, Any]) -> dict[str, Any]:
    """Write results.json, results.md and results.svg into out_dir; return the paths, rows and markdown."""
    out_dir = Path(out_dir)
    rows = result_rows(results, n_params)
    svg = size_plot_svg(rows, n_params)
    title = f"# Zero-shot evaluation of `{meta.get('checkpoint', out_dir)}`"
    header = (f"{title}\n\nParameters: {n_params:,}; paper column: GPT-2 at the nearest size the paper reports "
              "(117M/345M/762M/1542M; the true counts are 124M/355M/774M/1558M), beside numbers measured with "
              "the `paper` protocol only. Protocol `lm-eval`: lm-evaluation-harness's recipe and metric names "
              "(acc as a fraction); options that differ from a protocol's defaults follow its name.\n")
    markdown = header + "\n" + markdown_table(rows) + "\n"
    if svg:
        _write(out_dir / "results.svg", svg)
        markdown_file = markdown + "\n![metric against model size](results.svg)\n"
        encoded = base64.b64encode(svg.encode()).decode()
        markdown_artifact = markdown + f"\n![metric against model size](data:image/svg+xml;base64,{encoded})\n"
    else:
        (out_dir / "results.svg").unlink(missing_ok=True)  # a picture of an earlier run would not match this table
        markdown_file = markdown_artifact = markdown
    _write(out_dir / "results.md", markdown_file)
    payload = {"meta": meta, "n_params": n_params, "results": results, "rows": rows}
    _write(out_dir / "results.json", json.dumps(payload, indent=2, sort_keys=False))
    written = ("results.md", "results.json") + (("results.svg",) if svg else ())
    return {"rows": rows, "markdown": markdown_artifact, "paths": [str(out_dir / n) for n in written]}
