"""tokenization.encode: llm.c-format token shards, byte-exact, cached and resumable."""

from __future__ import annotations

import glob
import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tokenization.bpe import EOT, BPETokenizer, train_bpe
from tokenization.encode import encode_corpus
from tokenization.shard_format import read_token_shard

TRAIN_FILES = [
    [
        f"Document {i} of the first train shard. It's about the Reddit link number {i * 7}.\n\nSecond paragraph."
        for i in range(12)
    ],
    ["Ελληνικά и русский 日本語 👍🏽 mixed", "", "short", "x" * 300, "def f():\n    return 42\n"]
    + [f"more text {i} " * (i + 1) for i in range(10)],
]
VAL_FILES = [["A validation document.", "Another one, with numbers 12345."]]


def _write_shard(path: Path, texts: list[str]) -> None:
    """A shard with contract 5's columns."""
    n = len(texts)
    pq.write_table(
        pa.table(
            {
                "id": [f"{path.stem}-{i}" for i in range(n)],
                "url": [f"https://example.com/{path.stem}/{i}" for i in range(n)],
                "domain": ["example.com"] * n,
                "title": [f"title {i}" for i in range(n)],
                "text": texts,
                "karma": pa.array([3] * n, pa.int64()),
                "subreddits": [["test"]] * n,
                "created_utc": pa.array([1500000000] * n, pa.int64()),
                "fetched_at": ["2026-11-28T00:00:00Z"] * n,
                "extractor": ["trafilatura"] * n,
                "n_words": pa.array([len(t.split()) for t in texts], pa.int64()),
            }
        ),
        path,
        row_group_size=4,
    )  # several row groups, so resuming inside a file is exercised


@pytest.fixture()
def corpus_dir(tmp_path: Path) -> Path:
    shards = tmp_path / "corpus" / "shards"
    shards.mkdir(parents=True)
    for i, texts in enumerate(TRAIN_FILES):
        _write_shard(shards / f"train-{i:05d}-of-{len(TRAIN_FILES):05d}.parquet", texts)
    for i, texts in enumerate(VAL_FILES):
        _write_shard(shards / f"val-{i:05d}-of-{len(VAL_FILES):05d}.parquet", texts)
    return tmp_path / "corpus"


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    sources = sorted(glob.glob(str(Path(sysconfig.get_paths()["stdlib"]) / "*.py")))[:20]
    return train_bpe([Path(p).read_text(encoding="utf-8", errors="replace") for p in sources], vocab_size=800)


def _expected(tokenizer: BPETokenizer, files: list[list[str]]) -> list[int]:
    """llm.c's fineweb.py convention: <|endoftext|> before every document."""
    return [t for texts in files for text in texts for t in [tokenizer.eot_token, *tokenizer.encode(text)]]


