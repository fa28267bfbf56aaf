"""The build's last stages on real filter parts: dedup -> Wikipedia removal -> shards. Counts agree from stage to
stage, a link archived twice is one document, the dedup index does not outlive its stage, removed ids are held
compactly."""

from __future__ import annotations

import gc
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasketch import MinHashLSH

from corpus.build import (
    FILTERED_SCHEMA,
    BuildConfig,
    DedupStage,
    IdSet,
    WikipediaStage,
    config_summary,
    doc_id,
    run_shards,
    stage_key,
)
from corpus.dedup import DedupConfig, signature, text_hash
from corpus.shards import ShardConfig, iter_shard_rows
from corpus.stages import map_in_process, run_stage

VOCAB = [f"w{i}" for i in range(5000)]


def _row(url: str, text: str, karma: int, created: int, final_url: str | None = None) -> dict:
    config = DedupConfig()
    return {
        "id": doc_id(url),
        "url": final_url or url,
        "link_url": url,
        "domain": url.split("/")[2],
        "title": url,
        "text": text,
        "karma": karma,
        "subreddits": ["news"],
        "created_utc": created,
        "fetched_at": "2026-11-28T12:00:00Z",
        "extractor": "trafilatura",
        "n_words": len(text.split()),
        "text_hash": text_hash(text),
        "minhash": signature(text, config).astype("<u8").tobytes(),
    }


@pytest.fixture
def filtered(tmp_path):
    """Two filter parts: 60 distinct documents, 10 near copies of them (lower karma), 5 exact copies, one Wikipedia
    page, and one link archived twice (once per part, the second copy fetched after a redirect to Wikipedia)."""
    rng = random.Random(1)
    texts = [[rng.choice(VOCAB) for _ in range(200)] for _ in range(60)]
    rows = [_row(f"https://site{i % 5}.example.com/{i}", " ".join(t), 50, 1000 + i) for i, t in enumerate(texts)]
    for i in range(10):
        words = list(texts[i])
        words[rng.randrange(len(words))] = "edited"
        rows.append(_row(f"https://copy.example.org/near/{i}", " ".join(words), 5, 2000 + i))
    rows += [
        _row(f"https://copy.example.org/exact/{i}", " ".join(texts[20 + i]).upper(), 5, 3000 + i) for i in range(5)
    ]
    wiki_text = " ".join(rng.choice(VOCAB) for _ in range(200))
    rows.append(_row("https://en.wikipedia.org/wiki/Web_crawler", wiki_text, 9, 7))
    twice = "https://twice.example.com/story"
    twice_text = " ".join(rng.choice(VOCAB) for _ in range(200))
    first, second = rows[:40] + [_row(twice, twice_text, 8, 9)], rows[40:]
    second.append(_row(twice, twice_text, 8, 9, final_url="https://en.m.wikipedia.org/wiki/Story"))
    (tmp_path / "filter").mkdir()
    for name, part in (("00000-00000.parquet", first), ("00000-00001.parquet", second)):
        pq.write_table(pa.Table.from_pylist(part, schema=FILTERED_SCHEMA), tmp_path / "filter" / name)
    return tmp_path, doc_id(twice)


def _alive_lsh_indexes() -> int:
    return sum(isinstance(o, MinHashLSH) for o in gc.get_objects())


def test_dedup_wikipedia_and_shards_agree_and_the_index_does_not_outlive_its_stage(filtered):
    out_dir, twice_id = filtered
    gc.collect()
    indexes_before = _alive_lsh_indexes()
    dkey, dedup = run_stage(DedupStage(out_dir, DedupConfig()), stage_key("test"), map_in_process)
    dedup = dedup.to_dict()
    # datasketch's index refers to itself; it must be gone when the stage returns, not at Python's next full collection
    assert _alive_lsh_indexes() == indexes_before
    assert dedup["in"] == 78 and dedup["dropped"] == {"exact_duplicate": 5, "near_duplicate": 10, "duplicate_fetch": 1}
    assert dedup["out"] == 61 + 1  # 60 distinct, the Wikipedia page, the link archived twice

    wkey, wiki = run_stage(WikipediaStage(out_dir), dkey, map_in_process)
    wiki = wiki.to_dict()
    assert wiki["in"] == dedup["out"]
    assert wiki["dropped"] == {"wikipedia": 2}  # the Wikipedia page, and the link whose second copy landed there
    assert twice_id in set(pq.read_table(out_dir / "wikipedia" / "removed.parquet").column("id").to_pylist())

    config = BuildConfig(shards=ShardConfig(val_fraction=0.0, memory_text_bytes=30_000, row_group_rows=16))
    manifest, done = run_shards(out_dir, wkey, config, [], config_summary(config))
    assert not done
    ids = [r["id"] for r in iter_shard_rows(out_dir / "shards", "train", ["id"])]
    assert len(ids) == len(set(ids)) == wiki["out"] == manifest["totals"]["documents"] == 60
    removed = set(pq.read_table(out_dir / "dedup" / "removed.parquet").column("id").to_pylist())
    assert not removed & set(ids) and twice_id not in ids
    assert manifest["totals"]["words"] == 60 * 200
    assert manifest["totals"]["text_bytes"] == sum(
        len(r["text"].encode()) for r in iter_shard_rows(out_dir / "shards", "train", ["text"])
    )


