"""Exact and MinHash near-duplicate removal: recall on generated near-duplicates, no merge below the threshold,
deterministic survivors, and the Redis storage backend when a redis-server binary is available."""
from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time

import pytest

from corpus.dedup import (DedupConfig, Deduplicator, jaccard, jaccard_hashes, normalize_text, shingle_hashes, shingles,
                          signature, text_hash)

VOCAB = [f"w{i}" for i in range(20000)]


def random_doc(rng: random.Random, n_words: int = 300) -> list[str]:
    return [rng.choice(VOCAB) for _ in range(n_words)]


def mutate(rng: random.Random, words: list[str], n_edits: int) -> list[str]:
    out = list(words)
    for i in rng.sample(range(len(out)), n_edits):
        out[i] = rng.choice(VOCAB)
    return out


def run(docs: list[tuple[str, str, int, int]], config: DedupConfig = DedupConfig()):
    dd = Deduplicator(config)
    for doc_id, text, karma, created in docs:
        dd.add(doc_id, text_hash(text), signature(text, config), karma, created)
    need = dd.candidate_ids()
    return dd.resolve((d, t) for d, t, _, _ in docs if d in need)


def test_normalization_makes_exact_duplicates_of_case_punctuation_and_spacing():
    assert normalize_text("Hello,  World!\n") == "hello world"
    assert text_hash("Hello, World!") == text_hash("hello   world")
    assert text_hash("Hello, World!") != text_hash("Hello, Word!")


def test_hashed_shingle_sets_give_the_jaccard_of_the_shingle_sets():
    rng = random.Random(13)
    base = random_doc(rng, 250)
    for edits in (0, 3, 20, 80, 250):
        a, b = " ".join(base), " ".join(mutate(rng, base, edits))
        assert jaccard_hashes(shingle_hashes(a), shingle_hashes(b)) == jaccard(shingles(a), shingles(b))
    assert shingle_hashes("two words").size == 1  # shorter than a shingle: one shingle
    assert jaccard_hashes(shingle_hashes(""), shingle_hashes("")) == 1.0


def test_recall_on_generated_near_duplicates_is_at_least_95_percent():
    rng = random.Random(7)
    originals = [random_doc(rng) for _ in range(300)]
    docs = [(f"o{i:04d}", " ".join(w), 10, 0) for i, w in enumerate(originals)]
    pairs = []
    for i, words in enumerate(originals):
        copy = mutate(rng, words, rng.randint(1, 4))  # 1-4 edited words of 300: Jaccard about 0.87-0.97
        docs.append((f"c{i:04d}", " ".join(copy), 1, 0))
        pairs.append((f"o{i:04d}", f"c{i:04d}", jaccard(shingles(" ".join(words)), shingles(" ".join(copy)))))
    high = [p for p in pairs if p[2] >= 0.85]
    assert len(high) >= 250, "the generator must produce pairs at Jaccard >= 0.85"
    result = run(docs)
    caught = sum(1 for o, c, _ in high if result.removed.get(c) == ("near_duplicate", o))
    recall = caught / len(high)
    print(f"near-duplicate recall at Jaccard >= 0.85: {recall:.3f} ({caught}/{len(high)})")
    assert recall >= 0.95
    assert all(doc_id.startswith("c") for doc_id in result.removed), "only copies (lower karma) may be removed"


def test_no_pair_below_threshold_is_merged():
    rng = random.Random(3)
    base = random_doc(rng, 200)
    # copies from very similar to clearly different; verification must reject the ones below 0.7
    docs = [("base", " ".join(base), 100, 0)]
    for k, edits in enumerate([2, 5, 10, 15, 20, 25, 30, 40, 60]):
        docs.append((f"v{k}", " ".join(mutate(rng, base, edits)), 1, k))
    texts = {d: shingles(t) for d, t, _, _ in docs}
    result = run(docs)
    for removed, (reason, kept) in result.removed.items():
        assert jaccard(texts[removed], texts[kept]) >= 0.7, (removed, kept)
        assert kept not in result.removed
    below = [d for d, _, _, _ in docs if d != "base" and jaccard(texts[d], texts["base"]) < 0.7]
    assert below and not any(d in result.removed for d in below)


