"""The `gpt2` evaluate flow run against a real Prefect server: results returned, files written, artifacts published."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from prefect.settings import PREFECT_API_URL, temporary_settings

from tokenization.bpe import load_gpt2
from modeling.hf import save_pretrained
from modeling.model import GPT, GPTConfig
from prefect_fixtures import read_artifacts


@pytest.mark.slow
def test_evaluate_flow_publishes_table_and_markdown(prefect_server, eval_data_dir: Path, gpt2_bpe_dir: Path,
                                                     tmp_path: Path) -> None:
    from flows.evaluate import evaluate

    checkpoint = tmp_path / "tiny-model"
    torch.manual_seed(0)
    save_pretrained(GPT(GPTConfig(block_size=64, n_layer=1, n_head=2, n_embd=32)), checkpoint)
    load_gpt2(gpt2_bpe_dir / "encoder.json", gpt2_bpe_dir / "vocab.bpe").save(checkpoint)
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        state = evaluate(str(checkpoint), tasks=["lambada", "wsc273"], data_dir=str(eval_data_dir), limit=2,
                         device="cpu", protocol=["paper", "lm-eval"], eot_prefix=True, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert set(result["results"]) == {"lambada", "wsc273"}
    # The option reaches each protocol's LAMBADA run; for paper it is the default, so that one is unmodified.
    lambada = result["results"]["lambada"]
    assert lambada["paper"]["protocol"] == "paper" and lambada["lm-eval"]["protocol"] == "lm-eval eot_prefix=True"
    assert lambada["lm-eval"]["options"] == {"normalize_quotes": False, "eot_prefix": True}
    assert {Path(p).name for p in result["paths"]} == {"results.md", "results.json", "results.png", "results.svg"}
    assert all(Path(p).is_file() for p in result["paths"])
    artifacts = {a["key"]: a for a in read_artifacts(prefect_server, str(state.state_details.flow_run_id))}
    table = artifacts["eval-tiny-model"]
    assert table["type"] == "table"
    assert {(r["task"], r["protocol"], r["metric"]) for r in table["data"]} >= {
        ("lambada", "paper", "ppl"), ("lambada", "lm-eval eot_prefix=True", "acc"), ("wsc273", "paper", "acc_partial")}
    report = artifacts["eval-tiny-model-report"]
    assert report["type"] == "markdown" and "| lambada | lm-eval eot_prefix=True | perplexity |" in report["data"]
    assert "data:image/svg+xml;base64," in report["data"]


def test_a_re_run_reuses_finished_task_results_until_the_model_changes(prefect_server, tmp_path: Path) -> None:
    """Evaluation resumes: each task's result is persisted under a key of the model files, data, limit and code."""
    from flows.evaluate import evaluate
    from prefect_fixtures import api
    from tiny_checkpoint import tiny_corpus_and_checkpoint

    corpus, checkpoint = tiny_corpus_and_checkpoint(tmp_path)

    def run(stride: int | None = None) -> tuple[dict, list[str]]:
        from prefect.logging.handlers import APILogHandler

        with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
            state = evaluate(str(checkpoint), tasks=["webtext-val"], corpus=str(corpus), limit=3, device="cpu",
                             stride=stride, return_state=True)
            APILogHandler().flush()  # send the queued run logs while this session's server is up
        assert state.is_completed(), state.message
        task_runs = api(prefect_server, "POST", "task_runs/filter",
                        {"flow_runs": {"id": {"any_": [str(state.state_details.flow_run_id)]}}})
        return state.result(), [t["state_name"] for t in task_runs if t["name"].startswith("eval-webtext-val")]

    first, first_states = run()
    again, again_states = run()
    assert first_states == ["Completed"] and again_states == ["Cached"]
    assert again["results"] == first["results"]
    # Another stride is another measurement: computed again, recorded with its result.
    strided, strided_states = run(stride=8)
    assert strided_states == ["Completed"]
    assert strided["results"]["webtext-val"]["paper"]["options"] == {"stride": 8}
    # New weights in the checkpoint: the task runs again and gives another result.
    tiny_corpus_and_checkpoint(tmp_path / "other", seed=1)
    (checkpoint / "model.safetensors").write_bytes((tmp_path / "other" / "checkpoint" / "model.safetensors").read_bytes())
    changed, changed_states = run()
    assert changed_states == ["Completed"]
    assert changed["results"]["webtext-val"] != first["results"]["webtext-val"]
