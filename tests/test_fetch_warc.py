"""WARC writing (rolling, crash recovery) and reading HTML pages from our WARCs and foreign ones."""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from corpus.warc import (
    RollingWarcWriter,
    finalize_open_files,
    html_record_offsets,
    iter_html_records,
    iter_html_records_from,
)

WHEN = datetime(2017, 12, 31, 23, 59, 58, 123456, tzinfo=UTC)


def write(
    writer: RollingWarcWriter,
    n: int,
    body: bytes = b"<html><p>hello</p></html>",
    headers: list[tuple[str, str]] | None = None,
):
    return writer.write_page(
        link_url=f"https://example.com/{n}",
        target_uri=f"https://www.example.com/{n}/",
        fetched_at=WHEN,
        method="GET",
        request_target=f"/{n}/",
        request_headers=[("Host", "www.example.com"), ("User-Agent", "t")],
        status=200,
        reason="OK",
        response_headers=headers or [("Content-Type", "text/html; charset=utf-8")],
        body=body,
        extra_headers={"WebText-Charset": "utf-8"},
    )


def test_roundtrip_rolls_by_size_and_keeps_exact_bytes(tmp_path):
    writer = RollingWarcWriter(tmp_path, "t", max_bytes=2000)
    bodies = {n: f"<html><body>{'x' * n * 37}</body></html>".encode() for n in range(12)}
    for n, body in bodies.items():
        write(writer, n, body)
    writer.close()
    files = sorted(tmp_path.glob("*.warc.gz"))
    assert len(files) > 1 and [f.name for f in files] == writer.finished
    assert not list(tmp_path.glob("*.open"))
    pages = list(iter_html_records(files))
    assert [p.link_url for p in pages] == [f"https://example.com/{n}" for n in bodies]
    for page, body in zip(pages, bodies.values()):
        assert page.body == body and page.status == 200 and page.charset == "utf-8"
        assert page.url.startswith("https://www.example.com/")
        assert page.fetched_at == "2017-12-31T23:59:58.123456Z"


def test_chunked_and_gzipped_responses_are_stored_readably(tmp_path):
    writer = RollingWarcWriter(tmp_path, "t")
    html = b"<html><p>compressed</p></html>"
    write(
        writer,
        1,
        gzip.compress(html),
        [("Content-Type", "text/html"), ("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")],
    )
    writer.close()
    [page] = iter_html_records(tmp_path.glob("*.warc.gz"))
    assert page.body == html  # the reader undoes Content-Encoding; the record keeps the bytes as sent


def test_finalize_open_files_cuts_back_to_committed_records(tmp_path):
    writer = RollingWarcWriter(tmp_path, "t")
    first = write(writer, 1)
    write(writer, 2)  # written but never logged: the crash came before its journal line
    open_file = next(tmp_path.glob("*.warc.gz.open"))
    with open(open_file, "ab") as handle:
        handle.write(b"\x1f\x8b half a record")  # and a torn record after it
    kept = finalize_open_files(tmp_path, {first.file: first.offset + first.length})
    assert kept == [first.file]
    assert [p.link_url for p in iter_html_records([tmp_path / first.file])] == ["https://example.com/1"]


def test_finalize_deletes_open_files_without_committed_records(tmp_path):
    writer = RollingWarcWriter(tmp_path, "t")
    write(writer, 1)
    assert finalize_open_files(tmp_path, {}) == []
    assert not list(tmp_path.iterdir())


