"""HTML templates of the mini web: a news site, a blog, a forum, a documentation site and Wikipedia (desktop and
mobile), each wrapping the article in the boilerplate real pages carry (cookie banners, navigation, sidebars,
share buttons, comment sections, footers) so that extraction has real work to do.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from infra.miniweb.prose import Block

SiteKind = Literal["news", "blog", "forum", "docs", "wikipedia", "wikipedia-mobile"]


@dataclass(frozen=True)
class Site:
    host: str
    kind: SiteKind
    name: str
    tagline: str
    sections: tuple[str, ...]
    robots_txt: str | None = None  # None: the site has no robots.txt (404)


@dataclass
class Article:
    """One page's content: the article itself and the page furniture that varies per page."""

    url: str
    path: str
    title: str
    blocks: tuple[Block, ...]
    author: str
    published: int  # unix seconds
    section: str
    related: list[tuple[str, str]] = field(default_factory=list)  # (title, path) of other pages on the site
    comments: list[tuple[str, str]] = field(default_factory=list)  # (user name, text)
    tags: tuple[str, ...] = ()


# Boilerplate strings, exposed so that tests can check that they appear on pages and not in extracted text.
COOKIE_NOTICE = (
    "We use cookies and similar technologies to improve your experience, measure audiences and show you "
    "personalised content. By clicking Accept all you agree to our use of cookies."
)
NEWSLETTER_PITCH = "Get the best stories of the week in your inbox. Sign up for our free newsletter."
BOILERPLATE_MARKERS = (
    COOKIE_NOTICE,
    NEWSLETTER_PITCH,
    "All rights reserved.",
    "Proudly powered by WordPress",
    "Powered by phpBB",
    "Was this page helpful?",
    "From Wikipedia, the free encyclopedia",
)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _inline(text: str) -> str:
    """Escape a paragraph and render the documentation's **bold** markup as <strong>."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", _esc(text))


def render_blocks(blocks: tuple[Block, ...], heading_tag: str = "h2") -> str:
    out: list[str] = []
    items: list[str] = []
    for block in blocks:
        if block.kind != "item" and items:
            out.append("<ul>\n" + "\n".join(items) + "\n</ul>")
            items = []
        if block.kind == "heading":
            out.append(f"<{heading_tag}>{_esc(block.text)}</{heading_tag}>")
        elif block.kind == "paragraph":
            out.append(f"<p>{_inline(block.text)}</p>")
        elif block.kind == "item":
            items.append(f"<li>{_inline(block.text)}</li>")
        else:
            out.append(f"<pre><code>{_esc(block.text)}</code></pre>")
    if items:
        out.append("<ul>\n" + "\n".join(items) + "\n</ul>")
    return "\n".join(out)


def _date(ts: int, fmt: str) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime(fmt)


def _iso(ts: int) -> str:
    return _date(ts, "%Y-%m-%dT%H:%M:%S+00:00")


def _head(site: Site, a: Article, extra: str = "") -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(a.title)} | {_esc(site.name)}</title>
<meta name="description" content="{_esc(a.title)}: {_esc(site.tagline)}">
<meta name="author" content="{_esc(a.author)}">
<meta property="og:type" content="article">
<meta property="og:title" content="{_esc(a.title)}">
<meta property="og:site_name" content="{_esc(site.name)}">
<meta property="og:url" content="{_esc(a.url)}">
<meta property="article:published_time" content="{_iso(a.published)}">
<link rel="canonical" href="{_esc(a.url)}">
<link rel="stylesheet" href="/static/css/main.css">
<script>window.dataLayer = window.dataLayer || []; dataLayer.push({{"pageType": "article", "section": "{_esc(a.section)}"}});</script>
{extra}</head>
"""


def _cookie_banner(site: Site) -> str:
    return f"""<div id="cookie-consent" class="cookie-banner" role="dialog" aria-label="Cookie consent">
<p>{COOKIE_NOTICE} <a href="/privacy#cookies">Read our cookie policy</a>.</p>
<button class="btn-accept">Accept all</button> <button class="btn-settings">Manage preferences</button>
</div>
"""


