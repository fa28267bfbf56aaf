"""Address checks (IPv4, IPv6, IPv4 embedded in IPv6), connect_to parsing, and the check happening at connect time."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from hostile_server import HostileServer

from corpus.netsafety import BlockedAddressError, ConnectTarget, ConnectTo, SafeTransport, blocked_reason


@pytest.mark.parametrize(
    "address, reason",
    [
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),  # broadcast, inside 240.0.0.0/4
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "not globally routable"),
        ("192.0.2.10", "private"),  # documentation range
        ("2001:4860:4860::8888", None),
        ("2606:4700:4700::1111", None),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "private"),  # documentation range
        ("::ffff:127.0.0.1", "loopback (embedded in ::ffff:7f00:1)"),
        ("::ffff:169.254.169.254", "link-local (embedded in ::ffff:a9fe:a9fe)"),
        ("::ffff:8.8.8.8", None),
        ("2002:7f00:1::", "loopback (embedded in 2002:7f00:1::)"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", "private (embedded in 64:ff9b::a00:1)"),  # NAT64 of 10.0.0.1
        ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8
        # Teredo (2001::/32): the client's IPv4 is the last 32 bits inverted; 2001::/23 alone would read "private"
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback (embedded in 2001:0:4136:e378:8000:63bf:80ff:fffe)"),
        ("2001:0:4136:e378:8000:63bf:5601:5601", "link-local (embedded in 2001:0:4136:e378:8000:63bf:5601:5601)"),
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", None),  # Teredo client 8.8.8.8
    ],
)
def test_blocked_reason(address, reason):
    assert blocked_reason(address) == reason


def test_connect_to_patterns():
    mapping = ConnectTo(
        {"news.example.com": "127.0.0.1:8080", "*.example.org": "10.0.0.5", "secure.example.net:443": "[::1]:8443"}
    )
    assert mapping.lookup("news.example.com", 80) == ConnectTarget("127.0.0.1", 8080)
    assert mapping.lookup("NEWS.example.com.", 443) == ConnectTarget("127.0.0.1", 8080)
    assert mapping.lookup("a.b.example.org", 80) == ConnectTarget("10.0.0.5", None)
    assert mapping.lookup("example.org", 80) is None  # `*.` means subdomains only
    assert mapping.lookup("secure.example.net", 443) == ConnectTarget("::1", 8443)
    assert mapping.lookup("secure.example.net", 80) is None
    assert ConnectTo({"*.example.org": "127.0.0.1"}).lookup("127.0.0.1", 80) is None  # literals never mapped
    with pytest.raises(ValueError, match="connect_to entry"):
        ConnectTo({"a.example": "not-an-ip:80"})
    # keys in any case and with the root's trailing dot; an IPv6 target without a port keeps the URL's port
    trailing = ConnectTo({"News.Example.COM.": "[::1]"})
    assert trailing.lookup("news.example.com", 443) == ConnectTarget("::1", None)


def test_ip_literals_are_never_mapped_even_when_named_in_connect_to():
    """A redirect to an IP literal must be checked as that address, never sent to an operator's trusted target."""
    mapping = ConnectTo({"127.0.0.1": "93.184.216.34", "::1": "93.184.216.34", "*.0.0.1": "93.184.216.34"})
    assert mapping.lookup("127.0.0.1", 80) is None
    assert mapping.lookup("[::1]", 80) is None and mapping.lookup("::1", 80) is None


@pytest.mark.parametrize(
    "key, value, bad",
    [
        ("news.example.com:443", "127.0.0.1:99999", "99999"),
        ("news.example.com:443", "127.0.0.1:0", "'0'"),
        ("news.example.com:443", "127.0.0.1:http", "'http'"),
        ("news.example.com:443", "[::1]:70000", "70000"),
        ("news.example.com:99999", "127.0.0.1:8443", "99999"),
        ("news.example.com:", "127.0.0.1:8443", "''"),
    ],
)
def test_connect_to_ports_outside_1_to_65535_are_refused_naming_the_entry(key, value, bad):
    """A port Python's socket cannot take (99999 gave an ExceptionGroup of OverflowErrors in fetch) fails at once."""
    with pytest.raises(ValueError, match="connect_to entry") as caught:
        ConnectTo({key: value})
    message = str(caught.value)
    assert repr(key) in message and repr(value) in message and bad in message and "1 to 65535" in message


def _get(transport: SafeTransport, url: str, **headers: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
            return await client.get(url, headers=headers)

    return asyncio.run(go())


def test_transport_keeps_url_and_host_header_and_checks_literals():
    with HostileServer() as server:
        transport = SafeTransport({"news.example.com": f"127.0.0.1:{server.port}"})
        response = _get(transport, "http://news.example.com/article?id=1")
        assert response.status_code == 200
        assert b"news.example.com/article?id=1" in response.content  # the server saw the original Host and path
        assert server.hits[("news.example.com", "/article?id=1")] == 1
        with pytest.raises(BlockedAddressError, match="loopback"):
            _get(SafeTransport({"news.example.com": f"127.0.0.1:{server.port}"}), f"http://127.0.0.1:{server.port}/")
        with pytest.raises(BlockedAddressError, match="loopback"):
            _get(SafeTransport(), f"http://localhost:{server.port}/")
        assert _get(SafeTransport(allow_private_addresses=True), f"http://localhost:{server.port}/").status_code == 200
        # a host:port key applies to that port: the request's own port is what is looked up
        by_port = SafeTransport({"news.example.com:80": f"127.0.0.1:{server.port}"})
        assert _get(by_port, "http://news.example.com/by-port").status_code == 200
