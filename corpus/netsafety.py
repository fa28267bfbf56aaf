"""Keep the crawler off internal networks: resolve, check, then connect to exactly the address that was checked.

A page on the public web can link or redirect to `http://169.254.169.254/` (cloud metadata), `http://127.0.0.1:6379/`
or a name that resolves to a private address. `SafeNetworkBackend` is the httpcore network backend under our httpx
transport: every TCP connection, redirect hops and robots.txt included, resolves the host once, refuses the
connection if any resolved address is not public, and then connects to one of those same addresses, so a second DNS
answer cannot slip in between the check and the connect. TLS still uses the URL's host name for SNI and certificate
checks, and the Host header is untouched, because only the socket's peer address changes.

`connect_to` works like curl's `--connect-to`: `{"news.example.com": "127.0.0.1:8080"}` sends connections for that
host to that address. Keys are `host`, `host:port`, `*.domain` (any subdomain of domain) or `*.domain:port`; values
are `ip`, `ip:port` or `[ipv6]:port` (without a port the URL's port is kept). An address reached through connect_to
is trusted (the operator chose it); IP literals in URLs and redirects are never mapped and always checked.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import anyio
import httpcore
import httpx
from httpcore._backends.anyio import AnyIOBackend

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class BlockedAddressError(Exception):
    """The host resolves to an address the crawler must not reach."""


class DNSError(Exception):
    """The host name does not resolve."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped, 6to4, Teredo client or NAT64."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def blocked_reason(address: str | IPAddress) -> str | None:
    """Why an address must not be contacted (e.g. "loopback"), or None for a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = blocked_reason(inner)
            return f"{reason} (embedded in {ip})" if reason else None
    for reason, flag in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    ):
        if flag:
            return reason
    if not ip.is_global:  # e.g. 100.64.0.0/10 (carrier-grade NAT), documentation and benchmark ranges
        return "not globally routable"
    return None


@dataclass(frozen=True)
class ConnectTarget:
    host: str
    port: int | None  # None keeps the URL's port


def _port(text: str, where: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise ValueError(f"port {text!r} of {where!r} is not a number from 1 to 65535")
    return int(text)


def _split_host_port(text: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, _port(rest[1:], text) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, _port(port, text)
    return text, None


class ConnectTo:
    """A parsed connect_to mapping. `lookup(host, port)` gives the operator's target or None."""

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self._exact: dict[tuple[str, int | None], ConnectTarget] = {}
        self._suffix: list[tuple[str, int | None, ConnectTarget]] = []
        for key, value in (mapping or {}).items():
            try:
                host, port = _split_host_port(key)
                target_host, target_port = _split_host_port(value)
                ipaddress.ip_address(target_host)
            except ValueError as error:
                raise ValueError(
                    f"connect_to entry {key!r}: {value!r}: {error}; each entry maps 'host[:port]' to "
                    f"'ip[:port]' (ports 1-65535)"
                ) from error
            target = ConnectTarget(target_host, target_port)
            host = host.lower().rstrip(".")
            if host.startswith("*."):
                self._suffix.append((host[1:], port, target))
            else:
                self._exact[(host, port)] = target

    def __bool__(self) -> bool:
        return bool(self._exact or self._suffix)

    def lookup(self, host: str, port: int) -> ConnectTarget | None:
        host = host.lower().rstrip(".")
        if _is_ip_literal(host):
            return None
        for key in ((host, port), (host, None)):
            if key in self._exact:
                return self._exact[key]
        for suffix, suffix_port, target in self._suffix:
            if host.endswith(suffix) and suffix_port in (None, port):
                return target
        return None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


async def resolve(host: str, port: int) -> list[str]:
    """All addresses of host, in resolver order. Raises DNSError when it does not resolve."""
    host = host.strip("[]")
    if _is_ip_literal(host):
        return [host]
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise DNSError(f"cannot resolve {host}: {error}") from error
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise DNSError(f"cannot resolve {host}: no addresses")
    return addresses


class SafeNetworkBackend(AnyIOBackend):
    """httpcore network backend: connect_to mapping, then resolve + check + connect to the checked address."""

    def __init__(self, connect_to: ConnectTo, allow_private_addresses: bool = False) -> None:
        self.connect_to = connect_to
        self.allow_private_addresses = allow_private_addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        target = self.connect_to.lookup(host, port)
        if target is not None:  # the operator's choice: trusted, not checked
            addresses, port = [target.host], target.port or port
        else:
            addresses = await resolve(host, port)
            if not self.allow_private_addresses:
                for address in addresses:
                    reason = blocked_reason(address)
                    if reason:
                        raise BlockedAddressError(f"{host} -> {address}: {reason} address")
        last_error: Exception | None = None
        for address in addresses:  # each one was checked above; never resolve again
            try:
                return await super().connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as error:
                last_error = error
        assert last_error is not None
        raise last_error


class SafeTransport(httpx.AsyncHTTPTransport):
    """httpx transport whose connections go through SafeNetworkBackend. Proxies from the environment are ignored:
    a proxy would do its own resolving, out of our sight."""

    def __init__(
        self,
        connect_to: Mapping[str, str] | None = None,
        allow_private_addresses: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
        max_keepalive_connections: int = 16,
        keepalive_expiry: float = 2.0,
    ) -> None:
        ssl_context = ssl_context or httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx 0.28 has no parameter for the network backend; swap in a pool built with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            # httpcore scans every pooled connection on each request: keep few idle ones. A broad crawl reuses a
            # connection mostly right after robots.txt, so a short expiry loses little.
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
            network_backend=SafeNetworkBackend(ConnectTo(connect_to), allow_private_addresses),
        )
