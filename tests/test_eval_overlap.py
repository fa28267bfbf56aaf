"""8-gram overlap: normalization, the Bloom filter's false-positive rate, Table-6-style percentages."""

from __future__ import annotations

import hashlib
import math
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluation import overlap
from evaluation.overlap import (
    NgramBloom,
    _word_bytes,
    build_bloom,
    corpus_bloom,
    measured_false_positive_rate,
    ngrams,
    normalized_words,
    overlap_percent,
    per_example_overlap,
)

REPO = Path(__file__).resolve().parents[1]


def test_ngrams_are_lowercased_alphanumeric_words() -> None:
    assert list(ngrams("The U.S.-based firm's CEO, Ann, said: 'Go!' now", n=8)) == [
        "the u s based firm s ceo ann",
        "u s based firm s ceo ann said",
        "s based firm s ceo ann said go",
        "based firm s ceo ann said go now",
    ]


@given(st.text(alphabet=st.sampled_from("aZ09 -.'\u00e9\u00df\u0130\u212a\u00bd\U0001f600\t\n"), max_size=60))
def test_the_fast_word_split_matches_the_regex(text: str) -> None:
    assert [w.decode() for w in _word_bytes(text)] == normalized_words(text)


def test_overlap_percent_counts_the_test_8grams_found() -> None:
    train = "one two three four five six seven eight nine and then something else entirely"
    bloom = build_bloom([train], expected_items=100)
    # Ten words: three 8-grams; the first two lie inside the training text's first nine words.
    assert overlap_percent(bloom, ["One two THREE four, five six seven eight nine TEN"]) == pytest.approx(200 / 3)
    assert per_example_overlap(bloom, ["short text", "zero one two three four five six seven eight"]) == [0.0, 50.0]


def _bits_and_positions(bloom: NgramBloom, tmp_path: Path) -> tuple[int, int]:
    """The filter's size m in bits and its number k of hash positions (the first 8 bytes of rbloom's file)."""
    bloom.save(tmp_path / "sized.ngram64")
    k = int.from_bytes((tmp_path / "sized.ngram64").read_bytes()[:8], "little")
    return bloom.bloom.size_in_bits, k


@pytest.mark.parametrize(
    "items, rate", [(1000, 1e-8), (10**6, 1e-8), (20_000, 1e-3), (12_345, 1e-2), (10**6, 1.1e-13), (7, 0.5)]
)
def test_a_full_filter_is_sized_for_its_false_positive_rate(items: int, rate: float, tmp_path: Path) -> None:
    """The arithmetic, exactly: with the filter's own m and k, the Bloom rate at `items` distinct 8-grams,
    (1 - e^(-k n / m))^k, plus the 64-bit collision rate n / 2^64 stays at or under the rate asked for
    (at 1e6 items and 1.1e-13 the collision term is half of it, so it cannot be left out)."""
    m, k = _bits_and_positions(NgramBloom.sized(items, rate), tmp_path)
    bloom_rate = (1 - math.exp(-k * items / m)) ** k
    assert bloom_rate + items / 2**64 <= rate, (m, k, bloom_rate)
    assert bloom_rate + items / 2**64 > 0.99 * rate or items < 10, "sized far larger than needed"


def test_no_false_negatives_and_no_hits_among_random_8grams() -> None:
    texts = [" ".join(f"w{i}x{j}" for j in range(40)) for i in range(500)]
    bloom = build_bloom(texts, expected_items=500 * 33)
    assert all(gram in bloom for text in texts[::50] for gram in ngrams(text))  # no false negatives
    assert measured_false_positive_rate(bloom, samples=20_000) == 0.0  # a coarse check; the sizing test is exact


def test_corpus_bloom_is_saved_and_reloaded(tmp_path: Path) -> None:
    shards = tmp_path / "corpus" / "shards"
    shards.mkdir(parents=True)
    text = "the quick brown fox jumps over the lazy dog near the river bank"
    pq.write_table(pa.table({"text": [text, None, "tiny"]}), shards / "train-00000-of-00001.parquet")
    cache = tmp_path / "corpus" / "overlap"
    bloom = corpus_bloom(tmp_path / "corpus", cache)
    (saved,) = cache.glob("train-8grams-*.ngram64")
    again = corpus_bloom(tmp_path / "corpus", cache)  # loaded from the file, in a fresh filter object
    assert overlap_percent(again, [text]) == overlap_percent(bloom, [text]) == 100.0
    assert list(cache.iterdir()) == [saved]
    # Put another filter in the cache file: a loaded filter answers by it, a rebuilt one by the shards.
    other = "an entirely different sentence that only the planted filter has seen before"
    build_bloom([other], expected_items=100).save(saved)
    planted = saved.read_bytes()
    loaded = corpus_bloom(tmp_path / "corpus", cache)
    assert overlap_percent(loaded, [other]) == 100.0 and overlap_percent(loaded, [text]) == 0.0
    assert saved.read_bytes() == planted and list(cache.iterdir()) == [saved]  # read, not rewritten
    pq.write_table(
        pa.table({"text": ["a different corpus now, with other words in it than before"]}),
        shards / "train-00000-of-00001.parquet",
    )
    rebuilt = corpus_bloom(tmp_path / "corpus", cache)  # the shards changed: a new filter, not the stale one
    assert overlap_percent(rebuilt, [text]) == 0.0 and len(list(cache.glob("*.ngram64"))) == 2
    with pytest.raises(FileNotFoundError, match="train-"):
        corpus_bloom(tmp_path / "elsewhere")


