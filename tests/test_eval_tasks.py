"""Each task on small files written in its real published format, with a model whose preferences are known."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import sacrebleu
import torch
import torch.nn.functional as F
from rouge_score import rouge_scorer
from test_eval_scoring import PieceTokenizer, PreferModel

from evaluation.cbt import evaluate_cbt
from evaluation.coqa import evaluate_coqa, turn_f1
from evaluation.lambada import Passage, evaluate_lambada, lm_eval_request, read_lambada
from evaluation.language_modeling import (
    LM_TASKS,
    evaluate_lm_task,
    lm_eval_detokenize,
    read_ptb,
    read_wikitext,
    wikitext_pages,
)
from evaluation.lm import Scorer
from evaluation.nq import evaluate_nq
from evaluation.protocol import LM_EVAL
from evaluation.summarization import evaluate_summarization, parse_story
from evaluation.translation import evaluate_translation
from evaluation.wsc import evaluate_wsc


class Uniform(torch.nn.Module):
    """Every token has probability 1/V: a text of n tokens has log-prob -n log V, whatever the windows."""

    def __init__(self, vocab: int, block_size: int = 16) -> None:
        super().__init__()
        self.vocab, self.block_size = vocab, block_size

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*idx.shape, self.vocab)


# -- LAMBADA --------------------------------------------------------------------------------------------------
def test_lambada_metrics_and_stop_word_filter(tmp_path: Path) -> None:
    path = tmp_path / "lambada_test.jsonl"
    passages = ["At the party Tom met Mary Poppins", "\u201cHello,\u201d he said to the old dog"]
    path.write_text("".join(json.dumps({"text": p}) + "\n" for p in passages), encoding="utf-8")
    tokenizer = PieceTokenizer()
    # After "met Mary" the model prefers the stop word "the" (seen twice) over "Poppins" (once).
    model = PreferModel(
        tokenizer,
        ["At the party Tom met Mary the"] * 2
        + ["At the party Tom met Mary Poppins", '"Hello," he said to the old dog'],
    )
    result = evaluate_lambada(path, Scorer(model, batch_size=4), tokenizer, candidates=10)
    m = result.metrics
    assert m["examples"] == 2
    assert m["acc_word"] == 50.0  # passage 1 greedy word is "the"
    assert m["acc_word_stopword_filter"] == 100.0  # the filter skips "the" and finds "Poppins"
    assert m["acc_last_token"] == 50.0 and "acc" not in m  # lm-eval's accuracy comes from its own protocol only
    # Perplexity from the model's own next-token distributions, one target token each.
    expected = []
    for context, target in (("At the party Tom met Mary", " Poppins"), ('"Hello," he said to the old', " dog")):
        logits = model.next_logits([0] + tokenizer.encode(context))
        expected.append(float(F.log_softmax(logits.double(), -1)[tokenizer.encode(target)[0]]))
    assert m["ppl"] == pytest.approx(math.exp(-sum(expected) / 2), rel=1e-4)  # fp32 log-softmax
    assert read_lambada(path)[1].context == '"Hello," he said to the old'
    assert read_lambada(path, normalize_quotes=False)[1].context.startswith("\u201cHello")


def test_lambada_protocols_split_prefix_and_quote_as_they_say(tmp_path: Path) -> None:
    """paper: the last word after any white space, <|endoftext|> first, ASCII quotes; lm-eval: split(' '), no
    prefix, quotes kept, and the target's tokens are what encoding the whole text adds after the context."""
    path = tmp_path / "lambada_test.jsonl"
    path.write_text(json.dumps({"text": "\u201cThe Will to\u201d is a book of\n\nPower"}) + "\n", encoding="utf-8")
    assert read_lambada(path)[0] == Passage('"The Will to" is a book of', "Power")
    assert read_lambada(path, normalize_quotes=False, protocol=LM_EVAL)[0] == Passage(
        "\u201cThe Will to\u201d is a book", "of\n\nPower"
    )
    tokenizer = PieceTokenizer()
    assert lm_eval_request(tokenizer, "a book ", " of") == (tokenizer.encode("a book"), tokenizer.encode("  of"))
    model = PreferModel(tokenizer, ["\u201cThe Will to\u201d is a book of\n\nPower"])
    seen: list[tuple[list[int], list[int]]] = []

    class Recording(Scorer):
        def score_continuations(self, requests):  # type: ignore[no-untyped-def]
            seen.extend(requests)
            return super().score_continuations(requests)

    metrics = evaluate_lambada(path, Recording(model), tokenizer, protocol=LM_EVAL).metrics
    assert seen == [(tokenizer.encode("\u201cThe Will to\u201d is a book"), tokenizer.encode(" of\n\nPower"))]
    assert metrics["acc"] == 1.0 and set(metrics) == {"acc", "perplexity", "examples"}
    # acc needs every target token to be the argmax: here only the last one is (after "\n\n" the model says Power).
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"text": "I like the\n\nPower"}) + "\n")
    model = PreferModel(tokenizer, ["\u201cThe Will to\u201d is a book of\n\nPower", "I like cats"])
    assert evaluate_lambada(path, Scorer(model), tokenizer, protocol=LM_EVAL).metrics["acc"] == 0.5
    seen.clear()
    evaluate_lambada(path, Recording(model), tokenizer, protocol=LM_EVAL, eot_prefix=True, normalize_quotes=True)
    assert seen[0][0] == [tokenizer.eot_token] + tokenizer.encode('"The Will to" is a book')


