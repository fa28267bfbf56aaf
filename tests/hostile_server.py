"""A real HTTP(S) server on 127.0.0.1 for fetcher tests: one endpoint per way a web server can hurt a crawler,
plus static pages served under their original URLs (routed by the Host header; reach them through connect_to).

    /drip                 sends one byte every 0.1 s (must hit the per-request deadline)
    /endless              a body that never ends (must hit the size cap)
    /gzip-bomb            32 MiB of zeros gzipped to ~32 KiB (must hit the decompressed cap)
    /loop                 redirects to itself forever
    /hop?n=N              N redirects, then the page
    /no-location          302 without a Location header
    /not-modified         304, which is no redirect
    /gzipped              the page, gzip Content-Encoding
    /to-loopback          redirects to http://127.0.0.1:PORT/ok
    /to-metadata          redirects to http://169.254.169.254/latest/meta-data/
    /to-ipv6-loopback     redirects to http://[::1]:PORT/ok
    /to-bad-host          redirects to http://xn--/ (a malformed IDNA label)
    /to-mailto            redirects to mailto:someone@example.com
    /retry-after          429 with Retry-After: 1 the first time, then the page (?s=N: Retry-After N; &form=date:
                          as the HTTP-date N seconds ahead)
    /always-429           429 with Retry-After: 1, always
    /retry-after-long     429 with Retry-After: 3600
    /unavailable-once     503 the first time, then the page
    /error-once           500 the first time, then the page
    /untyped-html         the page without a Content-Type header
    /untyped-binary       a PNG without a Content-Type header
    /declared-large       a Content-Length of 64 MiB, and only a few bytes sent
    /image.png            a PNG
    /bad-charset          text/html; charset=utf-8 holding random bytes
    /not-found            404
    /slow?ms=N            the page after N ms
    /slow-hop?n=N&ms=M    N redirects, each after M ms, then the page
    /robots-hop?n=N&to=U  N + 1 redirects, the last to U
    anything else         a small HTML page
    /robots.txt           what `robots` gives for that Host, else 404 (a gzip bomb for robotsbomb.*, a comment byte
                          every 0.1 s for robotsdrip.*): a text or bytes (200), a (status, body, headers) reply, or a
                          list of those served in turn (the last repeats)
"""

from __future__ import annotations

import datetime
import email.utils
import gzip
import random
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\0" * 32


