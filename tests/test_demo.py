"""The demo's pipeline at its small size, through a real Prefect server and the served deployments: the mini web's
dump -> `webtext/build-corpus` -> `gpt2/train` -> `gpt2/evaluate`, checked through the Prefect API (states and
artifacts) and against the mini web's ground truth."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
from prefect_fixtures import read_artifacts, read_logs, run_deployment, ui_runs_page

from infra.demo import (
    CORPUS,
    EVALUATE,
    SIZES,
    TRAIN,
    corpus_params,
    evaluate_params,
    ground_truth_diff,
    run_pipeline,
    train_params,
)
from infra.miniweb import SMALL_ARTICLES, build_miniweb, serve_miniweb

SEED = 11


@pytest.mark.slow
@pytest.mark.server
def test_the_demo_pipeline_runs_through_the_deployments(prefect_server, served_deployments, tmp_path: Path) -> None:
    size = SIZES["small"]
    web = build_miniweb(SEED, size.articles, tmp_path / "miniweb")
    expected = web.expectations()["counts"]

    def run(name: str, params: dict) -> dict:
        return run_deployment(prefect_server, name, params, timeout=400)

    with serve_miniweb(web) as server:
        try:
            runs = run_pipeline(run, prefect_server.api_url, web, server.connect_to, tmp_path, size)
        except RuntimeError as exc:
            pytest.fail(f"{exc}\nserve log:\n{served_deployments.log()[-4000:]}")
    for name in (CORPUS, TRAIN, EVALUATE):
        assert runs[name]["state_type"] == "COMPLETED", (name, read_logs(prefect_server, runs[name]["id"])[-20:])
    assert runs[TRAIN]["deployment_id"] and runs[CORPUS]["deployment_id"]

    corpus = {a["key"]: a for a in read_artifacts(prefect_server, runs[CORPUS]["id"])}
    stages = {row["stage"]: row for row in corpus["webtext-stage-counts"]["data"]}
    assert stages["links"]["in"] == expected["submissions"]
    assert stages["links"]["out"] == expected["links_kept"]
    assert stages["fetch"]["out"] == expected["fetch"]["ok"]
    assert stages["shards"]["out"] == expected["documents"]
    assert {row["outcome"]: row["urls"] for row in corpus["webtext-fetch-outcomes"]["data"]} == expected["fetch"]
    card = corpus["webtext-dataset-card"]
    assert card["type"] == "markdown" and str(expected["documents"]) in card["data"]
    missing, extra = ground_truth_diff(web, tmp_path / "corpus")
    assert not missing and not extra, f"corpus vs ground truth: missing {missing}, unexpected {extra}"

    train = read_artifacts(prefect_server, runs[TRAIN]["id"])
    assert any(a["type"] == "markdown" and re.search(r"<svg|data:image/(svg|png)", a["data"]) for a in train), (
        "a loss-curve picture"
    )
    assert any(a["type"] == "table" for a in train)

    evaluation = read_artifacts(prefect_server, runs[EVALUATE]["id"])
    table = next(a for a in evaluation if a["type"] == "table")
    assert any("webtext-val" in json.dumps(row) for row in table["data"])
    assert list((tmp_path / "model").rglob("results.md")), "results.md next to the checkpoint"

    # What a user browsing the UI sees: the three runs, each Completed.
    page = ui_runs_page(
        prefect_server, [runs[name]["name"] for name in (CORPUS, TRAIN, EVALUATE)], tmp_path / "runs.png"
    )
    assert all("Completed" in row for row in page.rows.values()), page.rows
    assert page.hosts == {"127.0.0.1"}, f"the UI contacted {page.hosts - {'127.0.0.1'}}"


@pytest.mark.parametrize("size", sorted(SIZES))
def test_the_demo_parameters_are_ones_the_flows_take(size: str, tmp_path: Path) -> None:
    """Checked without a server, so that a renamed flow parameter fails here in seconds, naming it."""
    from flows.evaluate import evaluate
    from flows.train import train
    from flows.webtext import webtext

    demo = SIZES[size]
    web = build_miniweb(SEED, SMALL_ARTICLES, tmp_path / "miniweb")
    for flow, params in (
        (webtext, corpus_params(web, {"*.example.com": "127.0.0.1:9"}, tmp_path, demo)),
        (train, train_params(tmp_path, demo)),
        (evaluate, evaluate_params(str(tmp_path / "model" / "model"), tmp_path, demo)),
    ):
        accepted = inspect.signature(flow.fn).parameters
        assert set(params) <= set(accepted), f"{flow.name} does not take {sorted(set(params) - set(accepted))}"
        flow.validate_parameters(params)  # types as Prefect checks them when the run starts
