"""Our `lm-eval` protocol against the real lm-evaluation-harness: the same tiny model and files give the same numbers.

The harness runs its own recipes: the installed `lambada_openai.yaml` and `wikitext.yaml` (with its
`preprocess_wikitext.py`), copied into a temporary task folder with the data set swapped for local files: passages of
the shared LAMBADA jsonl, and WikiText- and PTB-format text files written here (the wikitext recipe over WikiText's article pages,
and over the PTB file as one page). Nothing is downloaded (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from evaluation.harness import write_local_task, write_pages
from evaluation.lambada import read_lambada
from evaluation.protocol import LM_EVAL
from evaluation.run import evaluate_checkpoint
from modeling.hf import save_pretrained
from modeling.model import GPT, GPTConfig
from tokenization.bpe import load_tokenizer, train_bpe

pytestmark = pytest.mark.slow  # the harness and a few training steps: about a minute on a loaded CPU
lm_eval = pytest.importorskip("lm_eval", reason="lm-evaluation-harness is not installed (pip install -e '.[test]')")

FIRST = 17  # LAMBADA passages from the top of the file, plus every one whose last space-separated piece holds white
# space (lm-eval's target differs there)
REL = 1e-6
CONTEXT = 128  # some passages fit (so the end-of-text prefix would show), longer ones are cut on the left

# WikiText's raw format: ` = Title = ` starts an article, ` = = Section = = ` a section, every line is padded with
# spaces, and split numbers and hyphens are marked (@-@ @,@ @.@).
PAGES = [
    " = Robert Boulter = \n \n Robert Boulter is an English film , television and theatre actor . He had a guest "
    "@-@ starring role on the television series The Bill in 2000 , and cost $ 1 @,@ 000 @.@ 5 a week . \n \n"
    " = = Career = = \n \n In 2006 , Boulter starred alongside Whishaw in the play Herons written by Simon Stephens "
    ", which was performed in 2001 at the Royal Court Theatre ( London ) . He said : \" it 's the role of a "
    "lifetime \" ; the critics ' reviews were warm ! \n \n = = = Stage = = = \n \n Was it N times ? Yes . \n ",
    " = Du Fu = \n \n Du Fu ( 712 – 770 ) was a prominent Chinese poet of the Tang dynasty . Along with Li Bai "
    "( Li Po ) , he is frequently called the greatest of the Chinese poets . The temperature fell to 5 ° C . \n \n"
    " = = Life = = \n \n Most of what is known of Du Fu 's life comes from his poems . His father 's family "
    "[ a minor branch ] lived near Luoyang ; his { paternal } line was famous . \n ",
    ' = Kiss You ( One Direction song ) = \n \n " Kiss You " is a song recorded by English @-@ Irish boy band One '
    "Direction for their second studio album , Take Me Home ( 2012 ) . It was released as the record 's second "
    "single in Germany and the third overall single on 7 January 2013 . \n \n",
]
WIKI_RAW = " \n" + "\n".join(PAGES)  # the file the benchmark reads
# The pages EleutherAI/wikitext_document_level makes of it: the blank line before the first heading is dropped.
HARNESS_PAGES = PAGES

PTB_RAW = "".join(
    f" {line} \n"
    for line in [
        "no it was n't black monday",
        "but while the new york stock exchange did n't fall apart friday as the dow jones industrial average plunged "
        "N points most of it in the final hour it barely managed to stay this side of chaos",
        "some circuit breakers installed after the october N crash failed their first test traders say unable to cool "
        "the selling panic in both stocks and futures",
        "the N stock specialist firms on the big board floor the buyers and sellers of last resort who were criticized "
        "after the N crash once again could n't handle the selling pressure",
        "big investment banks refused to step up to the plate to support the beleaguered floor traders by buying big "
        "blocks of stock traders say",
        "heavy selling of standard & poor 's 500-stock index futures in chicago <unk> beat stocks downward",
        "seven big board stocks ual amr bankamerica walt disney capital cities\\/abc philip morris and pacific telesis "
        "group stopped trading and never resumed",
        "the <unk> has already begun",
    ]
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Path]) -> Path:
    """A tiny GPT, with a small BPE trained on LAMBADA's text, briefly trained on the windows both evaluations score
    (so it predicts some final words and not others) and on the WikiText and PTB texts. A moderate loss everywhere
    keeps the float32 rounding of per-token log-probabilities (both sides') far inside the 1e-6 tolerance."""
    texts = [json.loads(line)["text"] for line in data["lambada-all"].read_text(encoding="utf-8").splitlines()[:400]]
    tokenizer = train_bpe(texts + PAGES + [PTB_RAW], vocab_size=1000)
    passages = read_lambada(data["lambada"], normalize_quotes=False, protocol=LM_EVAL)
    windows = [tokenizer.encode(p.context + " " + p.target)[-(CONTEXT + 1) :] for p in passages]
    for text in PAGES + [PTB_RAW]:
        ids = [tokenizer.eot_token] + tokenizer.encode(text)
        windows += [ids[i : i + CONTEXT + 1] for i in range(0, len(ids) - 1, CONTEXT)]
    width = max(len(w) for w in windows)
    inputs = torch.tensor([w[:-1] + [0] * (width - len(w)) for w in windows])
    targets = torch.tensor([w[1:] + [-1] * (width - len(w)) for w in windows])  # -1: padding, not trained
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a shared machine: one thread is fastest
    try:
        torch.manual_seed(0)
        model = GPT(GPTConfig(block_size=CONTEXT, vocab_size=tokenizer.n_vocab, n_layer=2, n_head=2, n_embd=64))
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for _ in range(60):
            loss = model(inputs, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("harness") / "tiny-gpt"
    save_pretrained(model, path, eos_token_id=tokenizer.eot_token)
    tokenizer.save(path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, eval_data_dir: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("harness-data")
    lines = (eval_data_dir / "lambada" / "lambada_test.jsonl").read_text(encoding="utf-8").splitlines()
    split_by_newline = [l for l in lines if any(c.isspace() for c in json.loads(l)["text"].split(" ")[-1])]
    assert len(split_by_newline) == 7  # e.g. "of\n\nPower": lm-eval's target holds two words there
    (folder / "lambada_test.jsonl").write_text("\n".join(lines[:FIRST] + split_by_newline) + "\n", encoding="utf-8")
    (folder / "wiki.test.raw").write_text(WIKI_RAW, encoding="utf-8")
    (folder / "ptb.test.txt").write_text(PTB_RAW, encoding="utf-8")
    write_pages(HARNESS_PAGES, folder / "wikitext-pages.jsonl")
    write_pages([PTB_RAW], folder / "ptb-pages.jsonl")
    return {
        "lambada": folder / "lambada_test.jsonl",
        "lambada-all": eval_data_dir / "lambada" / "lambada_test.jsonl",
        "wikitext2": folder / "wiki.test.raw",
        "ptb": folder / "ptb.test.txt",
        "wikitext-pages": folder / "wikitext-pages.jsonl",
        "ptb-pages": folder / "ptb-pages.jsonl",
    }


@pytest.fixture(scope="module")
def harness(checkpoint: Path, data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The harness's results ({task: {metric: value}}) for the checkpoint, run through its Python API."""
    monkeypatch = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("hf-home")
    for key, value in {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(home),
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        monkeypatch.setenv(key, value)
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    tasks = tmp_path_factory.mktemp("harness-tasks")
    write_local_task("lambada_openai", "local_lambada_openai", data["lambada"], tasks)
    write_local_task("wikitext", "local_wikitext", data["wikitext-pages"], tasks)
    write_local_task("wikitext", "local_ptb", data["ptb-pages"], tasks)
    try:
        out = simple_evaluate(
            model="hf",
            model_args=f"pretrained={checkpoint},dtype=float32",
            tasks=["local_lambada_openai", "local_wikitext", "local_ptb"],
            task_manager=TaskManager(include_path=str(tasks)),
            device="cpu",
            batch_size=4,
            bootstrap_iters=0,
        )
    finally:
        monkeypatch.undo()
    return {task: {k.split(",")[0]: v for k, v in metrics.items()} for task, metrics in out["results"].items()}


@pytest.fixture(scope="module")
def ours(checkpoint: Path, data: dict[str, Path]) -> dict[str, dict]:
    """Our library's lm-eval protocol on the same checkpoint and files: {task: metrics}."""
    out = evaluate_checkpoint(
        checkpoint,
        tasks=["lambada", "wikitext2", "ptb"],
        protocol=LM_EVAL,
        task_paths={k: str(data[k]) for k in ("lambada", "wikitext2", "ptb")},
        batch_size=4,
        device="cpu",
    )
    return {task: by_protocol[LM_EVAL]["metrics"] for task, by_protocol in out["results"].items()}


def test_lambada_openai_acc_and_perplexity_equal_the_harness(
    harness: dict, ours: dict, checkpoint: Path, data: dict[str, Path]
) -> None:
    theirs, mine = harness["local_lambada_openai"], ours["lambada"]
    tokenizer = load_tokenizer(checkpoint)
    lengths = [
        len(tokenizer.encode(p.context + " " + p.target))
        for p in read_lambada(data["lambada"], normalize_quotes=False, protocol=LM_EVAL)
    ]
    assert min(lengths) <= CONTEXT < max(lengths)  # whole passages, where a prefix would count, and cut ones
    assert mine["examples"] == FIRST + 7
    assert 0 < theirs["acc"] < 1  # the model knows some final words, not all: the accuracy can tell
    assert mine["acc"] == pytest.approx(theirs["acc"], rel=REL)
    assert mine["perplexity"] == pytest.approx(theirs["perplexity"], rel=REL)


@pytest.mark.parametrize("task,local", [("wikitext2", "local_wikitext"), ("ptb", "local_ptb")])
def test_wikitext_recipe_word_perplexity_and_bits_per_byte_equal_the_harness(
    harness: dict, ours: dict, task: str, local: str
) -> None:
    theirs, mine = harness[local], ours[task]
    assert mine["tokens"] > 2 * CONTEXT  # several windows of the context
    for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        assert mine[metric] == pytest.approx(theirs[metric], rel=REL), metric
