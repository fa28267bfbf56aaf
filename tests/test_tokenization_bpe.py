"""tokenization.bpe: GPT-2's vocabulary and our trained one encode exactly like independent implementations."""

from __future__ import annotations

import glob
import json
import sysconfig
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tiktoken
import tiktoken.load
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2TokenizerFast

from tokenization.bpe import (
    EOT,
    BPETokenizer,
    bytes_to_unicode,
    load_gpt2,
    load_tokenizer,
    train_bpe,
    train_bpe_from_shards,
    train_hf_bpe,
    train_or_reuse_bpe,
)

# The GPT-2 release's own pre-tokenization regex (before tiktoken's possessive rewrite).
GPT2_RELEASE_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

VARIED = [
    "Hello world",
    " Hello world",
    "It's they're we've I'd you'll she'd I'M DON'T 'tis o'clock",
    "Numbers: 1234567890 3.14159 1,000,000 0x1F 1e-9 2026-11-28 ٣٤٥ ⅻ ²³",
    "   leading and   multiple    spaces\t\ttabs\n\nnewlines\r\n  \n \u3000ideographic space ",
    "Ελληνικά, русский, עברית, العربية, हिन्दी, ไทย, 日本語のテキスト, 中文, 한국어, Tiếng Việt, ქართული",
    "emoji 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ 🤖🤖",
    "def f(x):\n    return {'a': [x**2 for x in range(10)]}  # comment\n\tif x != y: pass\n",
    "NBSP\u00a0here, zero\u200bwidth, combining e\u0301, ﬁ ligature, \u2028line separator, soft\u00adhyphen",
    "https://example.com/path?q=1&x=%20#frag C:\\Windows\\system32 user@example.org",
    "Ｆｕｌｌｗｉｄｔｈ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math ∀x∈ℝ: x² ≥ 0",
    "control \x00\x01\x7f chars and a lone \ufffd and private use \ue000",
    "",
    " ",
    "\n",
    "a" * 500,
    "🙂" * 40,
    "ALL CAPS SHOUTING!!! ... ??? ---- ==== ____",
]


@pytest.fixture(scope="module")
def gpt2(gpt2_bpe_dir: Path) -> BPETokenizer:
    return load_gpt2(gpt2_bpe_dir / "encoder.json", gpt2_bpe_dir / "vocab.bpe")


@pytest.fixture(scope="module")
def hf_gpt2(gpt2_bpe_dir: Path) -> Tokenizer:
    """HF's independent Rust BPE built from the same two files (GPT-2's files are HF's vocab.json + merges.txt)."""
    hf = Tokenizer(models.BPE.from_file(str(gpt2_bpe_dir / "encoder.json"), str(gpt2_bpe_dir / "vocab.bpe")))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return hf


def _training_texts() -> list[str]:
    """Python's stdlib sources (always present) plus prose in several scripts."""
    sources = sorted(glob.glob(str(Path(sysconfig.get_paths()["stdlib"]) / "*.py")))[:60]
    texts = [Path(p).read_text(encoding="utf-8", errors="replace") for p in sources]
    return texts + [t for t in VARIED if t] * 3


@pytest.fixture(scope="module")
def trained_pair() -> tuple[Tokenizer, BPETokenizer]:
    hf = train_hf_bpe(_training_texts(), vocab_size=3000)
    return hf, BPETokenizer.from_hf(hf)


# --- GPT-2's vocabulary ---


def test_gpt2_known_ids(gpt2: BPETokenizer) -> None:
    assert gpt2.encode("Hello world") == [15496, 995]
    assert gpt2.encode(" Hello world") == [18435, 995]
    assert gpt2.eot_token == 50256
    assert gpt2.n_vocab == 50257
    assert gpt2.decode([15496, 995, 50256]) == "Hello world<|endoftext|>"


def test_gpt2_equals_tiktoken_gpt2_from_same_files(
    gpt2: BPETokenizer, gpt2_bpe_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our loader against tiktoken's own loader of OpenAI's files: same ranks, same pattern, same ids. Both encode
    with tiktoken, so this checks the loading, not the BPE itself; the independent check of the ids is
    `test_gpt2_equals_hf_tokenizers` (Hugging Face `tokenizers`, another implementation)."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken would otherwise cache a copy keyed by path
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(gpt2_bpe_dir / "vocab.bpe"), encoder_json_file=str(gpt2_bpe_dir / "encoder.json")
    )
    reference = tiktoken.Encoding(
        name="gpt2-reference", pat_str=GPT2_RELEASE_PATTERN, mergeable_ranks=ranks, special_tokens={EOT: 50256}
    )
    assert gpt2.ranks == ranks
    for text in VARIED:
        assert gpt2.encode(text) == reference.encode_ordinary(text), text


