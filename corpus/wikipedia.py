"""Wikipedia removal: GPT-2 removed Wikipedia from WebText because it is common in evaluation data.

A document is removed when its final URL (after redirects) or the link URL it was fetched for is on wikipedia.org in
any language or mobile variant (en.wikipedia.org, en.m.wikipedia.org, wikipedia.org), or on a known Wikipedia mirror
in `WIKIPEDIA_MIRRORS`: sites that republish Wikipedia articles wholesale, listed on Wikipedia's own
"Mirrors and forks" pages and seen in Reddit link dumps.
"""

from __future__ import annotations

from urllib.parse import urlsplit

WIKIPEDIA_MIRRORS: frozenset[str] = frozenset(
    {
        "wikiwand.com",  # re-skinned Wikipedia reader
        "wikizero.com",
        "wiki2.org",
        "wikimili.com",
        "wikiless.org",  # privacy front-end
        "infogalactic.com",  # 2016 fork
        "everybodywiki.com",
        "dbpedia.org",
        "thefreedictionary.com",  # encyclopedia.thefreedictionary.com republishes articles
        "en-academic.com",
        "enacademic.com",
        "wikiredia.com",
        "justapedia.org",
        "wikidata.org",
    }
)


def _host(url: str | None) -> str:
    if not url:
        return ""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    return host


def _on(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def is_wikipedia_host(host: str) -> bool:
    """True for wikipedia.org and every language/mobile subdomain, and for the listed mirrors."""
    host = host.lower().rstrip(".")
    return _on(host, "wikipedia.org") or any(_on(host, mirror) for mirror in WIKIPEDIA_MIRRORS)


def is_wikipedia(*urls: str | None) -> bool:
    """True when any of the URLs (final URL, link URL) is on Wikipedia or a known mirror."""
    return any(is_wikipedia_host(_host(url)) for url in urls if url)