def test_missing_file_names_the_file_and_where_it_is_published(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"lambada_test\.jsonl.*openaipublic"):
        read_lambada(tmp_path / "lambada_test.jsonl")


# -- CBT ------------------------------------------------------------------------------------------------------
def _cbt_example(question: str, answer: str, candidates: list[str]) -> str:
    lines = [f"{i} The sun was warm on day {i} , and `` nothing '' happened ." for i in range(1, 20)]
    lines.append("20 Every morning the cat went to the market to buy fish .")
    lines.append(f"21 {question}\t{answer}\t\t{'|'.join(candidates)}")
    return "\n".join(lines) + "\n\n"


def test_cbt_picks_the_candidate_the_model_prefers(tmp_path: Path) -> None:
    candidates = ["river", "market", "house", "garden", "forest", "road", "barn", "field", "sea", "hill"]
    path = tmp_path / "cbtest_CN_valid_2000ex.txt"
    path.write_text(
        _cbt_example("The cat went to the XXXXX to buy fish .", "market", candidates)
        + _cbt_example("Then the dog ran to the XXXXX .", "river", candidates),
        encoding="utf-8",
    )
    tokenizer = PieceTokenizer()
    model = PreferModel(tokenizer, ["The cat went to the market to buy fish.", "Then the dog ran to the hill."])
    result = evaluate_cbt(path, Scorer(model, batch_size=8, block_size=512), tokenizer)
    assert result == {"acc": 50.0, "examples": 2}  # right on the first, the model prefers "hill" on the second


# -- WSC ------------------------------------------------------------------------------------------------------
_SCHEMA = """<schema>
<text>
<txt1>
The trophy doesn't fit into the brown suitcase because
</txt1>
<pron> it  </pron>
<txt2> is too {adjective}.
</txt2>
</text>
<quote>
<pron>it </pron>
<quote2> is too {adjective}</quote2>
</quote>
<answers>
<answer>The trophy </answer>
<answer>the brown suitcase </answer>
</answers>
<correctAnswer> {answer}  </correctAnswer>
<source> Hector Levesque (caf\xe9) </source>
</schema>
"""


def test_wsc_full_and_partial_scoring(tmp_path: Path) -> None:
    xml = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<collection>\n'
        + _SCHEMA.format(adjective="large", answer="A")
        + _SCHEMA.format(adjective="small", answer="B.")
        + "</collection>\n"
    )
    path = tmp_path / "WSCollection.xml"
    path.write_bytes(xml.encode("iso-8859-1"))
    tokenizer = PieceTokenizer()
    # The model has seen "the trophy" with both adjectives: right on the first schema, wrong on the second.
    model = PreferModel(
        tokenizer,
        [
            "The trophy doesn't fit into the brown suitcase because the trophy is too large.",
            "The trophy doesn't fit into the brown suitcase because the trophy is too small.",
        ],
    )
    result = evaluate_wsc(path, Scorer(model, batch_size=4), tokenizer, limit=2)
    assert result == {"acc_full": 50.0, "acc_partial": 50.0, "examples": 2}
    with pytest.raises(ValueError, match="273"):
        evaluate_wsc(path, Scorer(model), tokenizer)


