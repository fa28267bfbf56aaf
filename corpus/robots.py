"""robots.txt as RFC 9309 reads it, on top of protego (the Scrapy project's parser, which does longest match,
`*` and `$`, and percent-encoding comparison).

What this module adds, where protego departs from the RFC or from Google's reference parser (google/robotstxt):
bytes in, so a UTF-8 byte-order mark and bytes that are not UTF-8 cannot hide the first line or collide as U+FFFD
(`%aa` and `%AB` are different octets); the 500 KiB parse limit and Google's line-length limit; user-agent lines
matched by product token (`User-agent: FOO BAR` names `FOO`, case-insensitively, never a substring), every group
naming our token merged, the `*` groups only when none does; and what the HTTP status of robots.txt means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from protego import Protego

# RFC 9309 2.5: parse at least the first 500 KiB; what follows is ignored.
PARSE_LIMIT = 500 * 1024
# Google's parser keeps at most this much of one line (8 times the longest URL a browser once took), so a rule
# longer than that is its prefix.
_MAX_LINE = 2083 * 8 - 1
_BOM = b"\xef\xbb\xbf"
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_PRODUCT_TOKEN = re.compile(r"[A-Za-z_-]+")
_TOKEN_PREFIX = re.compile(rb"[A-Za-z_-]+")
_ESCAPES = re.compile(rb"(?:%[0-9A-Fa-f]{2})+")

# Directive names as written in the wild (the spellings protego accepts).
_USER_AGENT = {"user-agent", "useragent", "user agent"}
_ALLOW = {"allow"}
_DISALLOW = {"disallow", "dissallow", "dissalow", "disalow", "diasllow", "disallaw"}
_CRAWL_DELAY = {"crawl-delay", "crawl delay"}


def product_token(user_agent: str) -> str | None:
    """The name robots.txt groups are matched against: `WebTextBot/0.1 (+contact)` -> `WebTextBot`.

    None when the User-Agent does not start with a valid token (letters, `_` and `-`, RFC 9309 2.2.1): then only
    the `*` groups apply to it."""
    product = user_agent.strip().split("/", 1)[0]
    return product if _PRODUCT_TOKEN.fullmatch(product) else None


def _octets(text: bytes) -> str:
    """`text` as ASCII: other octets percent-encoded, escapes upper-cased, and escapes that are not part of a UTF-8
    sequence escaped once more (`%AA` -> `%25AA`) so that protego, which decodes escapes to compare them, keeps them
    apart instead of turning them all into U+FFFD."""

    def fix_run(match: re.Match[bytes]) -> bytes:
        octets = bytes.fromhex(match.group(0).replace(b"%", b"").decode("ascii"))
        out = []
        for char in octets.decode("utf-8", "surrogateescape"):
            if "\udc80" <= char <= "\udcff":
                out.append(b"%%25%02X" % (ord(char) - 0xDC00))
            else:
                out.append(b"".join(b"%%%02X" % byte for byte in char.encode("utf-8")))
        return b"".join(out)

    raw = b"".join(bytes([b]) if b < 0x80 else b"%%%02X" % b for b in text) if not text.isascii() else text
    return _ESCAPES.sub(fix_run, raw).decode("ascii")


def _directive(line: bytes) -> tuple[str, bytes] | None:
    """(lower-cased name, value) of a robots.txt line, comment removed; None for a line that is not one."""
    line = line.split(b"#", 1)[0].strip()
    if b":" in line:
        name, value = line.split(b":", 1)
    else:  # `Disallow /x`: a missing colon is read as one when the line is exactly two words (as Google does)
        words = line.split()
        if len(words) != 2:
            return None
        name, value = words
    return name.strip().lower().decode("ascii", "replace"), value.strip()


def _agent_name(value: bytes) -> str | None:
    """`*`, or the product token at the start of a user-agent line's value (`FOO BAR`, `Foo/1.2` -> `foo`)."""
    if value == b"*" or value.startswith((b"* ", b"*\t")):
        return "*"
    token = _TOKEN_PREFIX.match(value)
    return token.group(0).decode("ascii").lower() if token else None


