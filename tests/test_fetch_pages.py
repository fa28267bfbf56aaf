"""Real web pages served under their original http(s) URLs (through connect_to) land byte-exact in the WARC."""

from __future__ import annotations

import json

import httpx
import pyarrow.parquet as pq
import pytest
from hostile_server import HostileServer, make_tls_files

from corpus.fetch import FetchConfig, fetch_urls
from corpus.warc import iter_html_records


@pytest.fixture(scope="module")
def served_pages(web_pages_dir, tmp_path_factory):
    manifest = json.loads((web_pages_dir / "manifest.json").read_text())
    pages = {}
    for entry in manifest:
        if entry["url"].startswith("hard::"):
            continue
        url = httpx.URL(entry["url"])
        body = (web_pages_dir / entry["file"]).read_bytes()
        pages[(url.host, url.raw_path.decode("ascii"))] = (entry["url"], body)
    hosts = sorted({host for host, _ in pages})
    tls = make_tls_files(hosts, tmp_path_factory.mktemp("tls"))
    with HostileServer(pages={key: (body, "text/html") for key, (_, body) in pages.items()}, tls=tls) as server:
        connect_to = {}
        for host in hosts:
            connect_to[f"{host}:80"] = f"127.0.0.1:{server.port}"
            connect_to[f"{host}:443"] = f"127.0.0.1:{server.tls_port}"
        yield server, tls, connect_to, {url: body for url, body in pages.values()}


def test_real_pages_are_archived_byte_exact(served_pages, tmp_path):
    server, tls, connect_to, bodies = served_pages
    config = FetchConfig(
        concurrency=32,
        per_host=2,
        min_delay_s=0.0,
        connect_to=connect_to,
        ca_file=str(tls.ca_file),
        connect_timeout_s=5,
        read_timeout_s=5,
        deadline_s=20,
        progress_interval_s=5,
    )
    summary = fetch_urls(list(bodies), tmp_path, config)
    log = {row["url"]: row for row in pq.read_table(tmp_path / "log.parquet").to_pylist()}
    failed = {url: (row["outcome"], row["error"]) for url, row in log.items() if row["outcome"] != "ok"}
    assert not failed
    assert summary.outcomes == {"ok": len(bodies)} and len(bodies) > 250
    assert all(log[url]["bytes"] == len(body) for url, body in bodies.items())

    pages = list(iter_html_records(sorted((tmp_path / "warc").glob("*.warc.gz"))))
    assert len(pages) == len(bodies)
    for page in pages:
        assert page.url == page.link_url
        assert page.body == bodies[page.link_url], page.link_url
    https = [url for url in bodies if url.startswith("https://")]
    assert len(https) > 200 and all(server.hits[(httpx.URL(u).host, httpx.URL(u).raw_path.decode())] for u in https)


def test_untrusted_certificate_is_a_connection_error(served_pages, tmp_path):
    _, _, connect_to, bodies = served_pages
    url = next(url for url in bodies if url.startswith("https://"))
    config = FetchConfig(min_delay_s=0.0, connect_to=connect_to, max_retries=0, connect_timeout_s=5, deadline_s=10)
    summary = fetch_urls([url], tmp_path, config)  # no ca_file: the test CA is not trusted
    assert summary.outcomes == {"connection_error": 1}
    row = pq.read_table(tmp_path / "log.parquet").to_pylist()[0]
    assert "CERTIFICATE_VERIFY_FAILED" in row["error"]
