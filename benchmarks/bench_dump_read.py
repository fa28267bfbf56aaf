"""Reading a .zst dump: corpus.reddit's frame-checking reader against zstandard's stream_reader it replaced.

The stream_reader ends quietly where a cut file ends, so a truncated dump read as a shorter one; corpus.reddit decodes
frame by frame to know whether the last frame ended. This prints what that costs: seconds to read every line of a
generated dump (N submissions, default 400k, one frame and 8 frames) with each reader (and with lines read as
iter_submissions reads them, none held past MAX_LINE_BYTES), and the time of
`iter_submissions` (lines parsed as JSON, what the harvest pays per dump) for scale. Best of 3 runs each.

    .venv/bin/python benchmarks/bench_dump_read.py
    .venv/bin/python benchmarks/bench_dump_read.py --submissions 2000000
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import zstandard

from corpus.reddit import _READ_BUFFER, MAX_LINE_BYTES, ZSTD_MAX_WINDOW, _lines, _ZstdFrames, iter_submissions


def generated_lines(n: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    words = ["news", "science", "story", "report", "update", "video", "analysis", "city", "market", "world"]
    return [
        json.dumps(
            {
                "id": f"t3_{i:x}",
                "subreddit": rng.choice(words),
                "score": rng.randint(-5, 5000),
                "url": f"https://{rng.choice(words)}{rng.randrange(5000)}.example.com/{i}",
                "title": " ".join(rng.choice(words) for _ in range(rng.randint(3, 15))),
                "created_utc": 1_400_000_000 + i,
                "is_self": rng.random() < 0.3,
                "over_18": rng.random() < 0.02,
            }
        ).encode()
        + b"\n"
        for i in range(n)
    ]


def write_dump(path: Path, lines: list[bytes], frames: int) -> Path:
    step = -(-len(lines) // frames)
    compressor = zstandard.ZstdCompressor(level=3)
    path.write_bytes(b"".join(compressor.compress(b"".join(lines[i : i + step])) for i in range(0, len(lines), step)))
    return path


def best_of(runs: int, read: Callable[[], int]) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        count = read()
        times.append(time.perf_counter() - start)
    return min(times), count


def stream_reader_lines(path: Path) -> int:
    with open(path, "rb") as raw:
        reader = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).stream_reader(raw, read_across_frames=True)
        return sum(1 for _ in io.BufferedReader(reader, buffer_size=_READ_BUFFER))


def frame_checking_lines(path: Path) -> int:
    with open(path, "rb") as raw:
        return sum(1 for _ in io.BufferedReader(_ZstdFrames(raw), buffer_size=_READ_BUFFER))


def bounded_lines(path: Path) -> int:
    """The frame-checking reader's lines as iter_submissions takes them: no line held past MAX_LINE_BYTES."""
    with open(path, "rb") as raw:
        return sum(1 for _ in _lines(io.BufferedReader(_ZstdFrames(raw), buffer_size=_READ_BUFFER), MAX_LINE_BYTES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=400_000)
    args = parser.parse_args()
    lines = generated_lines(args.submissions)
    with tempfile.TemporaryDirectory() as folder:
        for frames in (1, 8):
            dump = write_dump(Path(folder) / f"RS_bench_{frames}.zst", lines, frames)
            peer, n_peer = best_of(3, lambda dump=dump: stream_reader_lines(dump))
            ours, n_ours = best_of(3, lambda dump=dump: frame_checking_lines(dump))
            bounded, n_bounded = best_of(3, lambda dump=dump: bounded_lines(dump))
            parsed, n_parsed = best_of(3, lambda dump=dump: sum(1 for _ in iter_submissions(dump)))
            assert n_peer == n_ours == n_bounded == n_parsed == len(lines)
            print(
                f"{frames} frame(s), {len(lines):,} lines, {dump.stat().st_size / 2**20:.1f} MiB: "
                f"stream_reader {peer:.3f} s, frame-checking reader {ours:.3f} s ({ours / peer:.2f}x), "
                f"with lines bounded {bounded:.3f} s ({bounded / peer:.2f}x); iter_submissions {parsed:.3f} s "
                f"(the reader's extra cost is {(bounded - peer) / parsed:.1%} of it)"
            )


if __name__ == "__main__":
    main()
