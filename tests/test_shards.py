"""Parquet shards: contract columns, deterministic split and bytes, shard and row-group sizes; manifest and card."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpus.card import render_card
from corpus.shards import SCHEMA, ShardConfig, iter_shard_rows, shard_key, split_of, write_shards

REPO = Path(__file__).resolve().parents[1]
CONTRACT_COLUMNS = {
    "id",
    "url",
    "domain",
    "title",
    "text",
    "karma",
    "subreddits",
    "created_utc",
    "fetched_at",
    "extractor",
    "n_words",
}


def make_docs(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        doc_id = hashlib.blake2b(f"https://site{i % 7}.example.com/{i}".encode(), digest_size=8).hexdigest()
        text = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "epsilon"]) for _ in range(rng.randint(50, 400)))
        docs.append(
            {
                "id": doc_id,
                "url": f"https://site{i % 7}.example.com/{i}",
                "link_url": f"https://site{i % 7}.example.com/{i}",
                "domain": f"site{i % 7}.example.com",
                "title": f"Title {i}",
                "text": text,
                "karma": rng.randint(3, 500),
                "subreddits": sorted(rng.sample(["news", "science", "python", "books"], 2)),
                "created_utc": 1_400_000_000 + i,
                "fetched_at": "2026-11-28T12:00:00Z",
                "extractor": "trafilatura",
                "n_words": len(text.split()),
            }
        )
    return docs


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def test_contract_columns_split_and_byte_identical_output(tmp_path):
    docs = make_docs(600)
    config = ShardConfig(val_fraction=0.1, shard_text_bytes=200_000, row_group_rows=64)
    files = write_shards(lambda: iter(docs), tmp_path / "a", config)
    shuffled = docs[::-1]
    write_shards(lambda: iter(shuffled), tmp_path / "b", config)  # input order must not matter
    assert digests(tmp_path / "a") == digests(tmp_path / "b")

    names = sorted(f.name for f in files)
    train = [n for n in names if n.startswith("train-")]
    assert len(train) > 1 and all(n.endswith(f"-of-{len(train):05d}.parquet") for n in train)
    assert any(n.startswith("val-00000-of-") for n in names)
    table = pq.read_table(tmp_path / "a" / train[0])
    assert CONTRACT_COLUMNS <= set(table.column_names)
    assert table.schema.equals(SCHEMA)
    meta = pq.ParquetFile(tmp_path / "a" / train[0]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert all(meta.row_group(i).num_rows <= 64 for i in range(meta.num_row_groups))

    val_ids = {r["id"] for r in iter_shard_rows(tmp_path / "a", "val", ["id"])}
    train_ids = {r["id"] for r in iter_shard_rows(tmp_path / "a", "train", ["id"])}
    assert val_ids == {d["id"] for d in docs if split_of(d["id"], 0.1) == "val"}
    assert train_ids | val_ids == {d["id"] for d in docs} and not train_ids & val_ids
    assert 0.04 < len(val_ids) / len(docs) < 0.2
    ids = [r["id"] for r in iter_shard_rows(tmp_path / "a", "train", ["id"])]
    assert sum(f.rows for f in files) == len(docs) == len(set(ids)) + len(val_ids)


def test_split_is_stable_when_the_corpus_grows(tmp_path):
    small, big = make_docs(100), make_docs(300)  # the first 100 documents of both are the same
    write_shards(lambda: iter(small), tmp_path / "s", ShardConfig(val_fraction=0.2))
    write_shards(lambda: iter(big), tmp_path / "b", ShardConfig(val_fraction=0.2))
    split = {
        name: {r["id"]: part for part in ("train", "val") for r in iter_shard_rows(tmp_path / name, part, ["id"])}
        for name in ("s", "b")
    }
    assert "val" in split["s"].values() and "train" in split["s"].values()
    # every document of the small corpus is in the same split in the grown one
    assert split["s"] == {doc_id: split["b"][doc_id] for doc_id in split["s"]}


def test_split_of_is_the_same_in_another_process():
    """The split hashes the id with a fixed function, not Python's hash(), which is salted per process."""
    ids = [d["id"] for d in make_docs(200)]
    here = "".join("v" if split_of(i, 0.3) == "val" else "t" for i in ids)
    script = (
        "import sys; from corpus.shards import split_of\n"
        "print(''.join('v' if split_of(i, 0.3) == 'val' else 't' for i in sys.argv[1:]))"
    )
    there = subprocess.run(
        [sys.executable, "-c", script, *ids],
        cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": "4321"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert there == here and "v" in here and "t" in here


def test_duplicate_ids_keep_the_first_and_bad_fraction_is_rejected(tmp_path):
    docs = make_docs(10)
    again = dict(docs[3], text="a later copy of the same link")
    write_shards(lambda: iter(docs + [again]), tmp_path / "d", ShardConfig(val_fraction=0.0))
    rows = list(iter_shard_rows(tmp_path / "d", "train"))
    assert len(rows) == 10
    assert next(r for r in rows if r["id"] == docs[3]["id"])["text"] == docs[3]["text"]
    with pytest.raises(ValueError, match="val_fraction"):
        ShardConfig(val_fraction=1.0)


def test_the_memory_bound_never_changes_the_bytes(tmp_path):
    docs = make_docs(600)
    docs.append(dict(docs[5], text="a later copy of the same link"))  # arrives many buffer flushes after the first
    roomy = ShardConfig(val_fraction=0.1, shard_text_bytes=400_000, row_group_rows=50)
    write_shards(lambda: iter(docs), tmp_path / "roomy", roomy)
    tight = replace(roomy, memory_text_bytes=20_000)  # ~40 buffer flushes; each shard sorted in ~20 key ranges
    files = write_shards(lambda: iter(docs), tmp_path / "tight", tight)
    assert digests(tmp_path / "roomy") == digests(tmp_path / "tight")
    assert len([f for f in files if f.split == "train"]) >= 2

    for f in files:
        pf = pq.ParquetFile(tmp_path / "tight" / f.name)
        sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]
        assert all(n == 50 for n in sizes[:-1]) and 0 < sizes[-1] <= 50, sizes
        keys = [shard_key(doc_id) for doc_id in pf.read(columns=["id"]).column("id").to_pylist()]
        assert keys == sorted(keys) and len(keys) == f.rows
    rows = {r["id"]: r["text"] for split in ("train", "val") for r in iter_shard_rows(tmp_path / "tight", split)}
    assert len(rows) == 600 and rows[docs[5]["id"]] == docs[5]["text"]


