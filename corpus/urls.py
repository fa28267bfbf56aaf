"""URL canonicalization, registered domains and the link blocklists used by link harvesting.

Two submissions count as the same link when their canonical URLs are equal, so karma is summed over
`http://www.Example.com:80/a/?utm_source=x#top` and `http://example.com/a` alike.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

import httpx
import tldextract

# Query parameters that only track the click and never select content.
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "mkt_tok",
        "ref_src",
        "ref_url",
        "spm",
        "wt.mc_id",
        "trk",
        "cmpid",
        "ocid",
        "s_cid",
        "__twitter_impression",
    }
)
TRACKING_PREFIXES: tuple[str, ...] = ("utm_", "pk_", "hsa_")

# Hosts of Reddit itself: links there are not outbound (WebText kept outbound links only).
REDDIT_DOMAINS: frozenset[str] = frozenset(
    {
        "reddit.com",
        "redd.it",
        "redditmedia.com",
        "reddituploads.com",
        "redditstatic.com",
        "reddit.app.link",
    }
)

# Media and link hosts whose pages hold little or no text: images, video, audio, social networks, shorteners.
# A host is blocked when it equals an entry or is a subdomain of one. News sites, blogs, google.com, github.com and
# ebay.com are deliberately absent: they are among WebText's top domains (openai/gpt-2 domains.txt).
# wikipedia.org is absent too: the corpus flow removes Wikipedia in its own stage.
DOMAIN_BLOCKLIST: frozenset[str] = frozenset(
    {
        # images
        "imgur.com",
        "gfycat.com",
        "giphy.com",
        "redgifs.com",
        "flickr.com",
        "flic.kr",
        "gyazo.com",
        "imgflip.com",
        "tinypic.com",
        "photobucket.com",
        "twimg.com",
        "instagram.com",
        "pinterest.com",
        "deviantart.com",
        "sli.mg",
        "imageshack.us",
        "postimg.cc",
        "ibb.co",
        "prnt.sc",
        "lightshot.com",
        "500px.com",
        "9gag.com",
        # video and streaming
        "youtube.com",
        "youtu.be",
        "youtube-nocookie.com",
        "vimeo.com",
        "twitch.tv",
        "streamable.com",
        "dailymotion.com",
        "liveleak.com",
        "vid.me",
        "vine.co",
        "tiktok.com",
        "video.google.com",
        "rumble.com",
        "bitchute.com",
        "kick.com",
        # audio
        "soundcloud.com",
        "bandcamp.com",
        "spotify.com",
        "mixcloud.com",
        "music.apple.com",
        "itunes.apple.com",
        "podcasts.apple.com",
        "deezer.com",
        # social networks and chat
        "facebook.com",
        "fb.com",
        "fb.me",
        "twitter.com",
        "x.com",
        "discord.gg",
        "discord.com",
        "discordapp.com",
        "snapchat.com",
        "linkedin.com",
        "tumblr.com",
        "t.me",
        "telegram.me",
        "strawpoll.me",
        # link shorteners
        "t.co",
        "bit.ly",
        "goo.gl",
        "tinyurl.com",
        "ow.ly",
        "is.gd",
        "buff.ly",
        "dlvr.it",
        "tiny.cc",
        "lnkd.in",
        "amzn.to",
        "trib.al",
        "shorturl.at",
        "cutt.ly",
        "rebrand.ly",
        # adult media hosts (NSFW submissions are dropped separately; these hosts are media whatever the flag says)
        "pornhub.com",
        "xvideos.com",
        "xhamster.com",
        "erome.com",
        "xnxx.com",
        "onlyfans.com",
    }
)

# File extensions (lower case, matched at the end of the URL path) of media, archives, executables, office files
# and PDFs: not HTML pages.
EXTENSION_BLOCKLIST: frozenset[str] = frozenset(
    {
        # images
        ".jpg",
        ".jpeg",
        ".png",
        ".gif",
        ".gifv",
        ".webp",
        ".bmp",
        ".tif",
        ".tiff",
        ".svg",
        ".ico",
        ".heic",
        ".avif",
        # video
        ".mp4",
        ".webm",
        ".mov",
        ".avi",
        ".mkv",
        ".flv",
        ".wmv",
        ".m4v",
        ".mpg",
        ".mpeg",
        ".3gp",
        ".swf",
        # audio
        ".mp3",
        ".wav",
        ".ogg",
        ".oga",
        ".flac",
        ".m4a",
        ".aac",
        ".wma",
        ".opus",
        ".mid",
        ".midi",
        # archives and disk images
        ".zip",
        ".rar",
        ".7z",
        ".tar",
        ".gz",
        ".tgz",
        ".bz2",
        ".xz",
        ".zst",
        ".iso",
        ".dmg",
        ".torrent",
        # executables and packages
        ".exe",
        ".msi",
        ".apk",
        ".deb",
        ".rpm",
        ".bin",
        ".jar",
        ".dll",
        ".bat",
        ".sh",
        ".appimage",
        # office documents and PDF
        ".pdf",
        ".doc",
        ".docx",
        ".xls",
        ".xlsx",
        ".ppt",
        ".pptx",
        ".odt",
        ".ods",
        ".odp",
        ".rtf",
        ".epub",
        ".mobi",
    }
)

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PERCENT_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters a canonical path or query keeps as they are (RFC 3986 pchar and query); every other one is
# percent-encoded as UTF-8, also the `|`, `^`, `\\` and `[ ]` that httpx sends raw (servers read them as their escapes).
_PATH_KEPT = _UNRESERVED | frozenset("!$&'()*+,;=:@/%")
_QUERY_KEPT = _PATH_KEPT | frozenset("?")
_ALREADY_CANONICAL = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*")  # no escape and nothing to encode: most URLs
_HOST_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
# The suffix list bundled with tldextract: never fetched at run time.
_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

# Bump when canonicalize_url gives a different key for some URL: link harvesting keys its output by it, so a changed
# form must redo the links stage (and the stages after it) of an existing build. 2: IDNA 2008 hosts, dot-segments,
# percent-encoding as httpx sends it.
CANONICAL_FORM = 2


def _normalize_escapes(part: str, kept: frozenset[str]) -> str:
    """Upper-case percent escapes, decode those of unreserved characters (RFC 3986 6.2.2.1/6.2.2.2), and
    percent-encode (UTF-8) every character outside `kept`, a `%` that starts no escape included."""
    if _ALREADY_CANONICAL.fullmatch(part):
        return part
    out: list[str] = []
    i = 0
    while i < len(part):
        char = part[i]
        if char == "%" and _PERCENT_ESCAPE.match(part, i):
            decoded = chr(int(part[i + 1 : i + 3], 16))
            out.append(decoded if decoded in _UNRESERVED else part[i : i + 3].upper())
            i += 3
            continue
        out.append(char if char in kept and char != "%" else "".join(f"%{b:02X}" for b in char.encode("utf-8")))
        i += 1
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4: `/a/./b/../c` -> `/a/c`; `..` never climbs above the root."""
    if "/." not in path:
        return path
    segments = path.split("/")
    kept: list[str] = []
    for segment in segments[1:]:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):
        kept.append("")  # `/a/b/..` names the folder `/a/`
    return "/" + "/".join(kept)