def _read_like_llmc(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """What llm.c's Python loader does: 256 int32 header, then uint16 tokens."""
    data = path.read_bytes()
    return np.frombuffer(data[: 256 * 4], dtype=np.int32), np.frombuffer(data[256 * 4 :], dtype=np.uint16)


def _shards(out_dir: Path, split: str) -> list[Path]:
    return sorted(out_dir.glob(f"{split}_*.bin"))


def test_one_shard_per_split_is_byte_exact_llmc_layout(
    corpus_dir: Path, tokenizer: BPETokenizer, tmp_path: Path
) -> None:
    result = encode_corpus(corpus_dir, tokenizer, tmp_path / "tokens", workers=2)
    for split, files in (("train", TRAIN_FILES), ("val", VAL_FILES)):
        (path,) = _shards(tmp_path / "tokens", split)
        assert path.name == f"{split}_000000.bin"
        header, tokens = _read_like_llmc(path)
        expected = _expected(tokenizer, files)
        assert list(header[:3]) == [20240520, 1, len(expected)]
        assert not header[3:].any()
        assert tokens.tolist() == expected
        assert result[split]["tokens"] == len(expected)
        assert result[split]["documents"] == sum(len(texts) for texts in files)
        assert read_token_shard(path).tolist() == expected
    assert result["dtype"] == "uint16" and result["cached"] is False


def test_small_shards_split_documents_and_read_back(corpus_dir: Path, tokenizer: BPETokenizer, tmp_path: Path) -> None:
    result = encode_corpus(corpus_dir, tokenizer, tmp_path / "tokens", shard_tokens=50, workers=1)
    paths = _shards(tmp_path / "tokens", "train")
    assert [str(p) for p in paths] == result["train"]["shards"] and len(paths) > 5
    shards = [read_token_shard(p) for p in paths]
    assert isinstance(shards[0], np.memmap) and shards[0].dtype == np.uint16
    assert all(len(s) == 50 for s in shards[:-1]) and 0 < len(shards[-1]) <= 50
    stream = np.concatenate(shards)
    assert stream.tolist() == _expected(tokenizer, TRAIN_FILES)
    documents = tokenizer.decode(stream.tolist()).split(EOT)[1:]
    assert documents == [text for texts in TRAIN_FILES for text in texts]
    val = np.concatenate([read_token_shard(p) for p in _shards(tmp_path / "tokens", "val")])
    assert val.tolist() == _expected(tokenizer, VAL_FILES)


def test_same_corpus_and_tokenizer_are_not_encoded_twice(
    corpus_dir: Path, tokenizer: BPETokenizer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "tokens"
    first = encode_corpus(corpus_dir, tokenizer, out, shard_tokens=50)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.bin")}
    with caplog.at_level("INFO", logger="tokenization.encode"):
        second = encode_corpus(corpus_dir, tokenizer, out, shard_tokens=50)
    assert second["cached"] is True and "nothing to do" in caplog.text
    assert {k: v for k, v in second.items() if k != "cached"} == {k: v for k, v in first.items() if k != "cached"}
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.bin")} == stamps

    # A changed corpus is a different cache key: re-encoded, and the old shards are replaced, not mixed in.
    _write_shard(corpus_dir / "shards" / "train-00001-of-00002.parquet", ["replaced"])
    third = encode_corpus(corpus_dir, tokenizer, out, shard_tokens=50)
    assert third["cached"] is False
    expected = _expected(tokenizer, [TRAIN_FILES[0], ["replaced"]])
    assert np.concatenate([read_token_shard(p) for p in _shards(out, "train")]).tolist() == expected


def test_interrupted_run_resumes_to_identical_shards(
    corpus_dir: Path, tokenizer: BPETokenizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = tmp_path / "clean"
    encode_corpus(corpus_dir, tokenizer, clean, shard_tokens=37)

    crashed = tmp_path / "crashed"
    calls = {"n": 0}
    real_encode_batch = BPETokenizer.encode_batch

    def encode_then_crash(self: BPETokenizer, texts: list[str], threads: int = 0) -> list[list[int]]:
        calls["n"] += 1
        if calls["n"] == 4:  # the first train file is 3 batches of 4 rows; crash in the second file
            raise RuntimeError("simulated crash")
        return real_encode_batch(self, texts, threads)

    monkeypatch.setattr(BPETokenizer, "encode_batch", encode_then_crash)
    monkeypatch.setattr("tokenization.encode.BATCH_ROWS", 4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        encode_corpus(corpus_dir, tokenizer, crashed, shard_tokens=37)
    manifest = json.loads((crashed / "manifest.json").read_text())
    done = manifest["splits"]["train"]["shards"]
    assert done and not manifest["splits"]["train"]["complete"]
    assert any(shard["next"][2] > 0 for shard in done)  # some shard ended inside a document
    assert not list(crashed.glob(".*.tmp"))  # the unfinished shard was discarded
    killed = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = crashed / f".train_{len(done):06d}.bin.{int(killed.stdout)}.tmp"  # as a killed run leaves it
    leftover.write_bytes(b"garbage from the crash")

    finished = {shard["name"]: (crashed / shard["name"]).stat().st_mtime_ns for shard in done}

    monkeypatch.setattr(BPETokenizer, "encode_batch", real_encode_batch)
    result = encode_corpus(corpus_dir, tokenizer, crashed, shard_tokens=37)
    assert result["cached"] is False and not leftover.exists()
    assert {name: (crashed / name).stat().st_mtime_ns for name in finished} == finished  # resumed, not redone
    for split in ("train", "val"):
        names = [p.name for p in _shards(clean, split)]
        assert [p.name for p in _shards(crashed, split)] == names
        for name in names:
            assert (crashed / name).read_bytes() == (clean / name).read_bytes(), name


def test_large_vocabulary_uses_uint32_version_2(corpus_dir: Path, tmp_path: Path) -> None:
    byte_level = BPETokenizer({bytes([b]): b for b in range(256)}, [], {EOT: 70_000})
    result = encode_corpus(corpus_dir, byte_level, tmp_path / "tokens")
    path = tmp_path / "tokens" / "val_000000.bin"
    header = np.frombuffer(path.read_bytes()[:1024], dtype=np.int32)
    assert list(header[:2]) == [20240520, 2] and result["dtype"] == "uint32"
    tokens = read_token_shard(path)
    assert tokens.dtype == np.uint32 and tokens[0] == 70_000
    assert byte_level.decode(tokens.tolist()) == "".join(EOT + t for t in VAL_FILES[0])


def test_bad_inputs_are_named(corpus_dir: Path, tokenizer: BPETokenizer, tmp_path: Path) -> None:
    (tmp_path / "empty" / "shards").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no train-\\*.parquet or val-\\*.parquet shards"):
        encode_corpus(tmp_path / "empty", tokenizer, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no shards directory"):
        encode_corpus(tmp_path / "nowhere", tokenizer, tmp_path / "out")
    with pytest.raises(ValueError, match="shard_tokens"):
        encode_corpus(corpus_dir, tokenizer, tmp_path / "out", shard_tokens=0)
    (tmp_path / "junk.bin").write_bytes(b"\0" * 2048)
    with pytest.raises(ValueError, match="not a token shard"):
        read_token_shard(tmp_path / "junk.bin")
    good = encode_corpus(corpus_dir, tokenizer, tmp_path / "ok")
    truncated = Path(good["train"]["shards"][0])
    truncated.write_bytes(truncated.read_bytes()[:-2])
    with pytest.raises(ValueError, match="header promises"):
        read_token_shard(truncated)
    pq.write_table(pa.table({"id": ["a"]}), corpus_dir / "shards" / "val-00000-of-00001.parquet")
    with pytest.raises(ValueError, match="no 'text' column"):
        encode_corpus(corpus_dir, tokenizer, tmp_path / "out")
