"""Malformed benchmark files: every JSON / JSON-lines reader of `evaluation/` names the file and the line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evaluation.coqa import read_coqa
from evaluation.lambada import read_lambada
from evaluation.nq import read_nq
from evaluation.summarization import read_cnndm


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


GOOD = {
    "lambada": {"text": "the cat sat on the mat"},
    "nq": {"question": "who", "answer": ["me"]},
    "cnndm": {"article": "A story.", "highlights": "A summary."},
}
READERS = {"lambada": read_lambada, "nq": read_nq, "cnndm": read_cnndm}


@pytest.mark.parametrize("task", sorted(READERS))
def test_a_malformed_jsonl_line_names_the_file_and_its_line(tmp_path: Path, task: str) -> None:
    good = json.dumps(GOOD[task])
    # Line 3 (after a blank line, which is skipped but still counted) is cut short.
    path = _jsonl(tmp_path / f"{task}.jsonl", [good, "", good[:-5], good])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:3: not valid JSON \(.* at column \d+\)$"):
        READERS[task](path)


@pytest.mark.parametrize("task", sorted(READERS))
def test_a_jsonl_record_without_its_field_names_the_file_line_and_field(tmp_path: Path, task: str) -> None:
    record = dict(GOOD[task])
    missing = sorted(record)[0]
    del record[missing]
    path = _jsonl(tmp_path / f"{task}.jsonl", [json.dumps(GOOD[task]), json.dumps(record)])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:2: the record has no '{missing}' field$"):
        READERS[task](path)
    path = _jsonl(tmp_path / f"{task}-list.jsonl", [json.dumps(GOOD[task]), "[1, 2]"])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:2: expected a JSON object, got list$"):
        READERS[task](path)


def test_a_malformed_coqa_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "coqa-dev-v1.0.json"
    path.write_text('{"version": "1.0",\n "data": [\n  {"story": "x",,}\n ]\n}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:3: not valid JSON \(.* at column \d+\)$"):
        read_coqa(path)
    path.write_text('{"version": "1.0"}', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: the record has no 'data' field$"):
        read_coqa(path)
