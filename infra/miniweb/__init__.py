"""The mini web: a small, seeded web of sites plus a Reddit dump that links to it, for the demo and the tests.

web = build_miniweb(seed=0, n_articles=90, out_dir=Path("data/demo/miniweb"))
with serve_miniweb(web) as server:
    fetch with FetchConfig(connect_to=server.connect_to), harvest from web.dumps, compare with web.expectations()
"""

from infra.miniweb.build import MiniWeb, build_miniweb
from infra.miniweb.server import MiniWebServer, serve_miniweb

DEFAULT_SEED = 20190214  # GPT-2's announcement day
DEFAULT_ARTICLES = 90  # the demo: about 65 documents reach the corpus
SMALL_ARTICLES = 20  # tests

__all__ = [
    "DEFAULT_ARTICLES",
    "DEFAULT_SEED",
    "SMALL_ARTICLES",
    "MiniWeb",
    "MiniWebServer",
    "build_miniweb",
    "serve_miniweb",
]
