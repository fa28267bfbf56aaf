"""corpus.files' atomic writes: a reader sees the old file, no file or the whole new one; a failed write leaves no
temporary file; a killed write's temporary file is never taken for a finished one and goes with the next write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_shards import make_docs

from corpus.files import atomic_folder, atomic_output, write_atomic
from corpus.reddit import write_submissions
from corpus.shards import ShardConfig, write_shards

REPO = Path(__file__).resolve().parents[1]


SCHEMA = pa.schema([("n", pa.int64())])


def _table(n: int) -> pa.Table:
    return pa.table({"n": list(range(n))}, schema=SCHEMA)


def test_a_failing_write_leaves_no_temporary_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(_table(3), path)

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"half a file")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, half_then_fail)
    with pytest.raises(RuntimeError, match="broken stream"):
        with atomic_output(path) as tmp, pq.ParquetWriter(tmp, SCHEMA) as writer:
            writer.write_table(_table(5))
            raise RuntimeError("broken stream")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.parquet"]
    assert pq.read_table(path).equals(_table(3))


def test_a_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(_table(3), path)
    with atomic_output(path) as tmp, pq.ParquetWriter(tmp, SCHEMA) as writer:
        for _ in range(3):
            writer.write_table(_table(100))
            assert pq.read_table(path).equals(_table(3))  # the old file, whole, until the block ends
            assert [p.name for p in tmp_path.glob("*.parquet")] == ["data.parquet"]  # the temp file is no part
    assert pq.read_table(path).num_rows == 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.parquet"]


def test_a_streaming_writer_that_fails_leaves_no_file(tmp_path: Path) -> None:
    def records():
        yield {"id": "a", "url": "https://example.com/"}
        raise ValueError("a bad record")

    with pytest.raises(ValueError, match="a bad record"):
        write_submissions(tmp_path / "RS_2017-06.zst", records())
    assert list(tmp_path.iterdir()) == []


def test_the_folder_variant_replaces_a_folder_whole(tmp_path: Path) -> None:
    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "old-0.parquet").write_text("old 0")
    (folder / "old-1.parquet").write_text("old 1")

    with pytest.raises(RuntimeError, match="killed"):
        with atomic_folder(folder) as tmp:
            (tmp / "new-0.parquet").write_text("new 0")
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]
    assert sorted(p.name for p in folder.iterdir()) == ["old-0.parquet", "old-1.parquet"]

    with atomic_folder(folder) as tmp:
        (tmp / "new-0.parquet").write_text("new 0")
        assert sorted(p.name for p in folder.iterdir()) == ["old-0.parquet", "old-1.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]
    assert sorted(p.name for p in folder.iterdir()) == ["new-0.parquet"]


def test_shards_that_fail_midway_keep_the_earlier_shards(tmp_path: Path) -> None:
    docs = make_docs(40)
    shards = tmp_path / "shards"
    config = ShardConfig(shard_text_bytes=20_000)
    write_shards(lambda: docs, shards, config)
    before = {p.name: p.read_bytes() for p in shards.iterdir()}
    assert len(before) > 2

    calls = {"n": 0}

    def docs_then_fail():
        calls["n"] += 1
        for i, doc in enumerate(docs):
            if calls["n"] == 2 and i == 30:  # the second pass writes rows: fail inside it
                raise OSError("source went away")
            yield {**doc, "text": doc["text"] + " changed"}

    with pytest.raises(OSError, match="source went away"):
        write_shards(docs_then_fail, shards, config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]
    assert {p.name: p.read_bytes() for p in shards.iterdir()} == before


KILLED_MID_WRITE = """
import os, signal, sys
from pathlib import Path
from corpus.files import atomic_folder, atomic_output

target = Path(sys.argv[1])
with atomic_output(target / "log.parquet") as tmp:
    tmp.write_bytes(b"PAR1 half a file")
    with atomic_folder(target / "shards") as folder:
        (folder / "train-00000.parquet").write_bytes(b"half a shard")
        print(os.getpid(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_write_is_never_taken_for_a_finished_file_and_goes_with_the_next_write(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MID_WRITE, str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -9, done.stderr[-2000:]
    pid = int(done.stdout)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".log.parquet.{pid}.tmp", f".shards.{pid}.tmp"]
    assert list(tmp_path.glob("*.parquet")) == [] and not (tmp_path / "shards").exists()

    # a live process's temporary file (another writer's) is left alone
    alive = tmp_path / f".log.parquet.{os.getppid()}.tmp"
    alive.write_bytes(b"in use")
    write_atomic(tmp_path / "log.parquet", lambda tmp: pq.write_table(_table(2), tmp))
    with atomic_folder(tmp_path / "shards") as folder:
        (folder / "train-00000.parquet").write_bytes(b"a whole shard")
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "log.parquet", "shards"]