def test_card_renders_the_manifest():
    manifest = {
        "config": {
            "links": {"min_karma": 3, "cutoff": "2018-01-01", "drop_nsfw": True},
            "extract": {"method": "combined", "teaser_ratio": 5.0, "lede": False},
            "filter": {"min_words": 128, "min_alpha_fraction": 0.6, "languages": []},
            "dedup": {"shingle_words": 5, "num_perm": 128, "threshold": 0.7},
            "shards": {"val_fraction": 0.01, "row_group_rows": 1024},
        },
        "totals": {"documents": 2, "words": 300, "text_bytes": 2000, "train_documents": 2, "val_documents": 0},
        "stages": [{"stage": "dedup", "in": 3, "out": 2, "dropped": {"near_duplicate": 1}}],
        "extractors": {"trafilatura": 2},
        "top_domains": [["example.com", 2]],
        "versions": {"pyarrow": "26"},
        "shards": [{"name": "train-00000-of-00001.parquet", "rows": 2, "bytes": 1234, "sha256": "ab" * 32}],
    }
    card = render_card(manifest)
    assert "at least 3 karma" in card and "near_duplicate: 1" in card and "| example.com | 2 |" in card
    assert "train-00000-of-00001.parquet" in card
    # the extraction as configured: the rule with or without the lede, or one extractor alone
    assert "read-more inserts" in card and "5.0x its words" in card and "headline" not in card
    manifest["config"]["extract"]["lede"] = True
    assert "the declared headline and summary put back" in render_card(manifest)
    manifest["config"]["extract"]["method"] = "trafilatura"
    assert "extract (trafilatura alone)" in render_card(manifest).replace("\n", " ")


@pytest.mark.parametrize("n", [2, 3, 150])
def test_a_small_corpus_still_gets_a_validation_document_chosen_by_id(tmp_path, n):
    """At the default val fraction (0.005) a build under ~200 documents had no val shard, so training with
    webtext-val failed after training. The document with the lowest split hash goes to val; same ids, same bytes."""
    docs = make_docs(n, seed=n)
    assert not any(split_of(d["id"], 0.005) == "val" for d in docs)  # the case: no document draws val by itself
    files = write_shards(lambda: iter(docs), tmp_path / "a", ShardConfig())
    write_shards(lambda: iter(docs[::-1]), tmp_path / "b", ShardConfig())
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    val_ids = [r["id"] for r in iter_shard_rows(tmp_path / "a", "val", ["id"])]
    train_ids = {r["id"] for r in iter_shard_rows(tmp_path / "a", "train", ["id"])}
    lowest = min(docs, key=lambda d: (hashlib.blake2b(f"split:{d['id']}".encode(), digest_size=8).digest(), d["id"]))
    assert val_ids == [lowest["id"]] and train_ids == {d["id"] for d in docs} - {lowest["id"]}
    assert {f.split: f.rows for f in files} == {"train": n - 1, "val": 1}


def test_no_forced_validation_document_for_one_document_or_val_fraction_zero(tmp_path):
    one = make_docs(1)
    assert [f.split for f in write_shards(lambda: iter(one), tmp_path / "one", ShardConfig())] == ["train"]
    same_id = [one[0], {**one[0], "title": "again"}]  # one id twice is one document: it stays in train
    assert [f.split for f in write_shards(lambda: iter(same_id), tmp_path / "twice", ShardConfig())] == ["train"]
    docs = make_docs(50)
    assert [f.split for f in write_shards(lambda: iter(docs), tmp_path / "zero", ShardConfig(val_fraction=0.0))] == [
        "train"
    ]