def _texts(rng: random.Random, count: int, vocab: list[str]) -> list[str]:
    return [" ".join(rng.choices(vocab, k=rng.randint(0, 60))) for _ in range(count)]


def test_overlap_agrees_exactly_with_a_set_of_8gram_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(overlap, "BATCH_WORDS", 97)  # many batches, with texts on both sides of their boundaries
    monkeypatch.setattr(overlap._word_hashes, "limit", 5)  # and a word cache that is cleared again and again
    rng = random.Random(0)
    vocab = [f"Word{i}," for i in range(12)] + ["The", "a.b", "x-y"]  # a small vocabulary: many shared 8-grams
    train = _texts(rng, 300, vocab)
    # Queries: fresh texts, training texts, and splices of both (8-grams partly in, partly out), some under 8 words.
    queries = (
        _texts(rng, 100, vocab)
        + train[:50]
        + [
            " ".join(a.split()[: rng.randint(0, 40)] + b.split()[rng.randint(0, 40) :])
            for a, b in zip(_texts(rng, 100, vocab[:5] + ["other"]), train[50:150])
        ]
    )
    seen = {gram for text in train for gram in ngrams(text)}
    truth = [[g in seen for g in ngrams(q)] for q in queries]
    bloom = build_bloom(train, expected_items=len(seen))
    expected = [100 * sum(t) / len(t) if t else 0.0 for t in truth]
    assert 0 < sum(e == 0 for e in expected) < len(expected) and any(0 < e < 100 for e in expected)
    assert per_example_overlap(bloom, queries) == expected
    found, total = sum(map(sum, truth)), sum(map(len, truth))
    assert overlap_percent(bloom, queries) == 100 * found / total
    with pytest.raises(ValueError, match="not an 8-gram"):
        _ = "only three words" in bloom


def test_a_saved_filter_answers_the_same_in_another_process(tmp_path: Path) -> None:
    rng = random.Random(1)
    train = _texts(rng, 200, [f"w{i}" for i in range(40)])
    bloom = build_bloom(train, expected_items=10_000)
    bloom.save(tmp_path / "f.ngram64")
    probes = [g for text in train[:20] for g in ngrams(text)] + [
        g for text in _texts(rng, 20, ["zz", "yy", "w1"]) for g in ngrams(text)
    ]
    (tmp_path / "probes.txt").write_text("\n".join(probes))
    mine = "".join("1" if g in bloom else "0" for g in probes)
    assert "0" in mine and "1" in mine
    script = (
        "import sys; from pathlib import Path; from evaluation.overlap import NgramBloom\n"
        "b = NgramBloom.load(Path(sys.argv[1]))\n"
        "print(''.join('1' if g in b else '0' for g in Path(sys.argv[2]).read_text().split('\\n')))"
    )
    theirs = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "f.ngram64"), str(tmp_path / "probes.txt")],
        cwd=REPO,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert theirs == mine
    (tmp_path / "broken.ngram64").write_bytes(b"not a filter")
    with pytest.raises(ValueError, match="broken.ngram64"):
        NgramBloom.load(tmp_path / "broken.ngram64")


def test_the_measured_false_positive_rate_is_near_the_configured_one() -> None:
    texts = [" ".join(f"t{i}x{j}" for j in range(107)) for i in range(200)]  # 20,000 distinct 8-grams
    bloom = build_bloom(texts, expected_items=20_000, false_positive_rate=1e-3)
    assert 0.6e-3 < measured_false_positive_rate(bloom, samples=100_000) < 1.5e-3  # ~100 hits expected
    with pytest.raises(ValueError, match="false_positive_rate"):
        NgramBloom.sized(10, 1e-30)  # no room left for 64-bit hash collisions


def test_a_cache_of_the_former_format_is_not_read(tmp_path: Path) -> None:
    shards = tmp_path / "corpus" / "shards"
    shards.mkdir(parents=True)
    text = "one two three four five six seven eight nine"
    pq.write_table(pa.table({"text": [text]}), shards / "train-00000-of-00001.parquet")
    shard = shards / "train-00000-of-00001.parquet"
    # The former rbloom+BLAKE2b-string cache: same fingerprint recipe, ".bloom" suffix.
    old_name = hashlib.blake2b(
        repr([(shard.name, shard.stat().st_size, shard.stat().st_mtime_ns), 1e-8]).encode(), digest_size=8
    ).hexdigest()
    cache = tmp_path / "overlap"
    cache.mkdir()
    (cache / f"train-8grams-{old_name}.bloom").write_bytes(b"a filter of another format")
    bloom = corpus_bloom(tmp_path / "corpus", cache)
    assert overlap_percent(bloom, [text]) == 100.0
    assert sorted(p.suffix for p in cache.iterdir()) == [".bloom", ".ngram64"]
