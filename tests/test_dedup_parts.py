"""Dedup in parts (corpus.dedup_parts through build.DedupStage) removes exactly the ids the in-memory `Deduplicator`
removes, with the same reasons and kept duplicates, whatever the number of partitions; an interrupted run resumes to
the same removed.parquet, also after SIGKILL; the plan keeps parts to the memory setting."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus import dedup_parts
from corpus.build import FILTERED_SCHEMA, DedupStage, doc_id, stage_key
from corpus.dedup import DedupConfig, Deduplicator, signature, text_hash
from corpus.stages import begin, map_in_process, run_stage

REPO = Path(__file__).resolve().parents[1]
VOCAB = [f"w{i}" for i in range(3000)]


def _row(n: int, text: str, karma: int, created: int) -> dict:
    url = f"https://site{n % 7}.example.com/{n}"
    return {
        "id": doc_id(url),
        "url": url,
        "link_url": url,
        "domain": f"site{n % 7}.example.com",
        "title": None,
        "text": text,
        "karma": karma,
        "subreddits": [],
        "created_utc": created,
        "fetched_at": "2026-11-30T00:00:00Z",
        "extractor": "trafilatura",
        "n_words": len(text.split()),
        "text_hash": text_hash(text),
        "minhash": signature(text).astype("<u8").tobytes(),
    }


def _generated_rows() -> list[dict]:
    """Originals, near copies from clearly similar to clearly not (1-45 of 120 words edited), copies of copies (chains
    where the survivor rule matters), exact copies up to case, and karma/time ties broken by id."""
    rng = random.Random(12)
    texts: list[list[str]] = []
    rows = []

    def add(words: list[str], upper: bool = False) -> None:
        texts.append(words)
        text = " ".join(words)
        rows.append(_row(len(rows), text.upper() if upper else text, rng.choice([1, 3, 5, 5, 9]), rng.randrange(4)))

    for _ in range(120):
        add([rng.choice(VOCAB) for _ in range(120)])
    for _ in range(260):
        words = list(texts[rng.randrange(len(texts))])  # may copy a copy: chains
        for i in rng.sample(range(len(words)), rng.choice([1, 2, 4, 8, 12, 18, 25, 45])):
            words[i] = rng.choice(VOCAB)
        add(words)
    for _ in range(40):
        add(list(texts[rng.randrange(len(texts))]), upper=rng.random() < 0.5)
    return rows


def _write_parts(out_dir, rows: list[dict], per_part: int) -> None:
    (out_dir / "filter").mkdir(parents=True)
    for n, start in enumerate(range(0, len(rows), per_part)):
        table = pa.Table.from_pylist(rows[start : start + per_part], schema=FILTERED_SCHEMA)
        pq.write_table(table, out_dir / "filter" / f"00000-{n:05d}.parquet")


def _in_memory(rows: list[dict]):
    dd = Deduplicator(DedupConfig())
    for r in rows:
        dd.add(r["id"], r["text_hash"], signature(r["text"]), r["karma"], r["created_utc"])
    need = dd.candidate_ids()
    return dd.resolve((r["id"], r["text"]) for r in rows if r["id"] in need)


@pytest.fixture(scope="module")
def generated():
    rows = _generated_rows()
    return rows, _in_memory(rows)


def _removed(out_dir) -> dict[str, tuple[str, str]]:
    table = pq.read_table(out_dir / "dedup" / "removed.parquet")
    return {r["id"]: (r["reason"], r["duplicate_of"]) for r in table.to_pylist()}


def run_dedup(out_dir: Path, upstream: str, config: DedupConfig, partition_docs: int) -> tuple[str, dict]:
    key, stats = run_stage(DedupStage(out_dir, config, partition_docs), upstream, map_in_process)
    return key, stats.to_dict()


@pytest.mark.parametrize("partition_docs,per_part", [(10**6, 420), (100, 64), (37, 50), (7, 13)])
def test_parts_remove_what_the_in_memory_index_removes(tmp_path, generated, partition_docs, per_part):
    rows, expected = generated
    assert expected.rejected_pairs > 0 and expected.verified_pairs > 50, "the input must exercise both outcomes"
    assert expected.counts()["exact_duplicate"] >= 30
    _write_parts(tmp_path, rows, per_part)
    _, stats = run_dedup(tmp_path, stage_key("test"), DedupConfig(), partition_docs=partition_docs)
    assert stats["partitions"] == -(-len(rows) // partition_docs)
    assert _removed(tmp_path) == expected.removed
    assert stats["dropped"] == expected.counts()
    assert (stats["lsh_candidate_pairs"], stats["verified_pairs"], stats["rejected_pairs"]) == (
        expected.candidate_pairs,
        expected.verified_pairs,
        expected.rejected_pairs,
    )
    assert stats["in"] == len(rows) and stats["out"] == len(rows) - len(expected.removed)
    assert not (tmp_path / "dedup" / "_work").exists(), "the shuffled work files go when the stage is done"


def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, generated):
    rows, expected = generated
    _write_parts(tmp_path, rows, 50)
    stage = DedupStage(tmp_path, DedupConfig(), partition_docs=60)
    begin(stage.stage_dir, stage.key(stage_key("test")))
    plan = stage.plan(stage_key("test"))
    for step in dedup_parts.STEPS[:4]:  # killed during "shingles": two steps and one part of it left undone
        for index in range(plan.count(step)):
            dedup_parts.run_part(plan, step, index)
    dedup_parts.run_part(plan, "shingles", 0)
    stray = plan.work / "shingles" / "00000" / ".00001.parquet.999.tmp"
    stray.write_bytes(b"half a file")
    # the re-run must keep the plan (not re-split with its own setting) and finish from the markers
    _, stats = run_dedup(tmp_path, stage_key("test"), DedupConfig(), partition_docs=10**6)
    assert stats["partitions"] == plan.partitions == 7
    assert _removed(tmp_path) == expected.removed


KILLED_IN_ATTACH = """
import os, signal, sys
from pathlib import Path
from corpus import dedup_parts
from corpus.build import DedupStage, stage_key
from corpus.dedup import DedupConfig
from corpus.stages import map_in_process, run_stage