def _nav(site: Site, cls: str) -> str:
    links = "\n".join(f'<li><a href="/{s.lower().replace(" ", "-")}/">{_esc(s)}</a></li>' for s in site.sections)
    return f'<nav class="{cls}" aria-label="Main">\n<ul>\n<li><a href="/">Home</a></li>\n{links}\n</ul>\n</nav>\n'


def _related(a: Article, cls: str, heading: str) -> str:
    items = "\n".join(f'<li><a href="{_esc(path)}">{_esc(title)}</a></li>' for title, path in a.related)
    return f'<section class="{cls}">\n<h3>{heading}</h3>\n<ol>\n{items}\n</ol>\n</section>\n'


def _comments(a: Article, closed_note: str = "Comments are closed.") -> str:
    if not a.comments:
        return f'<section id="comments" class="comments"><p class="no-comments">{closed_note}</p></section>\n'
    items = "\n".join(
        f'<li class="comment" id="comment-{i + 1}">\n<div class="comment-meta"><span class="comment-author">'
        f'{_esc(user)}</span> <span class="comment-date">{i + 2} hours ago</span></div>\n'
        f'<div class="comment-body"><p>{_esc(text)}</p></div>\n<a class="reply" href="#respond">Reply</a>\n</li>'
        for i, (user, text) in enumerate(a.comments)
    )
    return f"""<section id="comments" class="comments">
<h3 class="comments-title">{len(a.comments)} comments</h3>
<ol class="comment-list">
{items}
</ol>
<div id="respond"><h3>Leave a reply</h3><form class="comment-form"><textarea name="comment"></textarea>
<button type="submit">Post comment</button></form><p class="note">Your email address will not be published.</p></div>
</section>
"""


def render_news(site: Site, a: Article) -> str:
    tags = ", ".join(f'<a href="/tag/{t}/">{_esc(t)}</a>' for t in a.tags)
    return (
        _head(site, a)
        + '<body class="article-page">\n'
        + _cookie_banner(site)
        + f"""<header class="site-header">
<a class="logo" href="/">{_esc(site.name)}</a>
<form class="search" action="/search"><input name="q" placeholder="Search"><button>Search</button></form>
<a class="subscribe" href="/subscribe">Subscribe</a> <a class="login" href="/login">Sign in</a>
"""
        + _nav(site, "main-nav")
        + """</header>
<div class="ticker"><strong>Trending:</strong> <a href="/markets/">Markets</a> | <a href="/weather/">Weather</a> | <a href="/podcasts/">Podcasts</a></div>
<main class="layout">
<article class="story">
<header class="story-header">
"""
        + f"""<p class="kicker"><a href="/{a.section.lower()}/">{_esc(a.section)}</a></p>
<h1 class="headline">{_esc(a.title)}</h1>
<p class="byline">By <a rel="author" href="/staff/{a.author.lower().replace(" ", "-")}/">{_esc(a.author)}</a>
<time datetime="{_iso(a.published)}">{_date(a.published, "%B %d, %Y %H:%M UTC")}</time></p>
</header>
<div class="story-body">
{render_blocks(a.blocks)}
</div>
<div class="share-tools">Share this story: <a href="#share-facebook">Facebook</a> <a href="#share-twitter">Twitter</a> <a href="#share-email">Email</a></div>
<p class="tags">Topics: {tags}</p>
</article>
"""
        + _comments(a)
        + '<aside class="sidebar">\n'
        + _related(a, "most-read", "Most read")
        + f"""<div class="ad-slot" data-ad="sidebar-1">Advertisement</div>
<div class="newsletter"><p>{NEWSLETTER_PITCH}</p><form><input type="email" placeholder="Your email"><button>Sign up</button></form></div>
</aside>
</main>
<footer class="site-footer">
<nav><a href="/about/">About us</a> | <a href="/contact/">Contact</a> | <a href="/careers/">Careers</a> | <a href="/privacy/">Privacy policy</a> | <a href="/terms/">Terms of use</a></nav>
<p>&copy; {_date(a.published, "%Y")} {_esc(site.name)}. All rights reserved.</p>
</footer>
</body>
</html>
"""
    )


