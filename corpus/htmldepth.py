"""Pages nested deeper than the HTML parser goes: libxml2 (under lxml, trafilatura and newspaper4k) stops parsing at
256 levels of elements ("Excessive depth in document"), so the whole text of such a page is lost and it would read
as empty. `too_deep` tells that case apart, so it is recorded under its own outcome instead."""

from __future__ import annotations

MAX_PARSED_DEPTH = 256  # libxml2's limit without XML_PARSE_HUGE (2048 with it: not enough for such pages either)


def too_deep(html: str) -> str | None:
    """Why the parser cannot read all of `html` because of its nesting depth, or None when depth is not the problem."""
    from lxml import html as lxml_html

    parser = lxml_html.HTMLParser()
    try:
        lxml_html.document_fromstring(html, parser=parser)
    except Exception:  # noqa: BLE001 - a page lxml cannot parse at all is not a depth problem
        return None
    for entry in parser.error_log:
        if "Excessive depth" in entry.message:
            return (
                f"elements nested deeper than {MAX_PARSED_DEPTH} levels (line {entry.line}): the HTML parser "
                f"stops there, so the page's text cannot be extracted"
            )
    return None