# -- CoQA -----------------------------------------------------------------------------------------------------
def test_coqa_official_f1(tmp_path: Path) -> None:
    story = "A white cat lived in a house. It slept on the mat in the kitchen."
    data = {
        "version": "1.0",
        "data": [
            {
                "source": "mctest",
                "id": "s1",
                "filename": "mc160.test.1",
                "story": story,
                "questions": [
                    {"input_text": "What color was the cat?", "turn_id": 1},
                    {"input_text": "Where did it sleep?", "turn_id": 2},
                ],
                "answers": [
                    {"input_text": "white", "span_start": 2, "span_end": 7, "span_text": "white", "turn_id": 1},
                    {
                        "input_text": "on the mat",
                        "span_start": 36,
                        "span_end": 46,
                        "span_text": "on the mat",
                        "turn_id": 2,
                    },
                ],
                "additional_answers": {
                    "0": [{"input_text": "White", "turn_id": 1}, {"input_text": "on a mat", "turn_id": 2}],
                    "1": [{"input_text": "white.", "turn_id": 1}, {"input_text": "in the house", "turn_id": 2}],
                },
            }
        ],
    }
    path = tmp_path / "coqa-dev-v1.0.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    tokenizer = PieceTokenizer()
    model = PreferModel(
        tokenizer, ["Q: What color was the cat?\nA: white\n\n", "Q: Where did it sleep?\nA: the mat\n\n"]
    )
    result = evaluate_coqa(path, Scorer(model, batch_size=2, block_size=512), tokenizer)
    # Turn 2, "the mat" -> "mat" against "on mat", "on mat", "in house": F1 2/3 whichever gold is left out.
    assert result["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert turn_f1("The cat sat!", ["a cat sat down"]) == pytest.approx(0.8)


# -- Natural Questions ---------------------------------------------------------------------------------------
def test_nq_exact_match(tmp_path: Path) -> None:
    shots = [{"question": f"who painted picture number {i}", "answer": [f"painter {i}"]} for i in range(8)]
    tests = [
        {"question": "who wrote hamlet", "answer": ["Shakespeare", "William Shakespeare"]},
        {"question": "what is the capital of france", "answer": ["Lyon"]},
    ]
    path = tmp_path / "NQ-open.dev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in shots + tests), encoding="utf-8")
    tokenizer = PieceTokenizer()
    model = PreferModel(
        tokenizer, ["Q: who wrote hamlet?\nA: William Shakespeare.\n", "Q: what is the capital of france?\nA: Paris\n"]
    )
    assert evaluate_nq(path, Scorer(model, block_size=512), tokenizer) == {"exact_match": 50.0, "examples": 2}


# -- WMT14 ----------------------------------------------------------------------------------------------------
def _sgm(kind: str, lang: str, segments: list[str]) -> str:
    tag = "srcset" if kind == "src" else "refset"
    segs = "\n".join(f'<seg id="{i}">{s}</seg>' for i, s in enumerate(segments, 1))
    return (
        f'<{tag} setid="newstest2014" srclang="any" trglang="{lang}">\n'
        f'<doc sysid="ref" docid="1-test" genre="news" origlang="en">\n{segs}\n</doc>\n</{tag}>\n'
    )


def test_translation_bleu_of_the_first_generated_line(tmp_path: Path) -> None:
    en = [
        "Good morning to you all",
        "I like bread &amp; butter",
        "the black cat sleeps on the big sofa today",
        "a red house stands near the old river bank",
    ]
    fr = [
        "Bonjour à vous tous",
        "J'aime le pain et le beurre",
        "le chat noir dort sur le grand canapé aujourd'hui",
        "une maison rouge se trouve près de la vieille rive",
    ]
    for kind, lang, segs in (("src", "en", en), ("ref", "fr", fr), ("src", "fr", fr), ("ref", "en", en)):
        (tmp_path / f"newstest2014-fren-{kind}.{lang}.sgm").write_text(_sgm(kind, lang, segs), encoding="utf-8")
    tokenizer = PieceTokenizer()
    wrong = "une maison bleue se trouve près du vieux pont"
    model = PreferModel(tokenizer, [f"{en[2]} = {fr[2]}\n", f"{en[3]} = {wrong}\n"], order=12)
    result = evaluate_translation(tmp_path, "en", "fr", Scorer(model, block_size=512), tokenizer, n_shots=2)
    expected = sacrebleu.corpus_bleu([fr[2], wrong], [[fr[2], fr[3]]]).score
    assert result == {"bleu": pytest.approx(expected), "examples": 2}
    assert 0 < expected < 100
    fr_en = evaluate_translation(tmp_path, "fr", "en", Scorer(model, block_size=512), tokenizer, n_shots=2, limit=1)
    assert fr_en["examples"] == 1


# -- CNN/Daily Mail -------------------------------------------------------------------------------------------
def test_summarization_first_three_sentences_rouge(tmp_path: Path) -> None:
    article = "A cat spent the whole day on a mat in the sun. Neighbours said it looked pleased."
    highlights = "The cat sat on the mat.\nIt was happy."
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps({"id": "1", "article": article, "highlights": highlights}) + "\n", encoding="utf-8")
    tokenizer = PieceTokenizer()
    model = PreferModel(
        tokenizer, [article + "\nTL;DR: The cat sat on the mat. It was happy. It purred. It slept."], boost=30.0
    )
    result = evaluate_summarization(path, Scorer(model, block_size=512), tokenizer)
    scores = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True).score(
        highlights, "The cat sat on the mat.\nIt was happy.\nIt purred."
    )  # the fourth sentence is dropped
    for key in ("rouge1", "rouge2", "rougeL"):
        assert result[key] == pytest.approx(100 * scores[key].fmeasure)
    story = "(CNN) A cat sat.\n\nIt was sunny.\n\n@highlight\n\nCat sits\n\n@highlight\n\nSun shines\n"
    assert parse_story(story) == ("(CNN) A cat sat. It was sunny.", "Cat sits\nSun shines")