def test_gpt2_equals_hf_tokenizers(gpt2: BPETokenizer, hf_gpt2: Tokenizer) -> None:
    for text in VARIED:
        assert gpt2.encode(text) == hf_gpt2.encode(text).ids, text
        assert gpt2.decode(gpt2.encode(text)) == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=80))
def test_gpt2_round_trip_and_hf_agreement_on_any_text(gpt2: BPETokenizer, hf_gpt2: Tokenizer, text: str) -> None:
    ids = gpt2.encode(text)
    assert gpt2.decode(ids) == text
    assert ids == hf_gpt2.encode(text).ids


def test_literal_endoftext_is_plain_text(gpt2: BPETokenizer) -> None:
    ids = gpt2.encode(f"a{EOT}b")
    assert gpt2.eot_token not in ids
    assert gpt2.decode(ids) == f"a{EOT}b"


@pytest.mark.parametrize("threads", [1, 2])
def test_encode_batch_equals_encode(gpt2: BPETokenizer, threads: int) -> None:
    assert gpt2.encode_batch(VARIED, threads=threads) == [gpt2.encode(t) for t in VARIED]


def test_gpt2_save_round_trip_in_gpt2_format(
    gpt2: BPETokenizer, gpt2_bpe_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpt2.save(tmp_path)
    # Our encoder.json/vocab.bpe have exactly OpenAI's content (tiktoken's loader asserts the two files agree).
    saved, original = tmp_path, gpt2_bpe_dir
    assert json.loads((saved / "encoder.json").read_text()) == json.loads((original / "encoder.json").read_text())
    assert (saved / "vocab.bpe").read_text().split("\n")[1:] == (original / "vocab.bpe").read_text().split("\n")[1:]
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(str(tmp_path / "vocab.bpe"), str(tmp_path / "encoder.json"))
    assert ranks == gpt2.ranks
    hf = GPT2TokenizerFast.from_pretrained(str(tmp_path))
    for text in VARIED:
        if EOT not in text:
            assert hf.encode(text) == gpt2.encode(text), text


# --- our trained vocabulary ---


def test_trained_ids_equal_hf_trainer_output(trained_pair: tuple[Tokenizer, BPETokenizer]) -> None:
    hf, ours = trained_pair
    assert ours.n_vocab == hf.get_vocab_size() == 3000
    assert ours.eot_token == hf.token_to_id(EOT)
    for text in _training_texts()[:20] + VARIED:
        assert ours.encode(text) == hf.encode(text).ids, text[:80]
        assert ours.decode(ours.encode(text)) == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=80).filter(lambda t: EOT not in t))
def test_trained_round_trip_and_hf_agreement_on_any_text(
    trained_pair: tuple[Tokenizer, BPETokenizer], text: str
) -> None:
    hf, ours = trained_pair
    ids = ours.encode(text)
    assert ours.decode(ids) == text
    assert ids == hf.encode(text).ids


def test_trained_save_and_load_every_layout(trained_pair: tuple[Tokenizer, BPETokenizer], tmp_path: Path) -> None:
    _, ours = trained_pair
    ours.save(tmp_path / "all")
    names = {p.name for p in (tmp_path / "all").iterdir()}
    assert {"tokenizer.json", "encoder.json", "vocab.bpe", "vocab.json", "merges.txt"} <= names
    layouts = {"gpt2": ["encoder.json", "vocab.bpe"], "hf-slow": ["vocab.json", "merges.txt"], "hf": ["tokenizer.json"]}
    for layout, files in layouts.items():
        (tmp_path / layout).mkdir()
        for name in files:
            (tmp_path / layout / name).write_bytes((tmp_path / "all" / name).read_bytes())
        loaded = load_tokenizer(tmp_path / layout)
        assert loaded.fingerprint == ours.fingerprint, layout
        assert loaded.eot_token == ours.eot_token
    hf_loaded = GPT2TokenizerFast.from_pretrained(str(tmp_path / "all"))
    assert hf_loaded.eos_token == EOT
    for text in VARIED:
        if EOT not in text:
            assert hf_loaded.encode(text) == ours.encode(text), text


def test_small_corpus_warns_and_reports_real_size() -> None:
    with pytest.warns(UserWarning, match="only supports"):
        tokenizer = train_bpe(["the cat sat on the mat"] * 5, vocab_size=5000)
    assert 257 < tokenizer.n_vocab < 5000


