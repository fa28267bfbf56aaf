"""The matplotlib figures (loss curve, metric against model size) are rendered, readable and on sensible axes."""

from __future__ import annotations

import csv
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg

from evaluation.paper import SIZES
from evaluation.report import result_rows, size_figure, write_report
from modeling.plots import loss_curve_figure, write_loss_curve


def _overlapping(labels) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent()) for t in labels if t.get_text()]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1 :] if box_a.overlaps(box_b)]


def test_size_figure_uses_log_axes_and_labels_that_do_not_overlap(tmp_path: Path) -> None:
    # A weak 4M-parameter model: its perplexity is orders of magnitude above the paper's, which a linear axis would
    # squash into a flat line.
    def paper(metrics: dict[str, float]) -> dict:
        return {"paper": {"protocol": "paper", "claims_paper": True, "options": {}, "metrics": metrics}}

    results = {"lambada": paper({"ppl": 5000.0, "acc_word_stopword_filter": 30.0}), "wikitext2": paper({"ppl": 900.0})}
    rows = result_rows(results, 4_000_000)
    fig = size_figure(rows, 4_000_000)
    FigureCanvasAgg(fig).draw()  # lays out the text so its extents are real
    panels = [ax for ax in fig.axes if ax.get_visible()]
    by_title = {ax.get_title(): ax for ax in panels}
    assert by_title["lambada ppl"].get_yscale() == "log" and by_title["lambada ppl"].get_xscale() == "log"
    assert by_title["wikitext2 ppl"].get_yscale() == "log"
    assert by_title["lambada acc_word_stopword_filter"].get_yscale() == "linear"  # 30 .. 63: linear reads best
    for ax in panels:
        ticks = ax.get_xticklabels()
        assert [t.get_text() for t in ticks] == [*SIZES, "4.0M"]  # the paper's sizes and this model's
        assert not _overlapping(ticks), ax.get_title()
        x, y = ax.lines[1].get_data()  # this model's point is drawn at its parameter count
        assert x[0] == 4_000_000

    report = write_report(tmp_path, results, 4_000_000, {"checkpoint": "tiny"})
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")
    assert "data:image/png;base64," in report["markdown"]


def test_loss_curve_is_log_scaled_only_when_losses_span_orders_of_magnitude(tmp_path: Path) -> None:
    logs = tmp_path / "logs" / "version_0"
    logs.mkdir(parents=True)
    with open(logs / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "train/loss", "val/loss"])
        writer.writeheader()
        for step in range(1, 11):
            writer.writerow({"step": step, "train/loss": 10.0 / step, "val/loss": 10.5 / step if step % 5 == 0 else ""})
    png = write_loss_curve(tmp_path / "logs", tmp_path / "loss_curve.png", title="tiny loss")
    assert png == tmp_path / "loss_curve.png" and png.read_bytes().startswith(b"\x89PNG")
    assert "<svg" in (tmp_path / "loss_curve.svg").read_text()

    fig = loss_curve_figure({"train/loss": [(1, 10.0), (2, 0.5)], "val/loss": [(2, float("nan"))]})
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"  # a factor of 20
    assert [line.get_label() for line in ax.lines] == ["train/loss"]  # the non-finite val point is left out
    assert loss_curve_figure({"train/loss": [(1, 4.0), (2, 3.0)]}).axes[0].get_yscale() == "linear"