@dataclass(frozen=True)
class TLSFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls_files(hostnames: list[str], directory: Path) -> TLSFiles:
    """A throwaway CA and a server certificate for `hostnames`, written as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webtext test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hostnames]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._send(302, b"", headers={"Location": location})

    def _stream_forever(self, chunk: bytes, pause: float, content_length: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        if content_length is not None:
            self.send_header("Content-Length", str(content_length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        deadline = time.monotonic() + 30
        try:
            while not self.server.owner.stopping.is_set() and time.monotonic() < deadline:
                self.wfile.write(chunk)
                self.wfile.flush()
                if pause:
                    time.sleep(pause)
        except OSError:  # the client gave up, as it should
            pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        owner = self.server.owner
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        parts = urlsplit(self.path)
        key = (host, self.path)
        with owner.lock:
            owner.requests.append((time.monotonic(), host, self.path))
            owner.hits[key] += 1
            first = owner.hits[key] == 1
        path = parts.path
        if key in owner.pages:
            body, content_type = owner.pages[key]
            self._send(200, body, content_type)
        elif path == "/robots.txt" and host.startswith("robotsbomb."):
            self._send(200, owner.gzip_bomb(), "text/plain", {"Content-Encoding": "gzip"})
        elif path == "/robots.txt" and host.startswith("robotsdrip."):
            self._stream_forever(b"#", 0.1)
        elif path == "/robots.txt":
            status, body, headers = owner.robots_reply(host, owner.hits[key])
            self._send(status, body, "text/plain", headers)
        elif path == "/drip":
            self._stream_forever(b"x", 0.1, content_length=10_000)
        elif path == "/endless":
            self._stream_forever(b"<p>" + b"a" * 65_533, 0)
        elif path == "/gzip-bomb":
            self._send(200, owner.gzip_bomb(), headers={"Content-Encoding": "gzip"})
        elif path == "/loop":
            self._redirect(f"/loop?n={int(parse_qs(parts.query).get('n', ['0'])[0]) + 1}")
        elif path == "/hop":
            left = int(parse_qs(parts.query).get("n", ["0"])[0])
            self._redirect(f"/hop?n={left - 1}") if left > 0 else self._send(200, page_for(host, self.path))
        elif path == "/no-location":
            self._send(302, b"")
        elif path == "/not-modified":
            self.send_response(304)
            self.end_headers()
        elif path == "/gzipped":
            self._send(200, gzip.compress(page_for(host, self.path)), headers={"Content-Encoding": "gzip"})
        elif path == "/slow-hop":
            time.sleep(int(parse_qs(parts.query).get("ms", ["100"])[0]) / 1000)
            left = int(parse_qs(parts.query).get("n", ["0"])[0])
            ms = parse_qs(parts.query).get("ms", ["100"])[0]
            self._redirect(f"/slow-hop?n={left - 1}&ms={ms}") if left > 0 else self._send(
                200, page_for(host, self.path)
            )
        elif path == "/robots-hop":  # a redirect chain for robots.txt: n more hops, then to `to`
            query = parse_qs(parts.query)
            left = int(query["n"][0])
            self._redirect(f"/robots-hop?n={left - 1}&to={query['to'][0]}" if left > 0 else query["to"][0])
        elif path == "/to-loopback":
            self._redirect(f"http://127.0.0.1:{owner.port}/ok")
        elif path == "/to-metadata":
            self._redirect("http://169.254.169.254/latest/meta-data/")
        elif path == "/to-bad-host":
            self._redirect("http://xn--/")
        elif path == "/to-mailto":
            self._redirect("mailto:someone@example.com")
        elif path == "/to-ipv6-loopback":
            self._redirect(f"http://[::1]:{owner.port}/ok")
        elif path == "/retry-after" and first:
            query = parse_qs(parts.query)
            seconds = int(query.get("s", ["1"])[0])
            value = (
                email.utils.formatdate(time.time() + seconds, usegmt=True)
                if query.get("form") == ["date"]
                else str(seconds)
            )
            self._send(429, b"slow down", "text/plain", {"Retry-After": value})
        elif path == "/always-429":
            self._send(429, b"slow down", "text/plain", {"Retry-After": "1"})
        elif path == "/retry-after-long":
            self._send(429, b"come back tomorrow", "text/plain", {"Retry-After": "3600"})
        elif path == "/unavailable-once" and first:
            self._send(503, b"busy", "text/plain")
        elif path == "/error-once" and first:
            self._send(500, b"oops", "text/plain")
        elif path == "/untyped-html":
            self._send(200, page_for(host, self.path), None)
        elif path == "/untyped-binary":
            self._send(200, PNG, None)
        elif path == "/declared-large":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(64 << 20))
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self.wfile.write(b"<html>")  # the client must give up on the header alone, not wait for the rest
        elif path == "/image.png":
            self._send(200, PNG, "image/png")
        elif path == "/bad-charset":
            self._send(200, random.Random(7).randbytes(4096))
        elif path == "/not-found":
            self._send(404, b"<html><body>not here</body></html>")
        else:
            if path == "/slow":
                time.sleep(int(parse_qs(parts.query).get("ms", ["100"])[0]) / 1000)
            self._send(200, page_for(host, self.path))


def page_for(host: str, path: str) -> bytes:
    """The small page served for any other path (tests compare WARC bodies with it)."""
    return (
        f"<!doctype html><html><head><title>{host}{path}</title></head>"
        f"<body><p>Page {path} of {host}.</p></body></html>"
    ).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops connections when a test opens many at once
    owner: HostileServer
    ssl_context: ssl.SSLContext | None = None

    def finish_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        if self.ssl_context is not None:  # handshake in the connection's thread, not the accept loop
            request = self.ssl_context.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        pass  # clients that hang up on purpose are the point of this server


class HostileServer:
    """Start with `with HostileServer(...) as server:`; `server.port` (and `tls_port` when `tls` is given)."""

    def __init__(
        self,
        pages: dict[tuple[str, str], tuple[bytes, str]] | None = None,
        robots: dict[str, object] | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        self.pages = dict(pages or {})
        self.robots = dict(robots or {})
        self.tls = tls
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.requests: list[tuple[float, str, str]] = []
        self.hits: Counter[tuple[str, str]] = Counter()
        self._bomb: bytes | None = None
        self._bomb_lock = threading.Lock()
        self._servers: list[_Server] = []
        self.port = 0
        self.tls_port = 0

    def robots_reply(self, host: str, hit: int) -> tuple[int, bytes, dict[str, str]]:
        """(status, body, headers) of the `hit`-th request (from 1) for robots.txt on `host`."""
        reply = self.robots.get(host)
        if isinstance(reply, list):
            reply = reply[min(hit, len(reply)) - 1]
        if reply is None:
            return 404, b"no robots", {}
        if isinstance(reply, (str, bytes)):
            return 200, reply.encode() if isinstance(reply, str) else reply, {}
        return reply

    def gzip_bomb(self) -> bytes:
        with self._bomb_lock:  # not self.lock: compressing takes a while and must not stall other requests
            if self._bomb is None:
                self._bomb = gzip.compress(b"<html>" + b"\0" * (32 << 20), compresslevel=6)
            return self._bomb

    def _serve(self, context: ssl.SSLContext | None) -> int:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        server.ssl_context = context
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._servers.append(server)
        return server.server_address[1]

    def __enter__(self) -> HostileServer:
        self.gzip_bomb()
        self.port = self._serve(None)
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
            self.tls_port = self._serve(context)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def request_times(self, host: str, prefix: str = "/") -> list[float]:
        with self.lock:
            return [t for t, h, p in self.requests if h == host and p.startswith(prefix) and p != "/robots.txt"]


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
