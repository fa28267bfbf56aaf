"""The real benchmark files in ../shared/data/eval, and a whole evaluation of a tiny random checkpoint."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from evaluation.lambada import read_lambada
from evaluation.run import available_tasks, evaluate_checkpoint, load_checkpoint, task_cache_key
from evaluation.translation import read_pairs
from evaluation.wsc import read_wsc
from modeling.hf import save_pretrained
from modeling.model import GPT, GPTConfig
from tokenization.bpe import load_gpt2


def test_real_files_parse(eval_data_dir: Path) -> None:
    passages = read_lambada(eval_data_dir / "lambada" / "lambada_test.jsonl")
    assert len(passages) == 5153
    assert all(p.target and " " not in p.target for p in passages)
    assert not any("\u201c" in p.context for p in passages)  # typographic quotes normalized
    schemas = read_wsc(eval_data_dir / "wsc" / "WSCollection.xml")
    all_schemas = ET.fromstring((eval_data_dir / "wsc" / "WSCollection.xml").read_bytes()).findall("schema")
    assert len(schemas) == 273 < len(all_schemas)
    assert schemas[0].pronoun == "they" and schemas[0].correct == 0 and schemas[1].correct == 1
    for source, target in (("en", "fr"), ("fr", "en")):
        pairs = read_pairs(eval_data_dir / "wmt14-newstest2014-fren", source, target)
        assert len(pairs) == 3003 and all(s and t for s, t in pairs)
    assert read_pairs(eval_data_dir / "wmt14-newstest2014-fren", "en", "fr")[0] == (
        "Spectacular Wingsuit Jump Over Bogota",
        'Spectaculaire saut en "wingsuit" au-dessus de Bogota',
    )
    assert {"lambada", "wsc273", "wmt14-en-fr", "wmt14-fr-en"} <= set(available_tasks(eval_data_dir))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, gpt2_bpe_dir: Path) -> Path:
    """A tiny random GPT with the real GPT-2 tokenizer, saved the way training exports checkpoints."""
    path = tmp_path_factory.mktemp("eval") / "tiny-gpt"
    torch.manual_seed(0)
    save_pretrained(GPT(GPTConfig(block_size=64, n_layer=2, n_head=2, n_embd=32)), path)
    load_gpt2(gpt2_bpe_dir / "encoder.json", gpt2_bpe_dir / "vocab.bpe").save(path)
    return path


def _corpus(root: Path) -> Path:
    shards = root / "corpus" / "shards"
    shards.mkdir(parents=True)
    passage = read_lambada(
        Path(__file__).parent.parent.parent / "shared" / "data" / "eval" / "lambada" / "lambada_test.jsonl", limit=2
    )[1]
    train = [
        "Some unrelated web page about gardening tools and the best way to keep them sharp all year.",
        passage.context + " " + passage.target,
    ]  # the second LAMBADA passage leaked into training
    pq.write_table(pa.table({"text": train}), shards / "train-00000-of-00001.parquet")
    pq.write_table(
        pa.table({"text": ["A held-out page. It has two sentences and numbers like 3.5 and 1,000."]}),
        shards / "val-00000-of-00001.parquet",
    )
    return root / "corpus"


def test_evaluate_checkpoint_end_to_end(checkpoint: Path, eval_data_dir: Path, tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    out = evaluate_checkpoint(
        checkpoint,
        tasks=["lambada", "wsc273", "webtext-val"],
        protocol=["paper", "lm-eval"],
        data_dir=eval_data_dir,
        limit=3,
        batch_size=4,
        device="cpu",
        corpus=corpus,
    )
    results = out["results"]
    assert set(results["lambada"]) == {"paper", "lm-eval"}  # the harness has no WSC273 or webtext-val recipe
    assert set(results["wsc273"]) == set(results["webtext-val"]) == {"paper"}
    paper, harness = results["lambada"]["paper"], results["lambada"]["lm-eval"]
    assert paper["metrics"]["examples"] == 3 and paper["metrics"]["ppl"] > 1000  # random weights
    assert harness["metrics"]["examples"] == 3 and 0 <= harness["metrics"]["acc"] <= 1
    assert paper["options"] == {"normalize_quotes": True, "eot_prefix": True}
    assert harness["options"] == {"normalize_quotes": False, "eot_prefix": False}
    assert results["webtext-val"]["paper"]["options"] == {"stride": 64}  # the model's context
    assert results["wsc273"]["paper"]["metrics"]["examples"] == 3
    webtext = results["webtext-val"]["paper"]["metrics"]
    assert webtext["ppl"] > 1000 and webtext["bpb"] > 1
    overlap = results["overlap"]["paper"]["metrics"]
    assert overlap["lambada_examples_with_overlap"] == 1 and overlap["lambada_8grams_in_train_pct"] > 20
    assert overlap["webtext-val_8grams_in_train_pct"] == 0.0 and overlap["bloom_fpr_measured"] == 0.0
    saved = json.loads((checkpoint / "results.json").read_text())
    assert saved["results"] == json.loads(json.dumps(results))
    assert saved["meta"]["protocols"]["lm-eval"] == {"normalize_quotes": False, "eot_prefix": False, "stride": None}
    rows = {(r["task"], r["protocol"], r["metric"]): r for r in saved["rows"]}
    row = rows[("lambada", "paper", "ppl")]
    assert (row["paper"], row["paper_size"]) == (35.13, "117M")
    assert row["difference"] == pytest.approx(row["ours"] - 35.13, abs=1e-3)
    # The harness's numbers are not the paper's measurement: no paper column beside them.
    assert rows[("lambada", "lm-eval", "perplexity")]["paper"] is None
    assert rows[("lambada", "lm-eval", "acc")]["difference"] is None
    markdown = (checkpoint / "results.md").read_text()
    assert "| lambada | paper | ppl |" in markdown and "| lambada | lm-eval | perplexity |" in markdown
    assert "results.png" in markdown
    assert (checkpoint / "results.png").read_bytes().startswith(b"\x89PNG")
    assert "<svg" in (checkpoint / "results.svg").read_text()


def test_a_changed_option_is_labelled_and_loses_the_paper_column(checkpoint: Path, eval_data_dir: Path) -> None:
    out = evaluate_checkpoint(
        checkpoint, tasks=["lambada", "wsc273"], data_dir=eval_data_dir, limit=2, device="cpu", normalize_quotes=False
    )
    lambada, wsc = out["results"]["lambada"]["paper"], out["results"]["wsc273"]["paper"]
    assert lambada["protocol"] == "paper normalize_quotes=False" and not lambada["claims_paper"]
    assert lambada["options"] == {"normalize_quotes": False, "eot_prefix": True}
    assert wsc["protocol"] == "paper" and wsc["claims_paper"]  # WSC reads no option: still the paper's way
    rows = {(r["task"], r["metric"]): r for r in out["rows"]}
    assert rows[("lambada", "ppl")]["paper"] is None and rows[("wsc273", "acc_partial")]["paper"] == 70.70
    assert "| lambada | paper normalize_quotes=False | ppl |" in out["markdown"]
    # No number to plot against the paper's sizes: no picture, and none left over from an earlier run.
    assert [Path(p).name for p in out["paths"]] == ["results.md", "results.json"]
    assert not (checkpoint / "results.svg").exists()


def test_bad_protocols_and_options_fail_before_any_work(checkpoint: Path, eval_data_dir: Path) -> None:
    before = sorted(p.name for p in checkpoint.iterdir())
    with pytest.raises(ValueError, match=r"protocol: unknown 'lm_eval'; known: paper, lm-eval"):
        evaluate_checkpoint(checkpoint, tasks=["lambada"], data_dir=eval_data_dir, protocol="lm_eval")
    with pytest.raises(ValueError, match=r"tasks wsc273: protocol lm-eval has no recipe for them"):
        evaluate_checkpoint(checkpoint, tasks=["lambada", "wsc273"], data_dir=eval_data_dir, protocol="lm-eval")
    with pytest.raises(ValueError, match=r"stride: 65 is longer than the model's context \(64 tokens\)"):
        evaluate_checkpoint(checkpoint, tasks=["lambada"], data_dir=eval_data_dir, stride=65, device="cpu")
    with pytest.raises(ValueError, match=r"stride: must be a positive number of tokens"):
        evaluate_checkpoint(checkpoint, tasks=["lambada"], data_dir=eval_data_dir, stride=0)
    assert sorted(p.name for p in checkpoint.iterdir()) == before


def test_cache_key_changes_with_protocol_and_options(checkpoint: Path, eval_data_dir: Path) -> None:
    path = eval_data_dir / "lambada" / "lambada_test.jsonl"
    paper = task_cache_key(checkpoint, "lambada", path, 3, "paper", {"normalize_quotes": True, "eot_prefix": True})
    assert paper == task_cache_key(
        checkpoint, "lambada", path, 3, "paper", {"eot_prefix": True, "normalize_quotes": True}
    )
    assert paper != task_cache_key(
        checkpoint, "lambada", path, 3, "lm-eval", {"normalize_quotes": True, "eot_prefix": True}
    )
    assert paper != task_cache_key(
        checkpoint, "lambada", path, 3, "paper", {"normalize_quotes": False, "eot_prefix": True}
    )


def test_missing_task_data_fails_before_any_work(checkpoint: Path, eval_data_dir: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in checkpoint.iterdir())
    with pytest.raises(FileNotFoundError, match=r"wikitext2: expected .*wikitext-2-raw/wiki\.test\.raw"):
        evaluate_checkpoint(
            checkpoint,
            tasks=["wsc273", "wikitext2"],
            data_dir=tmp_path,
            task_paths={"wsc273": str(eval_data_dir / "wsc" / "WSCollection.xml")},
        )
    assert sorted(p.name for p in checkpoint.iterdir()) == before
    with pytest.raises(ValueError, match="unknown task"):
        evaluate_checkpoint(checkpoint, tasks=["squad"], data_dir=tmp_path)


def test_loaded_checkpoint_scores_like_transformers(checkpoint: Path) -> None:
    """Our loader + scorer and transformers' GPT2LMHeadModel give the same loss for the same checkpoint."""
    from transformers import GPT2LMHeadModel

    from evaluation.lm import Scorer

    model, tokenizer, n_params = load_checkpoint(checkpoint, "cpu")
    hf = GPT2LMHeadModel.from_pretrained(checkpoint).eval()
    ids = tokenizer.encode("The quick brown fox jumps over the lazy dog.")
    with torch.no_grad():
        loss = hf(torch.tensor([[tokenizer.eot_token] + ids]), labels=torch.tensor([[tokenizer.eot_token] + ids])).loss
    for scored in (model, hf):
        (total,) = Scorer(scored).rolling_logprob([ids], tokenizer.eot_token)
        assert -total / len(ids) == pytest.approx(loss.item(), rel=1e-4)
    assert n_params == sum(p.numel() for p in hf.parameters())
