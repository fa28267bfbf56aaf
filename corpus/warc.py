"""Gzipped WARC files of fetched pages (written with warcio) and a reader of HTML responses from any WARC.

Each fetched page is a request record and a response record. The response record carries the HTTP status line,
headers and the payload bytes exactly as received (still compressed when the server sent Content-Encoding), plus
`WARC-Target-URI` (the final URL after redirects), `WARC-Date`, `WebText-Link-URL` (the link URL the fetch was
made for) and `WebText-Charset` (the charset the fetcher detected). httpx hands us the payload without its chunked framing, so a `Transfer-Encoding` header is stored as
`X-Crawler-Transfer-Encoding` and `Content-Length` gives the stored length, so that WARC readers parse the record.

Files are written as `NAME.warc.gz.open` and renamed to `NAME.warc.gz` when rolled or closed. Each record is its
own gzip member, so a file cut at a record boundary is still valid: `finalize_open_files` uses that to recover
after a crash.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import datetime_to_iso_date
from warcio.warcwriter import WARCWriter

log = logging.getLogger(__name__)

LINK_URL_HEADER = "WebText-Link-URL"
CHARSET_HEADER = "WebText-Charset"
OPEN_SUFFIX = ".open"
HTML_TYPES: tuple[str, ...] = ("text/html", "application/xhtml+xml")


@dataclass
class WarcPage:
    url: str  # WARC-Target-URI of the response (the final URL after redirects)
    link_url: str | None  # WebText-Link-URL: the link this fetch was made for; None in foreign WARCs
    fetched_at: str  # WARC-Date, ISO 8601
    status: int
    content_type: str
    body: bytes  # payload with transfer and content encodings removed
    charset: str | None = None  # WebText-Charset: the charset the fetcher detected; None in foreign WARCs


@dataclass(frozen=True)
class WarcLocation:
    file: str  # final file name (NAME.warc.gz), relative to the WARC directory
    offset: int  # where the page's request record starts
    length: int  # bytes of the request + response records


def is_html(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() in HTML_TYPES


class RollingWarcWriter:
    """Append page captures to `directory/PREFIX-00000.warc.gz`, starting a new file past `max_bytes`."""

    def __init__(self, directory: Path, prefix: str, max_bytes: int = 1 << 30) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.finished: list[str] = []
        self._seq = 0
        self._name: str | None = None
        self._file: io.BufferedWriter | None = None
        self._writer: WARCWriter | None = None

    def _open(self) -> None:
        while True:  # never reuse a name: os.replace would overwrite a finished file
            self._name = f"{self.prefix}-{self._seq:05d}.warc.gz"
            self._seq += 1
            if not (self.directory / self._name).exists():
                break
        self._file = open(self.directory / (self._name + OPEN_SUFFIX), "xb")  # noqa: SIM115 - closed in _close
        self._writer = WARCWriter(self._file, gzip=True, warc_version="1.1")

    def write_page(
        self,
        *,
        link_url: str,
        target_uri: str,
        fetched_at: datetime,
        method: str,
        request_target: str,
        request_headers: Sequence[tuple[str, str]],
        status: int,
        reason: str,
        response_headers: Sequence[tuple[str, str]],
        body: bytes,
        extra_headers: Mapping[str, str] | None = None,
    ) -> WarcLocation:
        if self._file is None:
            self._open()
        assert self._file is not None and self._writer is not None and self._name is not None
        if fetched_at.tzinfo is not None:  # warcio formats naive UTC times
            fetched_at = fetched_at.astimezone(UTC).replace(tzinfo=None)
        date = datetime_to_iso_date(fetched_at, use_micros=True)
        request = self._writer.create_warc_record(
            target_uri,
            "request",
            payload=io.BytesIO(b""),
            http_headers=StatusAndHeaders(
                f"{method} {request_target} HTTP/1.1", list(request_headers), is_http_request=True
            ),
            warc_headers_dict={"WARC-Date": date, LINK_URL_HEADER: link_url},
        )
        headers = []
        for name, value in response_headers:
            lower = name.lower()
            if lower == "transfer-encoding":
                headers.append(("X-Crawler-Transfer-Encoding", value))
            elif lower != "content-length":
                headers.append((name, value))
        headers.append(("Content-Length", str(len(body))))
        response = self._writer.create_warc_record(
            target_uri,
            "response",
            payload=io.BytesIO(body),
            http_headers=StatusAndHeaders(f"{status} {reason}".strip(), headers, protocol="HTTP/1.1"),
            warc_headers_dict={
                "WARC-Date": date,
                LINK_URL_HEADER: link_url,
                "WARC-Concurrent-To": request.rec_headers.get_header("WARC-Record-ID"),
                **(extra_headers or {}),
            },
        )
        offset = self._file.tell()
        self._writer.write_record(request)
        self._writer.write_record(response)
        self._file.flush()  # a killed process leaves every finished record in the file
        location = WarcLocation(self._name, offset, self._file.tell() - offset)
        if self._file.tell() >= self.max_bytes:
            self._close()
        return location

    def _close(self) -> None:
        if self._file is None:
            return
        assert self._name is not None
        self._file.close()
        os.replace(self.directory / (self._name + OPEN_SUFFIX), self.directory / self._name)
        self.finished.append(self._name)
        self._file = self._writer = self._name = None

    def close(self) -> None:
        self._close()


def finalize_open_files(directory: Path, committed_end: Mapping[str, int]) -> list[str]:
    """After a crash: cut each `*.warc.gz.open` file to the end of its last committed record and rename it
    (or delete it when nothing in it was committed). `committed_end` maps final file name -> end offset.
    Returns the names of the files kept."""
    kept = []
    for path in sorted(Path(directory).glob(f"*.warc.gz{OPEN_SUFFIX}")):
        name = path.name[: -len(OPEN_SUFFIX)]
        end = committed_end.get(name, 0)
        if end <= 0:
            path.unlink()
            continue
        with open(path, "r+b") as handle:
            handle.truncate(end)
        os.replace(path, path.with_name(name))
        kept.append(name)
    return kept


def iter_html_records(paths: Iterable[Path]) -> Iterator[WarcPage]:
    """HTML pages from WARC files (ours or foreign, e.g. Common Crawl's; gzipped or not): response records with an
    HTTP status of 200 and an HTML content type. Other records are skipped. An unreadable file raises ValueError."""
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"WARC file not found: {path}")
        yield from (_html_page(record, path) for _, record in _html_records(path))


def html_record_offsets(path: Path) -> list[int]:
    """Byte offsets of the HTML page records of one WARC file, in order (one pass; bodies are skipped)."""
    return [iterator.get_record_offset() for iterator, _ in _html_records(Path(path))]  # reads past the body


def iter_html_records_from(path: Path, offset: int, count: int) -> Iterator[WarcPage]:
    """`count` HTML pages of one WARC file, from the record at byte `offset` (from html_record_offsets) on: a part
    of a large file is read without parsing everything before it."""
    records = _html_records(Path(path), offset)
    yield from (_html_page(record, path) for _, record in itertools.islice(records, max(count, 0)))


def _html_records(path: Path, offset: int = 0) -> Iterator[tuple[ArchiveIterator, ArcWarcRecord]]:
    """(the iterator, the record) for each HTML page record of one WARC file, read from byte `offset` on; read the
    record's body before asking the iterator for its offset, which reads past it. A file warcio cannot read raises
    ValueError naming it."""
    records = 0
    where = f" at offset {offset}" if offset else ""
    with open(path, "rb") as stream:
        stream.seek(offset)
        iterator = ArchiveIterator(stream)
        try:
            for record in iterator:
                records += 1
                if _is_html_page(record):
                    yield iterator, record
        except ArchiveLoadFailed as error:
            raise ValueError(f"cannot read WARC file {path}{where}: {error}") from error
    if records == 0 and offset == 0 and path.stat().st_size > 0:  # warcio silently yields nothing from a corrupt gzip
        raise ValueError(f"cannot read WARC file {path}: no WARC records found")


def _is_html_page(record: ArcWarcRecord) -> bool:
    """A 200 response with an HTML content type, or with none where our fetcher took the body for HTML (it sniffs
    pages served without a Content-Type, and marks every page it keeps with its charset)."""
    if record.rec_type != "response" or record.http_headers is None:
        return False
    content_type = record.http_headers.get_header("Content-Type")
    sniffed = not content_type and record.rec_headers.get_header(CHARSET_HEADER) is not None
    return record.http_headers.get_statuscode() == "200" and (is_html(content_type or "") or sniffed)


def _html_page(record: ArcWarcRecord, path: Path) -> WarcPage:
    """The page of an HTML page record (see _is_html_page). A payload that cannot be decoded (a Content-Encoding
    warcio fails on, such as brotli with some Brotli releases; a broken stream) is an empty page, and a warning: a
    foreign WARC's one bad record must not stop the extraction of all the others."""
    content_type = record.http_headers.get_header("Content-Type") or ""
    url = record.rec_headers.get_header("WARC-Target-URI")
    try:
        body = record.content_stream().read()
    except Exception as error:  # warcio's decoders raise what their libraries raise (zlib, EOF, brotli's own)
        encoding = record.http_headers.get_header("Content-Encoding")
        log.warning(
            "%s: cannot decode the payload of %s (Content-Encoding %s: %r); read as empty", path, url, encoding, error
        )
        body = b""
    return WarcPage(
        url=url,
        link_url=record.rec_headers.get_header(LINK_URL_HEADER),
        fetched_at=record.rec_headers.get_header("WARC-Date"),
        status=200,
        content_type=content_type,
        body=body,
        charset=record.rec_headers.get_header(CHARSET_HEADER),
    )