# -- Language modelling --------------------------------------------------------------------------------------
WIKI = (
    " \n = Robert Boulter = \n \n Robert Boulter is an English film , television and theatre actor . "
    "He had a guest @-@ starring role in 2000 , and cost $ 1 @,@ 000 . \n \n = = Career = = \n \n"
    " In 2006 , Boulter starred in Herons . \n \n = Du Fu = \n \n Du Fu ( 712 – 770 ) was a Chinese poet . \n \n"
)


def test_wikitext_articles_word_count_and_word_perplexity(tmp_path: Path) -> None:
    path = tmp_path / "wiki.test.raw"
    path.write_text(WIKI, encoding="utf-8")
    corpus = read_wikitext(path)
    assert len(corpus.documents) == 2 and corpus.documents[1].startswith("= Du Fu =")
    assert "guest-starring role in 2000, and cost $1,000." in corpus.documents[0]
    assert corpus.units == len(WIKI.split())
    tokenizer = PieceTokenizer()
    n_tokens = sum(len(tokenizer.encode(d)) for d in corpus.documents)
    result = evaluate_lm_task(LM_TASKS["wikitext2"], path, Scorer(Uniform(4000)), tokenizer, overlap_stride=8)
    expected = math.exp(n_tokens * math.log(4000) / corpus.units)  # uniform model: n_tokens * log V nats in all
    assert result["ppl"] == pytest.approx(expected) and result["ppl@stride8"] == pytest.approx(expected)
    assert result["tokens"] == n_tokens and result["detokenized_lines"] == 1.0
    # Bits per byte of the original articles: all the file but the blank line before the first title and the
    # newline between the two articles.
    assert result["bytes"] == len(WIKI.encode()) - len(" \n") - 1
    assert result["bpb"] == pytest.approx(n_tokens * math.log2(4000) / result["bytes"])


def test_lm_eval_protocol_counts_words_and_bytes_of_the_original_pages(tmp_path: Path) -> None:
    """lm-eval's wikitext recipe: pages as the harness's data set cuts them, its de-tokenizer, words by
    re.split(r"\\s+") and UTF-8 bytes of the original pages, and the PTB file as one page."""
    path = tmp_path / "wiki.test.raw"
    path.write_text(WIKI, encoding="utf-8")
    pages = wikitext_pages(WIKI)
    assert len(pages) == 2 and pages[0].startswith(" = Robert Boulter = ") and pages[1].startswith(" = Du Fu = ")
    assert lm_eval_detokenize(pages[0]).startswith(" = Robert Boulter =\n\nRobert Boulter is an English film, ")
    assert "guest-starring role in 2000, and cost $ 1,000." in lm_eval_detokenize(pages[0])
    tokenizer = PieceTokenizer()
    n_tokens = sum(len(tokenizer.encode(lm_eval_detokenize(p))) for p in pages)
    words = sum(len(re.split(r"\s+", p)) for p in pages)
    n_bytes = sum(len(p.encode()) for p in pages)
    result = evaluate_lm_task(LM_TASKS["wikitext2"], path, Scorer(Uniform(4000)), tokenizer, protocol=LM_EVAL)
    assert (result["words"], result["bytes"], result["tokens"]) == (words, n_bytes, n_tokens)
    nats = n_tokens * math.log(4000)
    assert result["word_perplexity"] == pytest.approx(math.exp(nats / words))
    assert result["byte_perplexity"] == pytest.approx(math.exp(nats / n_bytes))
    assert result["bits_per_byte"] == pytest.approx(nats / n_bytes / math.log(2))
    ptb = tmp_path / "ptb.test.txt"
    ptb.write_text(" no it was n't black monday \n the N stocks fell \n", encoding="utf-8")
    result = evaluate_lm_task(LM_TASKS["ptb"], ptb, Scorer(Uniform(4000)), tokenizer, protocol=LM_EVAL)
    assert result["documents"] == 1 and result["words"] == 6 + 4 + 2  # plus the empty pieces at both ends
    with pytest.raises(ValueError, match="enwik8: the lm-eval protocol covers lambada, wikitext2"):
        evaluate_lm_task(LM_TASKS["enwik8"], ptb, Scorer(Uniform(4000)), tokenizer, protocol=LM_EVAL)