def test_wikipedia_removal_needs_the_finished_dedup_stage(filtered):
    out_dir, _ = filtered
    with pytest.raises(ValueError, match="dedup stage finished with key"):
        run_stage(WikipediaStage(out_dir), stage_key("no such dedup run"), map_in_process)


def test_id_set_holds_eight_bytes_an_id_and_rejects_other_ids():
    ids = [doc_id(f"https://example.com/{i}") for i in range(1000)]
    held = IdSet(IdSet.values_of(ids[::2]))
    assert held.values.dtype == np.uint64 and held.values.nbytes == 8 * 500 and len(held) == 500
    assert held.contains(ids).tolist() == [i % 2 == 0 for i in range(1000)]
    assert not IdSet(np.empty(0, dtype=np.uint64)).contains(ids[:3]).any()
    with pytest.raises(ValueError, match="16 hex digits"):
        IdSet.values_of(["not-an-id"])


def test_an_empty_build_says_which_stage_dropped_everything_in_the_manifest_and_the_card(tmp_path):
    """A build that ends with 0 documents used to end like any other; now its manifest and card name the stage."""
    from test_buildlock import write_warc

    from corpus.build import build_from_warcs
    from corpus.extract import ExtractConfig

    warc = write_warc(tmp_path / "short.warc.gz", 3, words_per_page=20)  # every page under min_words (128)
    manifest = build_from_warcs(
        [warc], tmp_path / "out", BuildConfig(extract=ExtractConfig(method="trafilatura", workers=1))
    ).manifest
    assert manifest["totals"]["documents"] == 0
    assert manifest["warnings"] == [
        "the corpus is empty: the filter stage kept 0 documents of 3 texts (dropped: too_short: 3)"
    ]
    card = (tmp_path / "out" / "shards" / "README.md").read_text()
    assert "> **Warning:** the corpus is empty: the filter stage kept 0 documents of 3 texts" in card

    empty = build_from_warcs([], tmp_path / "no-pages").manifest
    assert empty["warnings"] == [
        "the corpus is empty: the extract stage had no input: there are no HTML pages to "
        "extract (no page was fetched, or the WARC inputs hold none)"
    ]


def test_a_corpus_of_one_document_warns_that_it_has_no_validation_split(tmp_path):
    from test_buildlock import write_warc

    from corpus.build import build_from_warcs
    from corpus.extract import ExtractConfig

    warc = write_warc(tmp_path / "one.warc.gz", 1)
    manifest = build_from_warcs(
        [warc], tmp_path / "out", BuildConfig(extract=ExtractConfig(method="trafilatura", workers=1))
    ).manifest
    assert manifest["totals"] == {**manifest["totals"], "documents": 1, "val_documents": 0}
    assert manifest["warnings"] == [
        "no validation split: 1 document(s) are too few to set one aside (gpt2/train's "
        "webtext-val evaluation needs one)"
    ]


def test_a_foreign_warc_page_at_a_url_the_corpus_cannot_name_is_dropped_and_counted(tmp_path):
    """A WARC input's page whose URL has no canonical form (no document id) failed the whole filter stage, on every
    run; it is now dropped as invalid_url, counted in the manifest, and the other pages go on."""
    from test_buildlock import random_page, write_html_warc

    from corpus.build import build_from_warcs
    from corpus.extract import ExtractConfig

    urls = ["http://good.example.com/a", "http://-dash.example.com/b", "http://example.com:99999/c", "http://x.com/d"]
    warc = write_html_warc(tmp_path / "foreign.warc.gz", [(url, random_page(i)) for i, url in enumerate(urls)])
    config = BuildConfig(extract=ExtractConfig(method="trafilatura", workers=1))
    manifest = build_from_warcs([warc], tmp_path / "out", config).manifest
    [filtered] = [row for row in manifest["stages"] if row["stage"] == "filter"]
    assert filtered["dropped"]["invalid_url"] == 2 and manifest["totals"]["documents"] == 2