def render_blog(site: Site, a: Article) -> str:
    months = sorted({_date(a.published - d * 2_600_000, "%Y/%m|%B %Y") for d in range(6)}, reverse=True)
    archives = "\n".join(f'<li><a href="/{m.split("|")[0]}/">{m.split("|")[1]}</a></li>' for m in months)
    tags = ", ".join(f'<a href="/tag/{t}/" rel="tag">{_esc(t)}</a>' for t in a.tags)
    return (
        _head(site, a, '<link rel="alternate" type="application/rss+xml" href="/feed/">\n')
        + '<body class="post-template-default single single-post">\n<div id="page" class="site">\n'
        + '<a class="skip-link screen-reader-text" href="#content">Skip to content</a>\n'
        + f"""<header id="masthead" class="site-header">
<p class="site-title"><a href="/" rel="home">{_esc(site.name)}</a></p>
<p class="site-description">{_esc(site.tagline)}</p>
"""
        + _nav(site, "main-navigation")
        + f"""</header>
<div id="content" class="site-content">
<div id="primary" class="content-area">
<article class="post type-post status-publish hentry">
<header class="entry-header">
<h1 class="entry-title">{_esc(a.title)}</h1>
<div class="entry-meta">Posted on <time class="entry-date published" datetime="{_iso(a.published)}">{_date(a.published, "%B %d, %Y")}</time> by <span class="author vcard">{_esc(a.author)}</span></div>
</header>
<div class="entry-content">
{render_blocks(a.blocks)}
</div>
<footer class="entry-footer">Posted in <a href="/category/{a.section.lower()}/" rel="category">{_esc(a.section)}</a> | Tagged {tags}</footer>
</article>
<nav class="post-navigation"><div class="nav-previous"><a href="/" rel="prev">&larr; Previous post</a></div><div class="nav-next"><a href="/" rel="next">Next post &rarr;</a></div></nav>
"""
        + _comments(a)
        + '</div>\n<aside id="secondary" class="widget-area">\n'
        + '<section class="widget widget_search"><form role="search" action="/"><input name="s" placeholder="Search &hellip;"></form></section>\n'
        + _related(a, "widget widget_recent_entries", "Recent Posts")
        + f'<section class="widget widget_archive"><h3>Archives</h3><ul>\n{archives}\n</ul></section>\n'
        + '<section class="widget widget_meta"><h3>Meta</h3><ul><li><a href="/wp-login.php">Log in</a></li><li><a href="/feed/">Entries feed</a></li></ul></section>\n'
        + f"""</aside>
</div>
<footer id="colophon" class="site-footer">
<div class="site-info">&copy; {_date(a.published, "%Y")} {_esc(site.name)} | Proudly powered by WordPress | Theme: Twenty Seventeen</div>
</footer>
</div>
<div class="gdpr-notice">{COOKIE_NOTICE} <a href="/privacy/">Privacy policy</a> <button>OK</button></div>
</body>
</html>
"""
    )


def render_forum(site: Site, a: Article) -> str:
    def post(user: str, body: str, n: int, joined: str) -> str:
        return f"""<div class="post" id="p{n}">
<div class="postprofile"><strong class="username">{_esc(user)}</strong><br>Posts: {17 * n + 42}<br>Joined: {joined}</div>
<div class="postbody"><p class="author">Post by {_esc(user)} &raquo; {_date(a.published + 3600 * n, "%a %b %d, %Y %I:%M %p")}</p>
<div class="content">{body}</div>
<ul class="post-buttons"><li><a href="#quote{n}">Quote</a></li><li><a href="#report{n}">Report</a></li></ul></div>
</div>
"""

    replies = "".join(
        post(user, f"<p>{_esc(text)}</p>", i + 2, "Mar 2016") for i, (user, text) in enumerate(a.comments)
    )
    return (
        _head(site, a)
        + '<body id="phpbb" class="section-viewtopic">\n<div id="wrap">\n'
        + f"""<div class="headerbar"><a href="/" class="logo">{_esc(site.name)}</a><p class="site-description">{_esc(site.tagline)}</p></div>
<nav class="navbar"><ul><li><a href="/faq">FAQ</a></li><li><a href="/register">Register</a></li><li><a href="/login">Login</a></li></ul>
<p class="breadcrumbs"><a href="/">Board index</a> &lsaquo; <a href="/f/{a.section.lower()}">{_esc(a.section)}</a></p></nav>
<div id="page-body">
<h2 class="topic-title"><a href="{_esc(a.path)}">{_esc(a.title)}</a></h2>
<div class="action-bar"><a class="button" href="#reply">Post Reply</a> <span class="pagination">{len(a.comments) + 1} posts &bull; Page 1 of 1</span></div>
"""
        + post(a.author, render_blocks(a.blocks, "h3"), 1, "Jan 2015")
        + replies
        + """<div class="action-bar"><a class="button" href="#reply">Post Reply</a></div>
"""
        + _related(a, "similar-topics", "Similar topics")
        + f"""<div class="online-list"><h3>Who is online</h3><p>Users browsing this forum: no registered users and 3 guests</p></div>
</div>
<div id="page-footer"><p class="copyright">Powered by phpBB&reg; Forum Software &copy; phpBB Limited | {_esc(site.name)}</p>
<p><a href="/privacy">Privacy</a> | <a href="/terms">Terms</a> | All times are UTC</p></div>
<div class="cookie-notice">{COOKIE_NOTICE} <a href="/ucp.php?mode=privacy">Details</a> <button>Accept</button></div>
</div>
</body>
</html>
"""
    )