def test_ptb_counts_an_end_of_sentence_per_line(tmp_path: Path) -> None:
    path = tmp_path / "ptb.test.txt"
    path.write_text(
        " no it was n't black monday \n but while the new york stock exchange did n't fall apart \n", encoding="utf-8"
    )
    corpus = read_ptb(path)
    assert corpus.units == 6 + 1 + 11 + 1
    assert corpus.n_bytes == len(path.read_text().encode())  # bits per byte of the file as published
    assert corpus.documents == ["No it wasn't black monday\nBut while the new york stock exchange didn't fall apart\n"]


@pytest.mark.parametrize("name,unit_bits", [("enwik8", "bpb"), ("text8", "bpc")])
def test_character_level_sets_score_the_last_five_million_units(tmp_path: Path, name: str, unit_bits: str) -> None:
    path = tmp_path / name
    head, tail = "h" * 1000, ("abc de " * 800_000)[:5_000_000]
    path.write_text(head + tail, encoding="ascii")
    corpus = LM_TASKS[name].read(path, 3, True)  # limit: the first 3000 units of the test part
    assert corpus.units == 3000 and corpus.documents == [tail[:3000]]
    tokenizer = PieceTokenizer()
    n_tokens = len(tokenizer.encode(tail[:3000]))
    result = evaluate_lm_task(LM_TASKS[name], path, Scorer(Uniform(4000, block_size=64)), tokenizer, limit=3)
    assert result[unit_bits] == pytest.approx(n_tokens * math.log2(4000) / 3000)


def test_one_billion_word_sentences_are_separate_documents(tmp_path: Path) -> None:
    path = tmp_path / "news.en.heldout-00000-of-00050"
    path.write_text("It 's cold , he said .\nPrices rose 5 % in the U.S. .\n", encoding="utf-8")
    corpus = LM_TASKS["1bw"].read(path, None, True)
    assert corpus.documents == ["It's cold, he said.", "Prices rose 5% in the U.S.."]
    assert corpus.units == 7 + 8 and corpus.detokenized_fraction == 1.0


def test_cbt_rejects_a_malformed_question_line(tmp_path: Path) -> None:
    path = tmp_path / "cbtest_NE_valid_2000ex.txt"
    path.write_text(_cbt_example("The cat went home .", "home", ["home"] * 10), encoding="utf-8")  # no XXXXX
    with pytest.raises(ValueError, match=r"cbtest_NE_valid_2000ex\.txt:21"):
        evaluate_cbt(path, Scorer(Uniform(4000)), PieceTokenizer())


def test_summarization_reads_a_folder_of_story_files(tmp_path: Path) -> None:
    (tmp_path / "0001.story").write_text("A cat sat.\n\n@highlight\n\nThe cat sat\n", encoding="utf-8")
    (tmp_path / "0002.story").write_text("A dog ran.\n\n@highlight\n\nThe dog ran\n", encoding="utf-8")
    tokenizer = PieceTokenizer()
    model = PreferModel(tokenizer, ["A cat sat.\nTL;DR: The cat sat.", "A dog ran.\nTL;DR: The dog ran."], boost=30.0)
    result = evaluate_summarization(tmp_path, Scorer(model, block_size=512), tokenizer)
    assert result["examples"] == 2 and result["rouge1"] == pytest.approx(100.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .story files"):
        evaluate_summarization(tmp_path / "empty", Scorer(model, block_size=512), tokenizer)