def test_a_moved_data_folder_keeps_every_key_and_a_changed_file_does_not(tmp_path) -> None:
    """One identity rule for input files (corpus.files.fingerprint: name, size, mtime): a dump or WARC folder moved or
    copied with its times (`cp -p`, `rsync -t`) keeps the stage keys, so nothing is redone; an edited file changes them."""
    import os
    import shutil

    from corpus import build
    from corpus.files import fingerprints
    from corpus.links import LinkConfig

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    (first / "RS_2017-12.ndjson").write_text('{"id": "a", "url": "https://example.com/", "score": 5}\n')
    (first / "pages.warc.gz").write_bytes(b"not looked into: only its identity counts")
    shutil.copytree(first, second)  # copy2: times kept
    for name in ("RS_2017-12.ndjson", "pages.warc.gz"):
        assert fingerprints([first / name]) == fingerprints([second / name])
    dump, moved = [first / "RS_2017-12.ndjson"], [second / "RS_2017-12.ndjson"]
    assert build.links_key(dump, LinkConfig()) == build.links_key(moved, LinkConfig())
    links_key = build.links_key(dump, LinkConfig())
    assert build.warc_inputs_key(links_key, [first / "pages.warc.gz"]) == build.warc_inputs_key(
        links_key, [second / "pages.warc.gz"]
    )
    assert fingerprints([first]) == fingerprints([second])  # a folder: every file under it by relative path

    (second / "RS_2017-12.ndjson").write_text('{"id": "b", "url": "https://example.com/", "score": 5}\n')
    os.utime(second / "RS_2017-12.ndjson", ns=(1, 1))
    assert build.links_key(dump, LinkConfig()) != build.links_key(moved, LinkConfig())


def test_an_extract_part_is_sent_the_same_payload_for_one_warc_input_as_for_five_hundred(tmp_path):
    """What every extract task pickles (the stage, its plan and its part) does not grow with the number of WARC
    inputs: the list stays in the stage's plan file, which the parts read."""
    import pickle

    from test_buildlock import write_warc

    from corpus.build import ExtractStage
    from corpus.extract import ExtractConfig

    (tmp_path / "warcs").mkdir()
    pages = write_warc(tmp_path / "warcs" / "a.warc.gz", 2)
    empty = [write_warc(tmp_path / "warcs" / f"e{i:03d}.warc.gz", 0) for i in range(499)]
    config = BuildConfig(extract=ExtractConfig(method="trafilatura", workers=1))

    def sent_sizes(out_name: str, warcs: list) -> tuple[dict, str, int]:
        sizes = {}

        def recording(label, fn, shared, parts):
            sizes[label] = (len(pickle.dumps((fn, shared))), len(pickle.dumps(parts[0])))
            return map_in_process(label, fn, shared, parts)

        key, stats = run_stage(ExtractStage(tmp_path / out_name, config, tuple(warcs)), None, recording)
        return sizes, key, stats.items_out

    one, one_key, one_out = sent_sizes("one", [pages])
    many, many_key, many_out = sent_sizes("all", [pages, *empty])
    assert one_out == many_out == 2
    assert one_key != many_key
    assert set(one) == {"extract-index", "extract-pages"}
    assert one == many, "bytes pickled per task (stage and plan, first part) for 1 and for 500 WARC inputs"


def test_the_extract_key_changes_with_the_rules_revision_and_the_extractors_versions(tmp_path, monkeypatch):
    """A build made by another revision of the rule, or with another trafilatura, extracts its pages again instead of
    keeping texts that the current code would not produce."""
    import importlib.metadata

    from corpus import extract
    from corpus.build import ExtractStage

    (tmp_path / "a.warc.gz").write_bytes(b"only its identity counts")
    stage = ExtractStage(tmp_path / "out", BuildConfig(), (tmp_path / "a.warc.gz",))
    key = stage.key(None)
    assert stage.key(None) == key
    monkeypatch.setattr(extract, "RULE_REVISION", extract.RULE_REVISION + 1)
    assert stage.key(None) != key
    monkeypatch.undo()
    assert stage.key(None) == key
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.0" if name == "trafilatura" else real(name))
    assert stage.key(None) != key