def render_docs(site: Site, a: Article) -> str:
    toc = "\n".join(
        f'<li class="toctree-l1"><a class="reference internal" href="{_esc(path)}">{_esc(title)}</a></li>'
        for title, path in a.related
    )
    return (
        _head(site, a)
        + '<body class="wy-body-for-nav">\n'
        + _cookie_banner(site)
        + '<div class="wy-grid-for-nav">\n'
        + f"""<nav class="wy-nav-side"><div class="wy-side-nav-search"><a href="/" class="icon icon-home">{_esc(site.name)}</a>
<div class="version">3.6</div><form id="rtd-search-form" action="/search.html"><input name="q" placeholder="Search docs"></form></div>
<div class="wy-menu wy-menu-vertical" role="navigation"><p class="caption">Contents</p><ul>
{toc}
</ul></div></nav>
<section class="wy-nav-content-wrap"><div class="wy-nav-content"><div class="rst-content">
<div role="navigation" aria-label="breadcrumbs navigation"><ul class="wy-breadcrumbs"><li><a href="/">Docs</a> &raquo;</li>
<li><a href="/{a.section.lower()}/">{_esc(a.section)}</a> &raquo;</li><li>{_esc(a.title)}</li>
<li class="wy-breadcrumbs-aside"><a href="/_sources{_esc(a.path)}.txt" rel="nofollow">View page source</a></li></ul><hr></div>
<div role="main" class="document"><div class="section" id="main-section">
<h1>{_esc(a.title)}</h1>
{render_blocks(a.blocks)}
</div></div>
<div class="feedback"><p>Was this page helpful? <button>Yes</button> <button>No</button></p></div>
<footer><div class="rst-footer-buttons"><a href="/" class="btn btn-neutral float-left" rel="prev">Previous</a> <a href="/" class="btn btn-neutral float-right" rel="next">Next</a></div>
<hr><div role="contentinfo"><p>&copy; Copyright {_date(a.published, "%Y")}, {_esc(site.name)} contributors. Last updated on {_date(a.published, "%b %d, %Y")}.</p></div>
Built with <a href="/sphinx/">Sphinx</a> using a theme provided by Read the Docs.</footer>
</div></div></section>
</div>
</body>
</html>
"""
    )


def _wiki_body(a: Article) -> str:
    out = []
    for part in render_blocks(a.blocks).split("\n"):
        heading = re.fullmatch(r"<h2>(.*)</h2>", part)
        out.append(
            f'<h2><span class="mw-headline" id="{heading.group(1).replace(" ", "_")}">{heading.group(1)}</span>'
            '<span class="mw-editsection"><span class="mw-editsection-bracket">[</span><a href="#edit">edit</a>'
            '<span class="mw-editsection-bracket">]</span></span></h2>'
            if heading
            else part
        )
    return "\n".join(out)


def _wiki_categories(a: Article) -> str:
    cats = " ".join(f'<li><a href="/wiki/Category:{t.title()}">{_esc(t.title())}</a></li>' for t in a.tags)
    return f'<div id="catlinks" class="catlinks"><a href="/wiki/Help:Category">Categories</a>: <ul>{cats}</ul></div>'


