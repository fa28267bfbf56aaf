"""Generate the mini web from a seed: site files, a Reddit dump in the Pushshift .zst format, and the ground truth.

Every link in the dump has a role that says what the pipeline must do with it (keep it, drop it at harvest for low
karma, NSFW, a self post or a media host, fail to fetch it for robots.txt, a timeout, a 503 or a dead host, drop it
as too short, as a duplicate of another page or as Wikipedia). `expectations.json` records, per link, the outcome
each stage must reach and the set of URLs that must end up in the corpus.

The same seed, size and Python version (the prose comes from its bundled documentation) give byte-identical files.

Dead links are a 404 page and a host whose connection is refused. A host that does not resolve is left out on
purpose: resolving it would ask the machine's DNS server, and nothing here may contact anything beyond loopback.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corpus.reddit import write_submissions
from infra.miniweb.prose import Block, Passage, jaccard, load_passages, source_fingerprint
from infra.miniweb.sites import BOILERPLATE_MARKERS, RENDERERS, Article, Site, render_index

GENERATOR_VERSION = 7
MIN_ARTICLES = 16  # enough passages for one link of every role
MIN_KARMA = 3
CUTOFF_UTC = 1514764800  # 2018-01-01, WebText's cut-off
_WINDOW = (1504224000, CUTOFF_UTC - 1)  # submissions from September to December 2017
_AFTER_CUTOFF = (1517443200, 1519862399)  # February 2018
SLOW_PAGE_SECONDS = 120.0  # how long a slow page drips its body; far beyond any sane fetch deadline

SITES: dict[str, Site] = {
    s.host: s
    for s in (
        Site(
            "news.example.com",
            "news",
            "The Daily Ledger",
            "Independent reporting on technology and science",
            ("World", "Technology", "Science", "Business", "Opinion"),
            "User-agent: *\nDisallow: /search\nDisallow: /login\n",
        ),
        Site(
            "blog.example.org",
            "blog",
            "Notes from the Interpreter",
            "Essays on programming languages and tools",
            ("Python", "Tutorials", "Essays", "About"),
        ),
        Site(
            "forum.example.net",
            "forum",
            "Example Programming Forums",
            "Developers helping developers",
            ("Python", "General Discussion", "Help"),
            "User-agent: *\nDisallow: /private/\nDisallow: /ucp.php\n",
        ),
        Site(
            "docs.example.org",
            "docs",
            "Example Language Guide",
            "The community handbook",
            ("Reference", "Tutorial", "Library"),
            "User-agent: *\nAllow: /\nSitemap: http://docs.example.org/sitemap.xml\n",
        ),
        Site(
            "wire.example.net",
            "news",
            "Example Wire",
            "Stories from our partners, syndicated daily",
            ("Top Stories", "Technology", "Science"),
            "User-agent: *\nAllow: /\n",
        ),
        Site(
            "mirror.example.org",
            "news",
            "Tech Mirror",
            "The best of the web, all in one place",
            ("Latest", "Popular"),
            "User-agent: *\nAllow: /\n",
        ),
        Site(
            "en.wikipedia.org",
            "wikipedia",
            "Wikipedia",
            "The Free Encyclopedia",
            (),
            "User-agent: *\nDisallow: /w/\nDisallow: /wiki/Special:\n",
        ),
        Site(
            "en.m.wikipedia.org",
            "wikipedia-mobile",
            "Wikipedia",
            "The Free Encyclopedia",
            (),
            "User-agent: *\nDisallow: /w/\nDisallow: /wiki/Special:\n",
        ),
    )
}
REFUSED_HOST = "shop.example.com"  # routed to a loopback port where nothing listens: connection refused
MEDIA_URLS = (  # link hosts and file types WebText left out; never fetched, so never served
    ("https://i.imgur.com/{id}.jpg", "i.imgur.com"),
    ("https://i.redd.it/{id}.png", "i.redd.it"),
    ("https://www.youtube.com/watch?v={id}", "youtube.com"),
    ("https://v.redd.it/{id}", "v.redd.it"),
    ("https://gfycat.com/{id}", "gfycat.com"),
)
SUBREDDITS = ("programming", "Python", "learnpython", "compsci", "coding", "technology", "AskProgramming")
AUTHORS = (
    "Maria Alvarez",
    "Tom Becker",
    "Priya Natarajan",
    "Kenji Sato",
    "Olivia Brown",
    "Samuel Okafor",
    "Hannah Lindqvist",
    "David Cohen",
    "Ana Ferreira",
    "Lucas Martin",
)
USERS = (
    "throwaway_dev",
    "pyfan88",
    "segfault_sam",
    "null_pointer",
    "lambda_lucy",
    "tabs_not_spaces",
    "old_greybeard",
    "rustacean42",
    "coffee_and_code",
    "the_real_mvp",
)
COMMENTS = (
    "Great write-up, thanks for sharing. I finally understand why my code behaved the way it did.",
    "This is exactly the kind of article I wish I had read when I started out.",
    "Does anyone know whether this changed in the latest release?",
    "Bookmarked. The examples in the second half are really helpful.",
    "I disagree with some of the conclusions here, but it is a good read anyway.",
    "We ran into this at work last week and spent hours on it. Wish I had seen this earlier.",
    "Nice summary. A diagram or two would make it even better.",
    "Could you do a follow-up on the performance implications?",
    "First!",
    "The official documentation says much the same thing, but this is easier to follow.",
)
TAGS = ("python", "programming", "language design", "tutorial", "reference", "open source", "software")


@dataclass
class Page:
    """One URL the mini web answers, and how: a page, or one of the failure behaviours."""

    host: str
    path: str
    behavior: str = "ok"  # ok | slow | flaky (500, then the page) | unavailable (always 503) | redirect
    file: str | None = None  # HTML under sites/
    location: str | None = None  # redirect target


@dataclass
class Link:
    """One distinct link in the dump, its submissions, and what each stage must make of it."""

    url: str  # the link as served (http, no www, no query): what harvesting must produce, up to canonical form
    role: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    title: str = ""
    passage: str | None = None
    final_url: str | None = None  # where the fetch ends after redirects
    expect: dict[str, Any] = field(default_factory=dict)

    @property
    def karma(self) -> int:
        return sum(p["score"] for p in self.posts if int(float(p["created_utc"])) < CUTOFF_UTC)


@dataclass
class MiniWeb:
    """A generated mini web on disk. `manifest` is miniweb.json: seed, size, pages and the dumps."""

    root: Path
    manifest: dict[str, Any]

    @property
    def seed(self) -> int:
        return self.manifest["seed"]

    @property
    def n_articles(self) -> int:
        return self.manifest["n_articles"]

    @property
    def dumps(self) -> list[Path]:
        return [self.root / d for d in self.manifest["dumps"]]

    @property
    def hosts(self) -> list[str]:
        """Every host named in the dump that the fetcher may be sent to (all served here but the refused one)."""
        return self.manifest["hosts"]

    @property
    def expectations_path(self) -> Path:
        return self.root / "expectations.json"

    def expectations(self) -> dict[str, Any]:
        return json.loads(self.expectations_path.read_text())

    @classmethod
    def load(cls, root: Path) -> MiniWeb:
        path = Path(root) / "miniweb.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no mini web here; generate one with build_miniweb() or `python -m infra.miniweb --out {root}`"
            )
        return cls(Path(root), json.loads(path.read_text()))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def _wiki_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:60]


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


def _role_counts(n: int) -> dict[str, int]:
    """How many passages each role takes; the rest are plain articles that must reach the corpus."""
    share = lambda frac, least=1: max(least, round(n * frac))  # noqa: E731
    counts = {
        "wikipedia": share(0.08, 2),
        "mirrored": share(0.06),  # the original of an exact copy on mirror.example.org
        "syndicated": share(0.06),  # the original of a lightly edited copy on wire.example.net
        "low_karma": share(0.08),
        "nsfw": share(0.03),
        "after_cutoff": 1,
        "robots": share(0.03),
        "slow": 1,
        "flaky": 1,
        "unavailable": 1,
        "split_karma": share(0.08),  # karma reaches 3 only summed over several submissions of URL variants
    }
    counts["article"] = n - sum(counts.values())
    return counts


def _near_copy(blocks: tuple[Block, ...], rng: random.Random, source_name: str) -> tuple[Block, ...]:
    """A syndicated copy: a credit line first and a few words changed (Jaccard of 5-gram shingles about 0.9)."""
    swaps = {"the": "this", "a": "one", "is": "remains", "and": "as well as", "can": "may", "will": "shall"}
    edited = []
    budget = 2
    for block in blocks:
        words = block.text.split(" ")
        if block.kind == "paragraph" and budget and len(words) > 40:
            i = rng.randrange(10, len(words) - 10)
            for j in range(i, len(words)):
                if words[j] in swaps:
                    words[j] = swaps[words[j]]
                    budget -= 1
                    break
        edited.append(Block(block.kind, " ".join(words)))
    credit = Block("paragraph", f"This story first appeared on {source_name}.")
    return (credit, *edited)


class _Planner:
    """Decides every page and link of one mini web from a seed."""

    def __init__(self, seed: int, n_articles: int):
        passages = load_passages()
        if not MIN_ARTICLES <= n_articles <= len(passages):
            raise ValueError(
                f"n_articles must be between {MIN_ARTICLES} and {len(passages)} (the passages this "
                f"Python's bundled documentation yields), got {n_articles}"
            )
        self.seed = seed
        self.rng = random.Random(seed)
        self.passages: list[Passage] = self.rng.sample(passages, n_articles)
        self.pages: dict[tuple[str, str], Page] = {}
        self.articles: dict[tuple[str, str], tuple[Site, Article]] = {}
        self.links: list[Link] = []
        self.n_posts = 0

    # --- submissions -------------------------------------------------------------------------------------------
    def post(
        self,
        url: str,
        score: int,
        title: str,
        *,
        when: tuple[int, int] = _WINDOW,
        nsfw: bool = False,
        subreddit: str | None = None,
        is_self: bool = False,
        domain: str | None = None,
    ) -> dict[str, Any]:
        self.n_posts += 1
        created = self.rng.randint(*when)
        sub = subreddit or self.rng.choice(SUBREDDITS)
        post_id = _base36(0x6F0000 + self.n_posts * 7919 % 0x10000 + self.n_posts * 0x10000)
        stamp: int | float | str = created
        if self.n_posts % 7 == 3:
            stamp = float(created)  # real dumps mix int, float and string timestamps
        elif self.n_posts % 7 == 5:
            stamp = str(created)
        host = re.sub(r"^https?://([^/?#]+).*$", r"\1", url).lower()
        return {
            "id": post_id,
            "author": self.rng.choice(USERS),
            "created_utc": stamp,
            "domain": domain or (f"self.{sub}" if is_self else host.removeprefix("www.")),
            "is_self": is_self,
            "num_comments": self.rng.randint(0, 250),
            "over_18": nsfw,
            "permalink": f"/r/{sub}/comments/{post_id}/{_slug(title)[:40].replace('-', '_')}/",
            "retrieved_on": created + 86400 * 30,
            "score": score,
            "selftext": "",
            "subreddit": sub,
            "title": title,
            "url": url,
        }

    def karma(self, low: int = MIN_KARMA) -> int:
        return min(5000, low + int(self.rng.paretovariate(1.1) * 4) - 4)

    def variant(self, url: str) -> str:
        """The same link as people post it: tracking parameters, a fragment, www., a capitalised host."""
        scheme, rest = url.split("://", 1)
        host, _, path = rest.partition("/")
        choice = self.rng.randrange(4)
        if choice == 0:
            return f"{url}?utm_source=reddit&utm_medium=social"
        if choice == 1:
            return f"{url}#comments"
        if choice == 2:
            return f"{scheme}://www.{host}/{path}"
        return f"{scheme}://{host.capitalize()}/{path}"

    # --- pages -------------------------------------------------------------------------------------------------
    def add_article(
        self,
        host: str,
        path: str,
        title: str,
        blocks: tuple[Block, ...],
        *,
        behavior: str = "ok",
        published: int | None = None,
        comments: bool = True,
        author: str | None = None,
    ) -> str:
        site = SITES[host]
        page_rng = random.Random(f"{self.seed}/{host}{path}")
        article = Article(
            url=f"http://{host}{path}",
            path=path,
            title=title,
            blocks=blocks,
            author=author or page_rng.choice(AUTHORS),
            published=published or page_rng.randint(_WINDOW[0] - 86400 * 60, _WINDOW[0]),
            section=page_rng.choice(site.sections) if site.sections else "",
            comments=list(zip(page_rng.sample(USERS, 4), page_rng.sample(COMMENTS, 4)))[: page_rng.randint(0, 4)]
            if comments
            else [],
            tags=tuple(page_rng.sample(TAGS, 3)),
        )
        self.articles[(host, path)] = (site, article)
        self.pages[(host, path)] = Page(
            host,
            path,
            behavior,
            file=f"{host}{path.rstrip('/')}.html" if not path.endswith(".html") else f"{host}{path}",
        )
        return article.url

    def article_path(self, host: str, p: Passage, n: int) -> str:
        kind = SITES[host].kind
        slug = _slug(p.title)
        if kind == "news":
            day = datetime.fromtimestamp(_WINDOW[0] - 86400 * (n % 60), UTC)
            return f"/{day:%Y/%m/%d}/{slug}.html"
        if kind == "blog":
            return f"/posts/{slug}/"
        if kind == "forum":
            return f"/t/{slug}/{1000 + n}"
        if kind == "docs":
            return f"/guide/{slug}.html"
        return f"/wiki/{_wiki_name(p.title)}"

    # --- the plan ----------------------------------------------------------------------------------------------
    def plan(self) -> None:
        counts = _role_counts(len(self.passages))
        # Syndicated originals are the longest passages, so that a light edit stays a clear near-duplicate.
        queue = sorted(self.passages, key=lambda p: p.n_words >= 300)
        main_hosts = ["news.example.com", "blog.example.org", "forum.example.net", "docs.example.org"]

        def take(role: str) -> list[Passage]:
            return [queue.pop() for _ in range(counts[role])]

        def site_link(
            role: str, p: Passage, host: str, *, behavior: str = "ok", path: str | None = None, comments: bool = True
        ) -> Link:
            path = path or self.article_path(host, p, len(self.links))
            link = Link(
                url=self.add_article(host, path, p.title, p.blocks, behavior=behavior, comments=comments),
                role=role,
                title=p.title,
                passage=p.key,
            )
            self.links.append(link)
            return link

        for p in take("syndicated"):
            host = main_hosts[len(self.links) % 2]
            original = site_link("syndicated", p, host)
            copy_blocks = _near_copy(p.blocks, random.Random(f"{self.seed}/syndicate/{p.key}"), SITES[host].name)
            copy = Link(
                url=self.add_article(
                    "wire.example.net", f"/stories/{3000 + len(self.links)}-{_slug(p.title)}", p.title, copy_blocks
                ),
                role="syndicated_copy",
                title=p.title,
                passage=p.key,
            )
            copy.expect["jaccard"] = round(jaccard(p.plain_text(), "\n\n".join(b.text for b in copy_blocks)), 3)
            self.links.append(copy)
            original.posts.append(self.post(original.url, self.karma(), p.title))
            copy.posts.append(self.post(copy.url, self.karma(), p.title))

        for i, p in enumerate(take("article")):
            link = site_link("article", p, main_hosts[i % len(main_hosts)])
            link.posts.append(self.post(link.url, self.karma(), p.title))
            if i % 4 == 2:  # reposted elsewhere as a variant URL: the karma adds up
                link.posts.append(self.post(self.variant(link.url), self.rng.randint(0, 40), p.title))
        # An old permalink that redirects to the article's current address.
        moved = next(
            link for link in self.links if link.role == "article" and "/posts/" in link.url and len(link.posts) == 1
        )
        old_path = f"/archives/{1000 + len(self.links)}"
        self.pages[("blog.example.org", old_path)] = Page(
            "blog.example.org", old_path, "redirect", location=moved.url.removeprefix("http://blog.example.org")
        )
        moved.final_url, moved.url = moved.url, f"http://blog.example.org{old_path}"
        moved.posts[0]["url"] = moved.url

        for p in take("split_karma"):
            link = site_link("split_karma", p, self.rng.choice(main_hosts))
            link.posts += [self.post(link.url, 2, p.title), self.post(self.variant(link.url), 1, p.title)]

        for i, p in enumerate(take("low_karma")):
            link = site_link("low_karma", p, main_hosts[i % len(main_hosts)])
            if i == 0:  # two submissions, 1 + 1: still below the threshold
                link.posts += [self.post(link.url, 1, p.title), self.post(self.variant(link.url), 1, p.title)]
            else:
                link.posts.append(self.post(link.url, self.rng.randint(0, MIN_KARMA - 1), p.title))

        for p in take("nsfw"):
            link = site_link("nsfw", p, self.rng.choice(main_hosts))
            link.posts.append(self.post(link.url, self.karma(10), p.title, nsfw=True))

        for p in take("after_cutoff"):
            link = site_link("after_cutoff", p, "news.example.com")
            link.posts.append(self.post(link.url, self.karma(10), p.title, when=_AFTER_CUTOFF))

        for p in take("robots"):
            link = site_link(
                "robots", p, "forum.example.net", path=f"/private/t/{_slug(p.title)}/{2000 + len(self.links)}"
            )
            link.posts.append(self.post(link.url, self.karma(), p.title))

        for role, host in (
            ("slow", "forum.example.net"),
            ("flaky", "docs.example.org"),
            ("unavailable", "news.example.com"),
        ):
            for p in take(role):
                link = site_link(role, p, host, behavior=role)
                link.posts.append(self.post(link.url, self.karma(), p.title))

        for i, p in enumerate(take("wikipedia")):
            link = site_link("wikipedia", p, ("en.wikipedia.org", "en.m.wikipedia.org")[i % 2])
            link.posts.append(self.post(link.url, self.karma(), p.title))

        for p in take("mirrored"):
            original = site_link("mirrored", p, "news.example.com", comments=False)  # the copy has none either
            _, article = self.articles[("news.example.com", original.url.removeprefix("http://news.example.com"))]
            copy = Link(
                url=self.add_article(
                    "mirror.example.org",
                    f"/{_slug(p.title)}.html",
                    p.title,
                    p.blocks,
                    comments=False,
                    published=article.published + 86400,
                    author=article.author,
                ),
                role="mirror_copy",
                title=p.title,
                passage=p.key,
            )
            self.links.append(copy)
            original.posts.append(self.post(original.url, self.karma(), p.title))
            copy.posts.append(self.post(copy.url, self.karma(), p.title))

        assert not queue, "every passage has a role"
        self.plan_pageless()

    def plan_pageless(self) -> None:
        """Links that never yield a document: self posts, media, dead pages, a dead host, a too-short page."""
        for i in range(2 + len(self.passages) // 30):
            sub = SUBREDDITS[i % len(SUBREDDITS)]
            title = f"Question about {self.passages[i].title.lower()}"
            post = self.post("", self.karma(), title, subreddit=sub, is_self=True)
            post["url"] = f"https://www.reddit.com{post['permalink']}"
            post["selftext"] = self.passages[i].blocks[0].text
            self.links.append(Link(url=post["url"], role="self_post", posts=[post], title=title))
        for template, domain in MEDIA_URLS:
            url = template.format(id=_base36(self.rng.randrange(36**6, 36**7)))
            title = "Look what I made"
            self.links.append(
                Link(url=url, role="media", posts=[self.post(url, self.karma(10), title, domain=domain)], title=title)
            )
        pdf = f"http://docs.example.org/files/{_slug(self.passages[0].title)}.pdf"
        self.links.append(
            Link(
                url=pdf,
                role="document_file",
                title="Printable version",
                posts=[self.post(pdf, self.karma(), "Printable version")],
            )
        )
        for url in (
            "http://news.example.com/2017/08/30/story-that-was-taken-down.html",
            "http://blog.example.org/posts/a-deleted-post/",
        ):
            self.links.append(
                Link(
                    url=url,
                    role="not_found",
                    title="Removed",
                    posts=[self.post(url, self.karma(), "An interesting read")],
                )
            )
        url = f"http://{REFUSED_HOST}/products/python-handbook"
        self.links.append(
            Link(
                url=url,
                role="refused",
                title="Python handbook",
                posts=[self.post(url, self.karma(), "Python handbook on sale")],
            )
        )
        # A note of a few sentences: fetched fine, but too short to keep.
        source = next(l for l in self.links if l.role == "low_karma")
        first = next(b for b in dict((p.key, p) for p in self.passages)[source.passage].blocks if b.kind == "paragraph")
        words = first.text.split()[:60]
        stub = (Block("paragraph", " ".join(words).rstrip(",;:") + "."),)
        url = self.add_article("blog.example.org", "/posts/quick-note/", "Quick note", stub, comments=False)
        self.links.append(
            Link(url=url, role="too_short", title="Quick note", posts=[self.post(url, self.karma(), "Quick note")])
        )


# What each role must become at each stage (None: the stage never sees it).
# Harvest reasons are the names of corpus.links.DROP_REASONS.
_HARVEST = {
    "low_karma": "below_min_karma",
    "nsfw": "nsfw",
    "after_cutoff": "after_cutoff",
    "self_post": "self_post",
    "media": "blocked_domain",
    "document_file": "blocked_extension",
}
_FETCH = {
    "robots": "robots_disallowed",
    "slow": "timeout",
    "unavailable": "http_error",
    "not_found": "http_error",
    "refused": "connection_error",
}


def _expectations(planner: _Planner) -> dict[str, Any]:
    links = planner.links
    for link in links:
        e = link.expect
        e["harvest"] = _HARVEST.get(link.role, "kept")
        if link.role == "media" and re.match(r"https?://[^/]*redd\.it/", link.url):
            e["harvest"] = "reddit_link"  # Reddit's own image and video hosts: not outbound links
        e["fetch"] = _FETCH.get(link.role, "ok") if e["harvest"] == "kept" else None
        e["filter"] = ("too_short" if link.role == "too_short" else "kept") if e["fetch"] == "ok" else None
        e["dedup"] = "kept" if e["filter"] == "kept" else None
        e["wikipedia"] = None
    # Duplicates: of an original and its copy, the higher karma survives (then the earlier submission).
    by_passage: dict[str, list[Link]] = defaultdict(list)
    for link in links:
        if link.expect["dedup"] == "kept" and link.passage:
            by_passage[link.passage].append(link)
    for group in by_passage.values():
        if len(group) < 2:
            continue
        group.sort(key=lambda l: (-l.karma, min(int(float(p["created_utc"])) for p in l.posts), l.url))
        for dup in group[1:]:
            mirrored = any(link.role == "mirror_copy" for link in group)
            dup.expect["dedup"] = "exact_duplicate" if mirrored else "near_duplicate"
            dup.expect["duplicate_of"] = group[0].url
    for link in links:
        if link.expect["dedup"] == "kept":
            link.expect["wikipedia"] = "removed" if link.role == "wikipedia" else "kept"
        link.expect["in_corpus"] = link.expect["wikipedia"] == "kept"

    def count(stage: str, value: str) -> int:
        return sum(1 for l in links if l.expect[stage] == value)

    harvest_drops: dict[str, int] = defaultdict(int)  # submissions, as corpus.links counts them
    for link in links:
        if link.expect["harvest"] != "kept":
            harvest_drops[link.expect["harvest"]] += len(link.posts)
    return {
        "seed": planner.seed,
        "n_articles": len(planner.passages),
        "min_karma": MIN_KARMA,
        "cutoff_utc": CUTOFF_UTC,
        "counts": {
            "submissions": sum(len(l.posts) for l in links),
            "links_kept": count("harvest", "kept"),
            "harvest_dropped": dict(sorted(harvest_drops.items())),
            "fetch": {o: count("fetch", o) for o in sorted({l.expect["fetch"] for l in links} - {None})},
            "too_short": count("filter", "too_short"),
            "exact_duplicates": count("dedup", "exact_duplicate"),
            "near_duplicates": count("dedup", "near_duplicate"),
            "wikipedia_removed": count("wikipedia", "removed"),
            "documents": count("wikipedia", "kept"),
        },
        "corpus_urls": sorted(l.final_url or l.url for l in links if l.expect["in_corpus"]),
        "boilerplate_markers": list(BOILERPLATE_MARKERS),
        "links": [
            {
                "url": l.url,
                "final_url": l.final_url or l.url,
                "role": l.role,
                "karma": l.karma,
                "title": l.title,
                "passage": l.passage,
                "posted_urls": sorted({p["url"] for p in l.posts}),
                **l.expect,
            }
            for l in sorted(links, key=lambda l: l.url)
        ],
    }


def _write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def _fingerprint(seed: int, n_articles: int) -> str:
    return f"v{GENERATOR_VERSION}-seed{seed}-n{n_articles}-{source_fingerprint()}"


def build_miniweb(seed: int, n_articles: int, out_dir: Path) -> MiniWeb:
    """Generate (or reuse, when `out_dir` already holds the same one) the mini web of `seed` and size `n_articles`.

    Writes out_dir/sites/<host>/..., out_dir/reddit/RS_YYYY-MM.zst, out_dir/expectations.json and, last, as the
    mark of a complete build, out_dir/miniweb.json.
    """
    out_dir = Path(out_dir)
    fingerprint = _fingerprint(seed, n_articles)
    try:
        existing = MiniWeb.load(out_dir)
        if existing.manifest.get("fingerprint") == fingerprint:
            return existing
    except (FileNotFoundError, json.JSONDecodeError):
        pass

    planner = _Planner(seed, n_articles)
    planner.plan()
    (out_dir / "miniweb.json").unlink(missing_ok=True)  # incomplete until rewritten at the end

    for (host, path), (site, article) in sorted(planner.articles.items()):
        same_site = sorted(
            (a.title, a.path) for (h, _), (_, a) in planner.articles.items() if h == host and a is not article
        )
        article.related = random.Random(f"{seed}/related/{host}{path}").sample(same_site, min(5, len(same_site)))
        _write(out_dir / "sites" / planner.pages[(host, path)].file, RENDERERS[site.kind](site, article))
    for host, site in SITES.items():
        listing = sorted((a.title, a.path) for (h, _), (_, a) in planner.articles.items() if h == host)
        _write(out_dir / "sites" / host / "index.html", render_index(site, listing))
        planner.pages[(host, "/")] = Page(host, "/", file=f"{host}/index.html")
        if site.robots_txt is not None:
            _write(out_dir / "sites" / host / "robots.txt", site.robots_txt)
            planner.pages[(host, "/robots.txt")] = Page(host, "/robots.txt", file=f"{host}/robots.txt")

    by_month: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for post in (p for link in planner.links for p in link.posts):
        month = datetime.fromtimestamp(int(float(post["created_utc"])), UTC).strftime("%Y-%m")
        by_month[month].append(post)
    dumps = []
    for month, posts in sorted(by_month.items()):
        posts.sort(key=lambda p: (int(float(p["created_utc"])), p["id"]))
        path = write_submissions(out_dir / "reddit" / f"RS_{month}.zst", posts)
        dumps.append(path.relative_to(out_dir).as_posix())

    expectations = _expectations(planner)
    _write(out_dir / "expectations.json", json.dumps(expectations, indent=1, ensure_ascii=False) + "\n")
    hosts = sorted(
        {re.sub(r"^https?://([^/?#]+).*$", r"\1", p["url"]).lower() for link in planner.links for p in link.posts}
    )
    manifest = {
        "fingerprint": fingerprint,
        "seed": seed,
        "n_articles": n_articles,
        "slow_page_seconds": SLOW_PAGE_SECONDS,
        "refused_hosts": [REFUSED_HOST],
        "hosts": hosts,
        "dumps": dumps,
        "pages": [asdict(p) for _, p in sorted(planner.pages.items())],
    }
    _write(out_dir / "miniweb.json", json.dumps(manifest, indent=1) + "\n")
    return MiniWeb(out_dir, manifest)