def _canonical_host(raw_host: str, url: str) -> str:
    """The host as httpx sends it (IDNA 2008 A-labels, lower case), without a trailing dot or a leading `www.`."""
    host = raw_host.rstrip(".")
    if not host:
        raise ValueError(f"no host in URL {url!r}")
    if ":" in host:
        return "[" + str(ipaddress.IPv6Address(host.strip("[]"))) + "]"
    if not all(_HOST_LABEL.match(label) for label in host.split(".")):
        raise ValueError(f"invalid host {host!r} in URL {url!r}")
    if host.startswith("www.") and host.count(".") >= 2:
        host = host[4:]
    return host


def is_tracking_param(name: str) -> bool:
    name = name.lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def canonicalize_url(url: str) -> str:
    """Return the canonical form of an http(s) URL, or raise ValueError naming the problem.

    Two URLs that httpx sends as the same request (after RFC 3986 normalization: escape case, escapes of unreserved
    characters, dot-segments, the IDNA 2008 form of the host) get the same key, and different requests never share
    one, except for these documented choices: userinfo, default ports, a leading `www.`, the fragment, tracking
    parameters (`utm_*`, `fbclid`, `gclid`, ...), a trailing slash and whitespace around the URL are dropped, the
    query is sorted, a `%` that starts no escape is encoded (httpx sends it raw), and the `&amp;` escaping found in
    older Pushshift dumps is undone.
    """
    text = url.strip().replace("&amp;", "&")
    return _canonical(_plain_parts(text) or _httpx_parts(text, url), url)