def render_wikipedia(site: Site, a: Article) -> str:
    return f"""<!DOCTYPE html>
<html class="client-nojs" lang="en" dir="ltr">
<head>
<meta charset="UTF-8">
<title>{_esc(a.title)} - Wikipedia</title>
<link rel="canonical" href="{_esc(a.url)}">
<meta property="og:title" content="{_esc(a.title)} - Wikipedia">
<script>document.documentElement.className = "client-js"; RLCONF = {{"wgPageName": "{_esc(a.path.split("/")[-1])}", "wgNamespaceNumber": 0}};</script>
</head>
<body class="mediawiki ltr sitedir-ltr mw-hide-empty-elt ns-0 ns-subject page-{_esc(a.path.split("/")[-1])} skin-vector">
<div id="mw-page-base" class="noprint"></div>
<div id="content" class="mw-body" role="main">
<div id="siteNotice"><div class="sitenotice">Please help improve this encyclopedia: <a href="/wiki/Wikipedia:Contributing">learn how to contribute</a>.</div></div>
<h1 id="firstHeading" class="firstHeading" lang="en">{_esc(a.title)}</h1>
<div id="bodyContent" class="vector-body">
<div id="siteSub" class="noprint">From Wikipedia, the free encyclopedia</div>
<div id="mw-content-text" class="mw-body-content mw-content-ltr" lang="en" dir="ltr"><div class="mw-parser-output">
<div role="note" class="hatnote navigation-not-searchable">For other uses, see <a href="/wiki/{_esc(a.path.split("/")[-1])}_(disambiguation)">{_esc(a.title)} (disambiguation)</a>.</div>
{_wiki_body(a)}
<h2><span class="mw-headline" id="See_also">See also</span></h2>
<ul>{"".join(f'<li><a href="{_esc(p)}">{_esc(t)}</a></li>' for t, p in a.related)}</ul>
<h2><span class="mw-headline" id="References">References</span></h2>
<div class="reflist"><ol class="references"><li id="cite_note-1"><span class="reference-text">The Python Language Reference, Python Software Foundation. Retrieved {_date(a.published, "%d %B %Y")}.</span></li></ol></div>
</div></div>
{_wiki_categories(a)}
</div>
</div>
<div id="mw-navigation"><h2>Navigation menu</h2>
<div id="mw-head"><ul><li><a href="/wiki/Special:CreateAccount">Create account</a></li><li><a href="/wiki/Special:UserLogin">Log in</a></li></ul>
<ul><li class="selected"><a href="{_esc(a.path)}">Article</a></li><li><a href="/wiki/Talk:{_esc(a.path.split("/")[-1])}">Talk</a></li><li><a href="#edit">Edit</a></li><li><a href="#history">View history</a></li></ul></div>
<div id="mw-panel"><div class="portal"><ul><li><a href="/wiki/Main_Page">Main page</a></li><li><a href="/wiki/Portal:Contents">Contents</a></li>
<li><a href="/wiki/Portal:Current_events">Current events</a></li><li><a href="/wiki/Special:Random">Random article</a></li><li><a href="/wiki/Wikipedia:About">About Wikipedia</a></li>
<li><a href="/wiki/Wikipedia:Contact_us">Contact us</a></li><li><a href="/wiki/Special:Donate">Donate</a></li></ul></div></div>
</div>
<div id="footer" role="contentinfo"><ul id="footer-info">
<li id="footer-info-lastmod"> This page was last edited on {_date(a.published, "%d %B %Y, at %H:%M")}&#160;(UTC).</li>
<li id="footer-info-copyright">Text is available under the <a href="/wiki/Wikipedia:Text_of_Creative_Commons_Attribution-ShareAlike_3.0_Unported_License">Creative Commons Attribution-ShareAlike License</a>; additional terms may apply. By using this site, you agree to the <a href="/wiki/Terms_of_Use">Terms of Use</a> and <a href="/wiki/Privacy_policy">Privacy Policy</a>. Wikipedia&#174; is a registered trademark of the Wikimedia Foundation, Inc., a non-profit organization.</li></ul>
<ul id="footer-places"><li><a href="/wiki/Wikipedia:Disclaimers">Disclaimers</a></li><li><a href="//en.m.wikipedia.org{_esc(a.path)}">Mobile view</a></li></ul></div>
</body>
</html>
"""