def test_foreign_warc_like_common_crawl(tmp_path):
    """Common Crawl style: warcinfo, request/response/metadata records, no WebText headers, mixed statuses."""
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=True)
    writer.write_record(writer.create_warcinfo_record("CC-MAIN-test.warc.gz", {"software": "test"}))

    def response(uri: str, status: str, content_type: str, body: bytes):
        headers = StatusAndHeaders(
            status, [("Content-Type", content_type), ("Content-Length", str(len(body)))], protocol="HTTP/1.1"
        )
        writer.write_record(
            writer.create_warc_record(
                uri,
                "request",
                payload=io.BytesIO(b""),
                http_headers=StatusAndHeaders("GET / HTTP/1.1", [("Host", "x")], is_http_request=True),
            )
        )
        writer.write_record(writer.create_warc_record(uri, "response", payload=io.BytesIO(body), http_headers=headers))
        writer.write_record(
            writer.create_warc_record(
                uri, "metadata", payload=io.BytesIO(b"fetchTimeMs: 5"), warc_content_type="application/warc-fields"
            )
        )

    response("https://news.example/a", "200 OK", "text/html; charset=UTF-8", b"<html>a</html>")
    response("https://news.example/missing", "404 Not Found", "text/html", b"<html>404</html>")
    response("https://news.example/logo.png", "200 OK", "image/png", b"\x89PNG")
    response("https://news.example/b", "200 OK", "application/xhtml+xml", b"<html>b</html>")
    path = tmp_path / "CC-MAIN-test.warc.gz"
    path.write_bytes(buffer.getvalue())

    pages = list(iter_html_records([path]))
    assert [(p.url, p.link_url, p.body, p.charset) for p in pages] == [
        ("https://news.example/a", None, b"<html>a</html>", None),
        ("https://news.example/b", None, b"<html>b</html>", None),
    ]
    assert pages[0].content_type == "text/html; charset=UTF-8" and pages[0].fetched_at.endswith("Z")

    # A part of the file read from its first page's offset, skipping non-HTML records in between.
    offsets = html_record_offsets(path)
    assert len(offsets) == 2
    assert [p.url for p in iter_html_records_from(path, offsets[0], 2)] == [p.url for p in pages]
    assert [p.body for p in iter_html_records_from(path, offsets[1], 5)] == [b"<html>b</html>"]


def test_a_payload_that_cannot_be_decoded_is_an_empty_page_not_the_end_of_the_file(tmp_path, caplog):
    """A foreign WARC record whose Content-Encoding warcio fails on (brotli, with some Brotli releases) raised out of
    the reader and stopped the extraction of every other page, on every run (a gzip stream cut short is read as far
    as it goes)."""
    import brotli

    html = b"<html><body><p>" + b"hello world " * 40 + b"</p></body></html>"
    path = tmp_path / "foreign.warc.gz"
    with open(path, "wb") as stream:
        writer = WARCWriter(stream, gzip=True)
        for name, encoding, body in [
            ("br", "br", brotli.compress(html)),
            ("cut-br", "br", brotli.compress(html)[:10]),
            ("cut-gzip", "gzip", gzip.compress(html)[:12]),
            ("after", None, html),
        ]:
            fields = [("Content-Type", "text/html")] + ([("Content-Encoding", encoding)] if encoding else [])
            headers = StatusAndHeaders("200 OK", fields, protocol="HTTP/1.1")
            record = writer.create_warc_record(
                f"http://x.test/{name}", "response", payload=io.BytesIO(body), http_headers=headers
            )
            writer.write_record(record)
    with caplog.at_level("WARNING", logger="corpus.warc"):
        pages = {page.url.rsplit("/", 1)[1]: page.body for page in iter_html_records([path])}
    assert list(pages) == ["br", "cut-br", "cut-gzip", "after"] and pages["after"] == html
    assert pages["br"] in (b"", html)  # empty where warcio fails on brotli, the page where it does not
    emptied = [name for name, body in pages.items() if body == b""]
    assert emptied and all(
        f"{path}: cannot decode the payload of http://x.test/{name}" in caplog.text for name in emptied
    )
    offsets = html_record_offsets(path)
    assert [page.body for page in iter_html_records_from(path, offsets[1], 3)][-1] == html


def test_parts_read_from_offsets_equal_a_full_read(tmp_path):
    writer = RollingWarcWriter(tmp_path, "t", max_bytes=1 << 20)
    for n in range(23):
        write(writer, n, f"<html><body>{n}</body></html>".encode())
    writer.close()
    [path] = sorted(tmp_path.glob("*.warc.gz"))
    every = [(p.url, p.body) for p in iter_html_records([path])]
    offsets = html_record_offsets(path)
    assert len(offsets) == 23 and offsets == sorted(offsets)
    parts = [[(p.url, p.body) for p in iter_html_records_from(path, offsets[start], 5)] for start in range(0, 23, 5)]
    assert [page for part in parts for page in part] == every and [len(part) for part in parts] == [5, 5, 5, 5, 3]


def test_unreadable_warc_is_a_clear_error(tmp_path):
    for name, data in [("bad.warc.gz", b"garbage" * 100), ("torn.warc.gz", b"\x1f\x8b\x08\x00garbage")]:
        bad = tmp_path / name
        bad.write_bytes(data)
        with pytest.raises(ValueError, match=name):
            list(iter_html_records([bad]))
        with pytest.raises(ValueError, match=name):
            html_record_offsets(bad)
    with pytest.raises(FileNotFoundError, match="missing.warc.gz"):
        list(iter_html_records([tmp_path / "missing.warc.gz"]))
