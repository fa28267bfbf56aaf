"""The `gpt2` evaluate flow run against a real Prefect server: results returned, files written, artifacts published."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect_fixtures import read_artifacts

from modeling.hf import save_pretrained
from modeling.model import GPT, GPTConfig
from tokenization.bpe import load_gpt2


@pytest.mark.slow
@pytest.mark.server
def test_evaluate_flow_publishes_table_and_markdown(
    prefect_server, eval_data_dir: Path, gpt2_bpe_dir: Path, tmp_path: Path
) -> None:
    from flows.evaluate import evaluate

    checkpoint = tmp_path / "tiny-model"
    torch.manual_seed(0)
    save_pretrained(GPT(GPTConfig(block_size=64, n_layer=1, n_head=2, n_embd=32)), checkpoint)
    load_gpt2(gpt2_bpe_dir / "encoder.json", gpt2_bpe_dir / "vocab.bpe").save(checkpoint)
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        state = evaluate(
            str(checkpoint),
            tasks=["lambada", "wsc273"],
            data_dir=str(eval_data_dir),
            limit=2,
            device="cpu",
            protocol=["paper", "lm-eval"],
            eot_prefix=True,
            return_state=True,
        )
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
        ("lambada", "paper", "ppl"),
        ("lambada", "lm-eval eot_prefix=True", "acc"),
        ("wsc273", "paper", "acc_partial"),
    }
    report = artifacts["eval-tiny-model-report"]
    assert report["type"] == "markdown" and "| lambada | lm-eval eot_prefix=True | perplexity |" in report["data"]
    assert "data:image/png;base64," in report["data"]


@pytest.mark.slow
@pytest.mark.server
def test_a_re_run_reuses_finished_task_results_until_the_model_changes(prefect_server, tmp_path: Path) -> None:
    """Evaluation resumes: each task's result is persisted under a key of the model files, data, limit and code."""
    from prefect_fixtures import api
    from tiny_checkpoint import tiny_corpus_and_checkpoint

    from flows.evaluate import evaluate

    corpus, checkpoint = tiny_corpus_and_checkpoint(tmp_path)
    ptb = _ptb_file(tmp_path)

    def run(tasks: list[str], stride: int | None = None) -> tuple[dict, dict[str, str]]:
        from prefect.logging.handlers import APILogHandler

        with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
            state = evaluate(
                str(checkpoint),
                tasks=tasks,
                corpus=str(corpus),
                task_paths={"ptb": str(ptb)},
                limit=3,
                device="cpu",
                stride=stride,
                return_state=True,
            )
            APILogHandler().flush()  # send the queued run logs while this session's server is up
        assert state.is_completed(), state.message
        task_runs = api(
            prefect_server,
            "POST",
            "task_runs/filter",
            {"flow_runs": {"id": {"any_": [str(state.state_details.flow_run_id)]}}},
        )
        # task runs are named eval-<task>-<protocol>-<n>
        return state.result(), {
            t["name"].split("-", 1)[1].rsplit("-", 1)[0].removesuffix("-paper"): t["state_name"]
            for t in task_runs
            if t["name"].startswith("eval-")
        }

    first, first_states = run(["webtext-val"])
    # A task added: the finished one is reused, the new one runs.
    again, again_states = run(["webtext-val", "ptb"])
    assert first_states == {"webtext-val": "Completed"}
    assert again_states == {"webtext-val": "Cached", "ptb": "Completed"}
    assert again["results"]["webtext-val"] == first["results"]["webtext-val"]
    # Another stride is another measurement: computed again, recorded with its result.
    strided, strided_states = run(["webtext-val"], stride=8)
    assert strided_states == {"webtext-val": "Completed"}
    assert strided["results"]["webtext-val"]["paper"]["options"] == {"stride": 8}
    # New weights in the checkpoint: the task runs again and gives another result.
    tiny_corpus_and_checkpoint(tmp_path / "other", seed=1)
    (checkpoint / "model.safetensors").write_bytes(
        (tmp_path / "other" / "checkpoint" / "model.safetensors").read_bytes()
    )
    changed, changed_states = run(["webtext-val"])
    assert changed_states == {"webtext-val": "Completed"}
    assert changed["results"]["webtext-val"] != first["results"]["webtext-val"]


def _ptb_file(root: Path) -> Path:
    path = root / "ptb" / "ptb.test.txt"
    path.parent.mkdir(parents=True)
    path.write_text(
        " the cat sat on a mat while dogs ran past the old red barn \n and birds sang in tall green trees <unk> \n" * 3
    )
    return path


def test_the_result_key_changes_with_data_limit_code_and_model_and_with_nothing_else(
    tmp_path: Path, monkeypatch
) -> None:
    """The key the flow stores each benchmark's result under (`_benchmark_key`, as Prefect calls it)."""
    import shutil

    from tiny_checkpoint import tiny_corpus_and_checkpoint

    import evaluation.run
    from flows.evaluate import _benchmark_key

    corpus, checkpoint = tiny_corpus_and_checkpoint(tmp_path)
    ptb = _ptb_file(tmp_path)
    from evaluation.protocol import resolve_protocols

    params = {
        "checkpoint": str(checkpoint),
        "name": "ptb",
        "path": str(ptb),
        "limit": 3,
        "protocol": resolve_protocols("paper")[0],
    }

    def key(**changes: object) -> str:
        return _benchmark_key(None, {**params, **changes})

    first = key()
    assert key() == first and key(scorer=object(), tokenizer=object()) == first  # not what computes it, nor tasks
    assert key(limit=4) != first and key(limit=None) != first
    assert key(name="webtext-val", path=str(corpus)) != first
    ptb.write_text(ptb.read_text() + " one more sentence \n")
    assert key() != first
    data_changed = key()
    webtext = key(name="webtext-val", path=str(corpus))
    (corpus / "overlap").mkdir()  # the overlap cache beside a corpus' shards is not its data
    (corpus / "overlap" / "x.ngram64").write_bytes(b"cache")
    assert key(name="webtext-val", path=str(corpus)) == webtext
    (corpus / "shards" / "val-00000-of-00001.parquet").write_bytes(b"other data")
    assert key(name="webtext-val", path=str(corpus)) != webtext
    # The evaluation code: a copy of the package's sources, one file changed.
    sources = tmp_path / "evaluation"
    shutil.copytree(Path(evaluation.run.__file__).parent, sources, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(evaluation.run, "__file__", str(sources / "run.py"))
    assert key() == data_changed
    (sources / "lambada.py").write_text((sources / "lambada.py").read_text() + "\n# a fix in the protocol\n")
    assert key() != data_changed
    code_changed = key()
    (checkpoint / "model.safetensors").write_bytes(b"other weights")
    assert key() != code_changed