def render_wikipedia_mobile(site: Site, a: Article) -> str:
    return f"""<!DOCTYPE html>
<html class="client-nojs" lang="en" dir="ltr">
<head>
<meta charset="UTF-8">
<title>{_esc(a.title)} - Wikipedia</title>
<meta name="viewport" content="initial-scale=1.0, user-scalable=yes, minimum-scale=0.25, maximum-scale=5.0, width=device-width">
<link rel="canonical" href="http://en.wikipedia.org{_esc(a.path)}">
</head>
<body class="mediawiki ltr sitedir-ltr mw-hide-empty-elt ns-0 skin-minerva action-view skin--responsive">
<div id="mw-mf-viewport"><div id="mw-mf-page-center">
<header class="header-container header-chrome"><div class="minerva-header"><nav class="navigation-drawer"><a href="/wiki/Main_Page">Home</a> <a href="/wiki/Special:Random">Random</a> <a href="/wiki/Special:Nearby">Nearby</a> <a href="/wiki/Special:UserLogin">Log in</a> <a href="/wiki/Special:MobileOptions">Settings</a> <a href="/wiki/Special:Donate">Donate</a></nav>
<div class="branding-box"><a href="/wiki/Main_Page">Wikipedia</a><sup>The Free Encyclopedia</sup></div>
<form class="minerva-search-form" action="/w/index.php"><input name="search" placeholder="Search Wikipedia"></form></div></header>
<main id="content" class="mw-body">
<div class="pre-content heading-holder"><div class="page-heading"><h1 id="section_0" class="firstHeading mw-first-heading">{_esc(a.title)}</h1></div>
<ul id="page-actions"><li><a href="#languages">Language</a></li><li><a href="#watch">Watch</a></li><li><a href="#edit">Edit</a></li></ul></div>
<div id="bodyContent" class="content"><div id="mw-content-text" class="mw-body-content"><div class="mw-parser-output">
<section class="mf-section-0" id="mf-section-0">
{_wiki_body(a)}
</section>
<h2 class="section-heading collapsible-heading"><span class="mw-headline" id="References">References</span></h2>
<section class="mf-section-1 collapsible-block"><div class="reflist"><ol class="references"><li id="cite_note-1"><span class="reference-text">The Python Language Reference, Python Software Foundation.</span></li></ol></div></section>
</div></div></div>
<div class="post-content"><div class="last-modified-bar"><a href="/wiki/Special:History{_esc(a.path[5:])}">Last edited {(a.published % 11) + 2} days ago by an anonymous user</a></div></div>
</main>
<footer class="mw-footer minerva-footer" role="contentinfo"><div class="footer-info"><h2 class="footer-wordmark">Wikipedia</h2>
<p>Content is available under <a href="/wiki/Wikipedia:CC_BY-SA">CC BY-SA 3.0</a> unless otherwise noted.</p>
<ul class="footer-places"><li><a href="/wiki/Privacy_policy">Privacy policy</a></li><li><a href="/wiki/Terms_of_Use">Terms of Use</a></li><li><a href="//en.wikipedia.org{_esc(a.path)}">Desktop</a></li></ul></div></footer>
</div></div>
</body>
</html>
"""


RENDERERS: dict[SiteKind, Callable[[Site, Article], str]] = {
    "news": render_news,
    "blog": render_blog,
    "forum": render_forum,
    "docs": render_docs,
    "wikipedia": render_wikipedia,
    "wikipedia-mobile": render_wikipedia_mobile,
}


def render_index(site: Site, pages: list[tuple[str, str]]) -> str:
    """A site's home page: its name, navigation and a list of its articles."""
    items = "\n".join(f'<li><a href="{_esc(path)}">{_esc(title)}</a></li>' for title, path in pages)
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{_esc(site.name)}</title></head>
<body>
<header><h1>{_esc(site.name)}</h1><p>{_esc(site.tagline)}</p>
{_nav(site, "main-nav")}</header>
<main><ul class="article-list">
{items}
</ul></main>
<footer><p>{_esc(site.name)}. All rights reserved.</p></footer>
</body>
</html>
"""