def _path_of(url: str) -> str:
    """Path and query of a URL (or of a bare path), without the fragment: what rules are matched against."""
    text = url.split("#", 1)[0]
    if "://" in text:
        text, has_authority = text.split("://", 1)[1], True
    elif text.startswith("//"):
        text, has_authority = text[2:], True
    else:
        has_authority = not text.startswith("/")
    if has_authority:
        end = min([i for i in (text.find("/"), text.find("?")) if i >= 0], default=len(text))
        text = text[end:]
    return text if text.startswith("/") else "/" + text


def _protego_text(robots_txt: bytes, token: str | None) -> str:
    """The robots.txt rewritten for protego: only the lines that matter to `token`, in a form it reads as RFC 9309
    does. User-agent lines keep our token or `*` and are emptied otherwise (an empty one still separates groups)."""
    body = robots_txt[:PARSE_LIMIT]
    if len(robots_txt) > PARSE_LIMIT:  # a rule cut in two would be another rule: drop the partial last line
        body = body[: max(body.rfind(b"\n"), body.rfind(b"\r")) + 1]
    for size in (3, 2, 1):  # a byte-order mark, even a partial one, is not part of the first line
        if body.startswith(_BOM[:size]):
            body = body[size:]
            break
    ours = token.lower() if token else None
    out: list[str] = []
    delays: list[str] = []  # Crawl-delay inside a run of user-agent lines: protego would end the group there
    in_agents = False
    for raw in _LINE_BREAK.split(body):
        parsed = _directive(raw[:_MAX_LINE])
        if parsed is None:
            continue
        name, value = parsed
        if name in _USER_AGENT:
            agent = _agent_name(value)
            out.append("user-agent: " + (agent if agent == "*" or (agent and agent == ours) else ""))
            in_agents = True
        elif name in _ALLOW or name in _DISALLOW:
            out += delays
            delays, in_agents = [], False
            out.append(("allow: " if name in _ALLOW else "disallow: ") + _octets(value))
        elif name in _CRAWL_DELAY:
            line = "crawl-delay: " + value.decode("ascii", "replace")
            (delays if in_agents else out).append(line)
    return "\n".join(out + delays) + "\n"


@dataclass(frozen=True)
class RobotsRules:
    """What one robots.txt says to one crawler. Build with `parse`, `allow_all` or `disallow_all`."""

    _parser: Protego | None = None
    _agent: str = "*"
    _everything: bool = True  # the answer when there is no parser
    crawl_delay: float | None = None  # seconds, from the group that applies to us
    reason: str | None = None  # why nothing or everything is allowed, for the fetch log

    @classmethod
    def parse(cls, robots_txt: bytes, user_agent: str) -> RobotsRules:
        if not isinstance(robots_txt, (bytes, bytearray)):  # its octets matter: a decoded text has lost them
            raise TypeError(f"robots_txt must be the bytes of a robots.txt file, got {type(robots_txt).__name__}")
        token = product_token(user_agent)
        parser = Protego.parse(_protego_text(robots_txt, token))
        agent = token.lower() if token else "*"
        return cls(parser, agent, crawl_delay=parser.crawl_delay(agent))

    @classmethod
    def allow_all(cls, reason: str) -> RobotsRules:
        return cls(reason=reason)

    @classmethod
    def disallow_all(cls, reason: str) -> RobotsRules:
        return cls(_everything=False, reason=reason)

    def allowed(self, url: str) -> bool:
        if self._parser is None:
            return self._everything
        # A path escaped the way rules are (protego reads `//x` after no authority as a host: give it one).
        return self._parser.can_fetch("http://robots.invalid" + _octets(_path_of(url).encode("utf-8")), self._agent)


def robots_allowed(robots_txt: bytes, user_agent: str, url: str) -> bool:
    """Whether a robots.txt served with status 200 lets `user_agent` (a User-Agent header, or just its product
    token) fetch `url`: the decision the crawler makes (RFC 9309)."""
    return RobotsRules.parse(robots_txt, user_agent).allowed(url)