def test_train_from_shards_streams_train_split_only(tmp_path: Path) -> None:
    shards = tmp_path / "corpus" / "shards"
    shards.mkdir(parents=True)
    pq.write_table(
        pa.table({"id": ["a", "b"], "text": ["zebra zebra zebra quagga", "zebra quagga okapi"]}),
        shards / "train-00000-of-00001.parquet",
    )
    pq.write_table(
        pa.table({"id": ["c"], "text": ["validation validation validation"]}), shards / "val-00000-of-00001.parquet"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer = train_bpe_from_shards(tmp_path / "corpus", vocab_size=300)
    assert tokenizer.encode(" zebra") == [tokenizer.ranks[b" zebra"]]
    assert b" validation" not in tokenizer.ranks
    (tmp_path / "empty" / "shards").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no train shards"):
        train_bpe_from_shards(tmp_path / "empty", vocab_size=300)
    with pytest.raises(FileNotFoundError, match="no shards directory"):
        train_bpe_from_shards(tmp_path / "corpus" / "shards", vocab_size=300)  # one level too deep


def test_trained_tokenizer_is_reused_only_for_the_same_corpus_build(tmp_path: Path) -> None:
    corpus, saved = tmp_path / "corpus", tmp_path / "run" / "tokenizer"
    (corpus / "shards").mkdir(parents=True)
    pq.write_table(
        pa.table({"id": ["a"], "text": ["zebra zebra zebra quagga zebra"]}),
        corpus / "shards" / "train-00000-of-00001.parquet",
    )
    (corpus / "manifest.json").write_text('{"build": 1}')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, reused_first = train_or_reuse_bpe(corpus, saved, vocab_size=300)
        again, reused_again = train_or_reuse_bpe(corpus, saved, vocab_size=300)
        assert (reused_first, reused_again) == (False, True) and again.fingerprint == first.fingerprint
        assert train_or_reuse_bpe(corpus, saved, vocab_size=290)[1] is False  # other settings: trained anew
        pq.write_table(
            pa.table({"id": ["b"], "text": ["okapi okapi okapi okapi okapi"]}),
            corpus / "shards" / "train-00000-of-00001.parquet",
        )
        (corpus / "manifest.json").write_text('{"build": 2}')
        rebuilt, reused = train_or_reuse_bpe(corpus, saved, vocab_size=290)
    assert not reused and b" okapi" in rebuilt.ranks and b" zebra" not in rebuilt.ranks


# --- vocabularies tiktoken cannot encode exactly are refused ---


def _spell(token: bytes) -> str:
    return "".join(bytes_to_unicode()[b] for b in token)


def _byte_vocab() -> dict[str, int]:
    return {_spell(bytes([b])): b for b in range(256)}


def test_merge_ids_out_of_order_are_refused(tmp_path: Path) -> None:
    vocab = _byte_vocab() | {"ab": 257, "cd": 256, EOT: 258}  # "ab" is merged first but got the larger id
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\nc d\n")
    with pytest.raises(ValueError, match="rising in merge order"):
        load_tokenizer(tmp_path)


def test_token_that_does_not_encode_to_itself_is_refused(tmp_path: Path) -> None:
    # "abc" is made from a + bc, but BPE of the bytes a b c merges a+b first and never reaches "abc". tiktoken would
    # still emit "abc" for the piece "abc" (its whole-piece shortcut); HF gives [ab, c]. So this vocabulary is refused.
    vocab = _byte_vocab() | {"ab": 256, "bc": 257, "abc": 258, EOT: 259}
    merges = "#version: 0.2\na b\nb c\na bc\n"
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text(merges)
    hf = Tokenizer(models.BPE.from_file(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    assert hf.encode("abc").ids == [256, ord("c")]  # ids of "ab", "c": the divergence the check prevents
    with pytest.raises(ValueError, match="does not BPE-encode to itself"):
        load_tokenizer(tmp_path)


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no tokenizer files"):
        load_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_tokenizer(tmp_path / "missing")
    url = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
    with pytest.raises(FileNotFoundError, match="not found"):  # local files only: a URL is never fetched
        load_gpt2(url + "encoder.json", url + "vocab.bpe")
    (tmp_path / "encoder.json").write_text(json.dumps(_byte_vocab() | {EOT: 256}))
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\nabc\n")
    with pytest.raises(ValueError, match=r"vocab\.bpe:2"):
        load_tokenizer(tmp_path)
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\n")
    (tmp_path / "encoder.json").write_text(json.dumps(_byte_vocab()))
    with pytest.raises(ValueError, match="no <\\|endoftext\\|> token"):
        load_tokenizer(tmp_path)


def test_non_gpt2_hf_tokenizer_is_refused() -> None:
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    with pytest.raises(ValueError, match="add_prefix_space=False"):
        BPETokenizer.from_hf(hf)
