"""One HTTP server on loopback that answers for every host of a mini web, chosen by the Host header.

The fetcher reaches it through `connect_to` (like curl's --connect-to): the URL and Host header stay as in the dump,
only the TCP connection goes to 127.0.0.1:PORT. The dead host of the dump is mapped to a second loopback port that
is bound but never listens, so connecting to it is refused.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from infra.miniweb.build import MiniWeb, Page

log = logging.getLogger(__name__)

_DRIP_INTERVAL_S = 0.5


def normalize_host(value: str) -> str:
    """'WWW.News.Example.com:8080' -> 'news.example.com'."""
    host = value.strip().lower()
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    else:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return host.removeprefix("www.")


def normalize_path(target: str) -> str:
    """Path of a request target, without query or fragment, without a trailing slash (except the root)."""
    path = urlsplit(target).path or "/"
    return path.rstrip("/") or "/"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "nginx/1.14.0"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        log.debug("%s %s", self.headers.get("Host"), format % args)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def _answer(self, send_body: bool) -> None:
        host = normalize_host(self.headers.get("Host", ""))
        key = (host, normalize_path(self.path))
        page = self.server.routes.get(key)
        with self.server.lock:  # handler threads run concurrently
            self.server.hits[key] += 1  # the flaky page fails its first request only
            hits = self.server.hits[key]
        if page is None:
            return self._simple(404, "Not Found", send_body)
        if page.behavior == "redirect":
            self.send_response(301)
            self.send_header("Location", f"http://{host}{page.location}")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if page.behavior == "unavailable":
            return self._simple(503, "Service Unavailable", send_body, retry_after=1)
        if page.behavior == "flaky" and hits == 1:
            return self._simple(500, "Internal Server Error", send_body)
        body = (self.server.sites / page.file).read_bytes()
        if page.behavior == "slow":
            return self._drip(body, send_body)
        self.send_response(200)
        ctype = "text/plain; charset=utf-8" if page.file.endswith(".txt") else "text/html; charset=utf-8"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=600")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _simple(self, status: int, reason: str, send_body: bool, retry_after: int | None = None) -> None:
        body = f"<html><head><title>{status} {reason}</title></head><body><h1>{reason}</h1></body></html>\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _drip(self, body: bytes, send_body: bool) -> None:
        """Headers at once, then the body a few bytes at a time for `slow_seconds`: only a deadline ends it."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not send_body:
            return
        steps = max(1, int(self.server.slow_seconds / _DRIP_INTERVAL_S))
        chunk = max(1, len(body) // steps)
        try:
            for start in range(0, len(body), chunk):
                if self.server.stopping.wait(_DRIP_INTERVAL_S):
                    return
                self.wfile.write(body[start : start + chunk])
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], routes: dict[tuple[str, str], Page], sites: Path, slow_seconds: float):
        self.routes = routes
        self.sites = sites
        self.slow_seconds = slow_seconds
        self.stopping = threading.Event()
        self.hits: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()
        super().__init__(address, _Handler)


class MiniWebServer:
    """A running mini web: `.port`, `.url`, `.connect_to` for the fetcher, `.stop()`; also a context manager."""

    def __init__(self, miniweb: MiniWeb, host: str = "127.0.0.1", port: int = 0, slow_seconds: float | None = None):
        self.miniweb = miniweb
        routes = {(p["host"], normalize_path(p["path"])): Page(**p) for p in miniweb.manifest["pages"]}
        self._httpd = _Server(
            (host, port),
            routes,
            miniweb.root / "sites",
            slow_seconds if slow_seconds is not None else miniweb.manifest["slow_page_seconds"],
        )
        self.host = host
        self.port: int = self._httpd.server_address[1]
        # Bound but never listening: connections are refused, and no other process can take the port meanwhile.
        self._dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._dead.bind((host, 0))
        self.dead_port: int = self._dead.getsockname()[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name=f"miniweb:{self.port}", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def connect_to(self) -> dict[str, str]:
        """FetchConfig.connect_to: every domain of the dump -> this server, the dead hosts -> the refusing port.

        `*.domain` covers the subdomains (exact entries win over it), so the map stays short whatever the size.
        Media and Reddit hosts are mapped too, though harvesting drops their links: nothing may leave loopback.
        """
        address, dead = f"{self.host}:{self.port}", f"{self.host}:{self.dead_port}"
        mapping: dict[str, str] = {}
        for host in self.miniweb.hosts:
            domain = ".".join(host.split(".")[-2:])
            mapping[domain] = mapping[f"*.{domain}"] = address
        mapping.update({host: dead for host in self.miniweb.manifest["refused_hosts"]})
        return dict(sorted(mapping.items()))

    def stop(self) -> None:
        self._httpd.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._dead.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MiniWebServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_miniweb(
    miniweb: MiniWeb, host: str = "127.0.0.1", port: int = 0, slow_seconds: float | None = None
) -> MiniWebServer:
    """Start serving `miniweb` in a background thread on `host:port` (0: a free port). Call `.stop()` when done."""
    return MiniWebServer(miniweb, host, port, slow_seconds)


def wait_forever(server: MiniWebServer) -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
