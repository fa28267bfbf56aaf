"""Results table (Markdown and JSON) and a picture of each metric against model size, next to the checkpoint.

Rows are task, protocol and metric; columns are this model, GPT-2 in the paper at the nearest size it reports, and
the difference. The paper's number stands only beside a number whose protocol claims to measure it the paper's way
(protocol `paper` with its default options); an `lm-eval` number or a modified protocol's has no paper column. The
picture (matplotlib, PNG and SVG): one panel per metric the paper reports at all four sizes, the paper's points
joined by a line, our model a red diamond at its parameter count.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

from corpus.files import atomic_output, write_atomic
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


def _row(
    task: str,
    protocol: str,
    metric: str,
    value: float,
    paper: tuple[float, str, str] | None,
) -> dict[str, Any]:
    return {
        "task": task,
        "protocol": protocol,
        "metric": metric,
        "ours": round(float(value), 4),
        "paper": paper[0] if paper else None,
        "paper_size": paper[1] if paper else None,
        "difference": round(float(value) - paper[0], 4) if paper else None,
        "source": paper[2] if paper else None,
    }


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| task | protocol | metric | this model | GPT-2 (paper) | paper size | difference | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['protocol']} | {r['metric']} | {_fmt(r['ours'])} | {_fmt(r['paper'])} | "
            f"{r['paper_size'] or ''} | {_fmt(r['difference'])} | {r['source'] or ''} |"
        )
    return "\n".join(lines)


def nearest_gap(n_params: int) -> float:
    """How many times larger or smaller than the nearest paper size a parameter count is."""
    return min(max(n_params, 1) / size if n_params > size else size / max(n_params, 1) for size in SIZES.values())


def size_figure(rows: list[dict[str, Any]], n_params: int):  # -> matplotlib.figure.Figure | None
    """Metric against parameter count for every row the paper reports at all four sizes: the paper's points joined
    by a line, this model a red diamond. Both axes are logarithmic where the values span more than a factor of 10
    (perplexities do), so one weak model does not flatten the paper's curve."""
    panels = [
        r
        for r in rows
        if r["paper"] is not None
        and (r["task"], r["metric"]) in PAPER
        and len(PAPER[(r["task"], r["metric"])].values) == len(SIZES)
    ]
    if not panels:
        return None
    from matplotlib.figure import Figure  # no pyplot: no global state

    columns = min(3, len(panels))
    rows_count = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(3.6 * columns, 2.9 * rows_count), dpi=100, layout="constrained")
    axes = fig.subplots(rows_count, columns, squeeze=False).ravel()
    for ax, row in zip(axes, panels):
        number = PAPER[(row["task"], row["metric"])]
        sizes = [SIZES[label] for label in number.values]
        ax.plot(sizes, list(number.values.values()), "o-", color="tab:blue", label="GPT-2 (paper)")
        ax.plot([max(n_params, 1)], [row["ours"]], "D", color="tab:red", label=f"this model: {_fmt(row['ours'])}")
        ax.set_xscale("log")
        values = [*number.values.values(), row["ours"]]
        if min(values) > 0 and max(values) / min(values) > 10:
            ax.set_yscale("log")
        ticks = {**SIZES, f"{n_params / 1e6:.1f}M": max(n_params, 1)} if nearest_gap(n_params) > 1.5 else SIZES
        ax.set_xticks(list(ticks.values()), list(ticks), rotation=90, fontsize=8)  # 762M and 1542M sit close
        ax.minorticks_off()
        ax.set_title(f"{row['task']} {row['metric']}", fontsize=10)
        ax.set_xlabel("parameters", fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return fig


def _write(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_report(
    out_dir: Path, results: dict[str, dict[str, float]], n_params: int, meta: dict[str, Any]
) -> dict[str, Any]:
    """Write results.json, results.md and results.png/.svg into out_dir; return the paths, rows and markdown."""
    out_dir = Path(out_dir)
    rows = result_rows(results, n_params)
    figure = size_figure(rows, n_params)
    title = f"# Zero-shot evaluation of `{meta.get('checkpoint', out_dir)}`"
    header = (
        f"{title}\n\nParameters: {n_params:,}; paper column: GPT-2 at the nearest size the paper reports "
        "(117M/345M/762M/1542M; the true counts are 124M/355M/774M/1558M), beside numbers measured with "
        "the `paper` protocol only. Protocol `lm-eval`: lm-evaluation-harness's recipe and metric names "
        "(acc as a fraction); options that differ from a protocol's defaults follow its name.\n"
    )
    markdown = header + "\n" + markdown_table(rows) + "\n"
    if figure is not None:
        for suffix in ("png", "svg"):
            with atomic_output(out_dir / f"results.{suffix}") as tmp:
                figure.savefig(tmp, format=suffix)
        markdown_file = markdown + "\n![metric against model size](results.png)\n"
        encoded = base64.b64encode((out_dir / "results.png").read_bytes()).decode()
        markdown_artifact = markdown + f"\n![metric against model size](data:image/png;base64,{encoded})\n"
    else:
        for suffix in ("png", "svg"):  # a picture of an earlier run would not match this table
            (out_dir / f"results.{suffix}").unlink(missing_ok=True)
        markdown_file = markdown_artifact = markdown
    _write(out_dir / "results.md", markdown_file)
    payload = {"meta": meta, "n_params": n_params, "results": results, "rows": rows}
    _write(out_dir / "results.json", json.dumps(payload, indent=2, sort_keys=False))
    written = ("results.md", "results.json") + (("results.png", "results.svg") if figure is not None else ())
    return {"rows": rows, "markdown": markdown_artifact, "paths": [str(out_dir / n) for n in written]}
