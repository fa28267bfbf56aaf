"""The `gpt2` evaluate flow run against a real Prefect server: results returned, files written, artifacts published."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from prefect.settings import PREFECT_API_URL, temporary_settings

from corpus.tokenizer import load_gpt2
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
                         device="cpu", return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert set(result["results"]) == {"lambada", "wsc273"}
    assert {Path(p).name for p in result["paths"]} == {"results.md", "results.json", "results.svg"}
    assert all(Path(p).is_file() for p in result["paths"])
    artifacts = {a["key"]: a for a in read_artifacts(prefect_server, str(state.state_details.flow_run_id))}
    table = artifacts["eval-tiny-model"]
    assert table["type"] == "table"
    assert {(r["task"], r["metric"]) for r in table["data"]} >= {("lambada", "ppl"), ("wsc273", "acc_partial")}
    report = artifacts["eval-tiny-model-report"]
    assert report["type"] == "markdown" and "| lambada | ppl |" in report["data"]
    assert "data:image/svg+xml;base64," in report["data"]