def near_threshold_pairs(rng: random.Random, count: int, low: float, high: float) -> list[tuple[str, str]]:
    """`count` (original, copy) texts whose exact shingle Jaccard lies in [low, high)."""
    pairs: list[tuple[str, str]] = []
    while len(pairs) < count:
        words = random_doc(rng, 300)
        copy = mutate(rng, words, rng.randint(8, 16))  # about 0.55-0.75 for 300 words
        a, b = " ".join(words), " ".join(copy)
        if low <= jaccard(shingles(a), shingles(b)) < high:
            pairs.append((a, b))
    return pairs


def test_pairs_lsh_proposes_below_the_threshold_are_rejected_by_exact_jaccard():
    """LSH (14 bands x 9 rows at 0.7) proposes about a third of the pairs at Jaccard 0.62-0.7; each one it proposes
    must be verified and kept apart, so merging on the LSH proposal alone fails here."""
    pairs = near_threshold_pairs(random.Random(21), 40, 0.62, 0.7)
    docs = [(f"o{i:02d}", a, 10, 0) for i, (a, _) in enumerate(pairs)]
    docs += [(f"c{i:02d}", b, 1, 0) for i, (_, b) in enumerate(pairs)]
    result = run(docs)
    proposed = result.candidate_pairs
    assert proposed >= 5, "the input must contain pairs that LSH proposes, or verification is never exercised"
    assert result.removed == {}
    assert result.rejected_pairs == proposed and result.verified_pairs == 0


def test_pairs_just_above_the_threshold_are_merged():
    """The other side: exact Jaccard >= 0.7 merges (LSH proposes nearly all pairs at 0.7-0.78)."""
    above = near_threshold_pairs(random.Random(22), 30, 0.7, 0.78)
    docs = [(f"o{i:02d}", a, 10, 0) for i, (a, _) in enumerate(above)]
    docs += [(f"c{i:02d}", b, 1, 0) for i, (_, b) in enumerate(above)]
    result = run(docs)
    merged = {c for c, (reason, kept) in result.removed.items() if reason == "near_duplicate"}
    assert merged and all(result.removed[c] == ("near_duplicate", "o" + c[1:]) for c in merged)
    assert result.verified_pairs == len(merged) and result.rejected_pairs == 0


def test_survivor_is_highest_karma_then_earliest_then_id_independent_of_order():
    text = "the quick brown fox jumps over the lazy dog " * 30
    variants = [
        ("b", text, 5, 200),
        ("a", text, 5, 200),  # same karma and time as b: smaller id wins
        ("c", text + " extra words here", 9, 300),  # near duplicate with the highest karma
        ("d", text.upper(), 9, 100),  # exact duplicate (after normalization) with highest karma and earliest
    ]
    results = []
    for order in (variants, variants[::-1], variants[1:] + variants[:1]):
        result = run(list(order))
        results.append(result.removed)
    assert results[0] == results[1] == results[2]
    kept = {d for d, _, _, _ in variants} - set(results[0])
    assert kept == {"d"}
    assert results[0]["a"][0] == "exact_duplicate" and results[0]["c"][0] == "near_duplicate"


def test_distinct_documents_are_all_kept():
    rng = random.Random(11)
    docs = [(f"d{i}", " ".join(random_doc(rng)), 1, i) for i in range(200)]
    assert run(docs).removed == {}


def test_bad_threshold_is_rejected():
    with pytest.raises(ValueError, match="threshold"):
        DedupConfig(threshold=0.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_storage_backend(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server binary not installed (apt-get install -y redis-server)")
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        rng = random.Random(5)
        originals = [random_doc(rng) for _ in range(40)]
        docs = [(f"o{i}", " ".join(w), 5, 0) for i, w in enumerate(originals)]
        docs += [(f"c{i}", " ".join(mutate(rng, w, 2)), 1, 0) for i, w in enumerate(originals)]
        in_memory = run(docs)
        config = DedupConfig(lsh_storage={"type": "redis", "redis": {"host": "127.0.0.1", "port": port}})
        with_redis = run(docs, config)
        assert with_redis.removed == in_memory.removed
        assert len(with_redis.removed) == 40
        assert client.dbsize() > 0, "the index must live in Redis"
    finally:
        proc.kill()
        proc.wait()
