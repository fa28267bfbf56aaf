"""8-gram overlap: normalization, the Bloom filter's false-positive rate, Table-6-style percentages."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evaluation.overlap import (build_bloom, corpus_bloom, measured_false_positive_rate, ngrams, overlap_percent,
                                per_example_overlap)


def test_ngrams_are_lowercased_alphanumeric_words() -> None:
    assert list(ngrams("The U.S.-based firm's CEO, Ann, said: 'Go!' now", n=8)) == [
        "the u s based firm s ceo ann", "u s based firm s ceo ann said",
        "s based firm s ceo ann said go", "based firm s ceo ann said go now"]


def test_overlap_percent_counts_the_test_8grams_found() -> None:
    train = "one two three four five six seven eight nine and then something else entirely"
    bloom = build_bloom([train], expected_items=100)
    # Ten words: three 8-grams; the first two lie inside the training text's first nine words.
    assert overlap_percent(bloom, ["One two THREE four, five six seven eight nine TEN"]) == pytest.approx(200 / 3)
    assert per_example_overlap(bloom, ["short text", "zero one two three four five six seven eight"]) == [0.0, 50.0]


def test_false_positive_rate_is_below_1e_8_on_random_strings() -> None:
    texts = [" ".join(f"w{i}x{j}" for j in range(40)) for i in range(500)]
    bloom = build_bloom(texts, expected_items=500 * 33)
    assert measured_false_positive_rate(bloom, samples=50_000) == 0.0
    assert all(gram in bloom for gram in ngrams(texts[7]))  # no false negatives


def test_corpus_bloom_is_saved_and_reloaded(tmp_path: Path) -> None:
    shards = tmp_path / "corpus" / "shards"
    shards.mkdir(parents=True)
    text = "the quick brown fox jumps over the lazy dog near the river bank"
    pq.write_table(pa.table({"text": [text, None, "tiny"]}), shards / "train-00000-of-00001.parquet")
    cache = tmp_path / "corpus" / "overlap"
    bloom = corpus_bloom(tmp_path / "corpus", cache)
    (saved,) = cache.glob("train-8grams-*.bloom")
    again = corpus_bloom(tmp_path / "corpus", cache)  # loaded from the file, in a fresh filter object
    assert overlap_percent(again, [text]) == overlap_percent(bloom, [text]) == 100.0
    assert list(cache.iterdir()) == [saved]
    pq.write_table(pa.table({"text": ["a different corpus now, with other words in it than before"]}),
                   shards / "train-00000-of-00001.parquet")
    rebuilt = corpus_bloom(tmp_path / "corpus", cache)  # the shards changed: a new filter, not the stale one
    assert overlap_percent(rebuilt, [text]) == 0.0 and len(list(cache.glob("*.bloom"))) == 2
    with pytest.raises(FileNotFoundError, match="train-"):
        corpus_bloom(tmp_path / "elsewhere")