attach = dedup_parts._STEP_FUNCTIONS["attach"]

def attach_then_die(plan, index):  # dies after a part's files are written, before its marker
    stats = attach(plan, index)
    if index == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return stats

dedup_parts._STEP_FUNCTIONS["attach"] = attach_then_die
run_stage(DedupStage(Path(sys.argv[1]), DedupConfig(), 60), stage_key("test"), map_in_process)
"""


def test_a_sigkilled_dedup_resumes_to_the_same_bytes(tmp_path, generated):
    rows, expected = generated
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    _write_parts(killed, rows, 50)
    _write_parts(clean, rows, 50)
    child = subprocess.run(
        [sys.executable, "-c", KILLED_IN_ATTACH, str(killed)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    done = sorted(p.stem for p in (killed / "dedup" / "_work" / "_done").glob("*.json"))
    assert "attach-00001" in done and "attach-00002" not in done and not (killed / "dedup" / "removed.parquet").exists()
    assert list((killed / "dedup" / "_work" / "half").glob("*/00002.parquet")), "part 2's files were written"
    assert run_dedup(killed, stage_key("test"), DedupConfig(), partition_docs=60) == run_dedup(
        clean, stage_key("test"), DedupConfig(), partition_docs=60
    )
    assert (killed / "dedup" / "removed.parquet").read_bytes() == (clean / "dedup" / "removed.parquet").read_bytes()
    assert _removed(killed) == expected.removed


def test_plan_keeps_every_source_group_to_the_partition_setting(tmp_path, generated):
    rows, _ = generated
    _write_parts(tmp_path, rows, 13)
    plan = dedup_parts.plan(tmp_path / "dedup", sorted((tmp_path / "filter").glob("*.parquet")), DedupConfig(), 40)
    sizes = [sum(pq.ParquetFile(p).metadata.num_rows for p in plan.parts[a:b]) for a, b in plan.groups]
    assert sum(sizes) == len(rows) and max(sizes) <= 40
    assert [g[0] for g in plan.groups[1:]] == [g[1] for g in plan.groups[:-1]], "groups cover the parts in order"
    with pytest.raises(ValueError, match="partition_docs must be at least 1"):
        dedup_parts.plan(tmp_path / "other", plan.parts, DedupConfig(), 0)


def test_the_plan_every_part_is_sent_does_not_grow_with_the_number_of_filter_parts(tmp_path, generated):
    """Each dedup task gets the plan: with the list of filter parts in it, a build of 100k filter parts would send
    megabytes with each of thousands of tasks. The list stays in the plan file."""
    import pickle

    rows, _ = generated
    sizes = {}
    for per_part in (len(rows), 2):
        out = tmp_path / f"per{per_part}"
        _write_parts(out, rows, per_part)
        parts = sorted((out / "filter").glob("*.parquet"))
        plan = dedup_parts.plan(out / "dedup", parts, DedupConfig(), partition_docs=10**6)
        assert plan.parts == tuple(parts)
        sizes[len(parts)] = len(pickle.dumps(plan))
    few, many = sorted(sizes)
    assert many >= 100 * few and abs(sizes[many] - sizes[few]) <= 8, sizes