def canonical_or_none(url: str | None) -> str | None:
    """`canonicalize_url(url)`, or None where it raises (no http(s) URL, an invalid host or port) or there is no URL."""
    try:
        return canonicalize_url(url or "")
    except ValueError:
        return None


# (scheme, host, port, path, query) of the request httpx sends for a URL
_RequestParts = tuple[str, str, "int | None", str, str]

# An ASCII URL with a plain host name and nothing in path or query that httpx encodes: httpx's parse of it is a
# split, done here by one regex, three times faster (the links stage canonicalizes every submission).
_PLAIN_URL = re.compile(
    r"(?i:(https?))://([A-Za-z0-9.-]*[A-Za-z][A-Za-z0-9.-]*)(?::([0-9]{1,5}))?"
    r"(/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*)?(?:\?([A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*))?(?:#.*)?"
)


def _plain_parts(text: str) -> _RequestParts | None:
    plain = _PLAIN_URL.fullmatch(text)
    if plain is None:
        return None
    scheme, host, port, path, query = plain.groups()
    return scheme.lower(), host.lower(), int(port) if port else None, path or "/", query or ""


def _httpx_parts(text: str, url: str) -> _RequestParts:
    try:
        parsed = httpx.URL(text)  # the parser of the client that fetches: hosts, dot-segments and quoting as it sends
    except httpx.InvalidURL as error:
        raise ValueError(f"invalid URL {url!r}: {error}") from error
    path, _, query = parsed.raw_path.decode("ascii").partition("?")
    return parsed.scheme, parsed.raw_host.decode("ascii"), parsed.port, path, query


def _canonical(parts: _RequestParts, url: str) -> str:
    scheme, raw_host, port, raw_path, raw_query = parts
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = _canonical_host(raw_host, url)
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"invalid port {port} in {url!r}")
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    # Decoding `%2E` can make new dot-segments, so they are removed after the escapes are normalized.
    path = _remove_dot_segments(_normalize_escapes(raw_path, _PATH_KEPT) or "/")
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    pairs = [_normalize_escapes(p, _QUERY_KEPT) for p in raw_query.split("&") if p]
    query = "&".join(sorted(p for p in pairs if not is_tracking_param(p.split("=", 1)[0])))
    return urlunsplit((scheme, netloc, path, query, ""))


@lru_cache(maxsize=1 << 16)
def registered_domain(host: str) -> str:
    """The domain under its public suffix (`news.bbc.co.uk` -> `bbc.co.uk`); the host itself for IPs and unknowns."""
    host = host.lower().strip("[]").rstrip(".")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    return _TLD(host).top_domain_under_public_suffix or host


def url_host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _host_in(host: str, domains: frozenset[str]) -> bool:
    labels = host.split(".")
    return any(".".join(labels[i:]) in domains for i in range(len(labels)))


def is_reddit_url(url: str) -> bool:
    """True for links to Reddit itself, including the site-relative `/r/...` links of old dumps."""
    if url.startswith(("/r/", "/u/", "/user/")):
        return True
    return _host_in(url_host(url), REDDIT_DOMAINS)


def is_blocked_domain(host: str, blocklist: frozenset[str] = DOMAIN_BLOCKLIST) -> bool:
    return _host_in(host.lower(), blocklist)


def has_blocked_extension(url: str, blocklist: frozenset[str] = EXTENSION_BLOCKLIST) -> bool:
    path = urlsplit(url).path.lower().rstrip("/")
    dot = path.rfind(".")
    return dot > path.rfind("/") and path[dot:] in blocklist
