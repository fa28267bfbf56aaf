"""Shared test fixtures.

Every test process is kept offline and inside the checkout: Prefect, newspaper, tldextract and Chromium get
project-local homes, and telemetry is off.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WEBTEXT_SHARED_DIR", REPO.parent / "shared"))

_TMP = REPO / ".tmp" / "tests"
_TMP.mkdir(parents=True, exist_ok=True)
for _key, _value in {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_HOME": str(_TMP / "prefect-home"),
    "TMPDIR": str(_TMP),
    "XDG_CACHE_HOME": str(REPO / ".cache"),
    "XDG_CONFIG_HOME": str(REPO / ".cache" / "config"),
}.items():
    os.environ.setdefault(_key, _value)
tempfile.tempdir = None  # re-read TMPDIR

# Fixtures for a real Prefect server and served deployments live in tests/prefect_fixtures.py.
from prefect_fixtures import *  # noqa: E402,F401,F403


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared folder beside the checkout; tests that need it are skipped without it."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"needs the shared data folder {SHARED}/data (set WEBTEXT_SHARED_DIR to point elsewhere)")
    return SHARED


@pytest.fixture(scope="session")
def gpt2_bpe_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "gpt2-bpe"


@pytest.fixture(scope="session")
def web_pages_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "web" / "trafilatura"


@pytest.fixture(scope="session")
def reddit_sample(shared_dir: Path) -> Path:
    return shared_dir / "data" / "reddit" / "test_submissions.json"


@pytest.fixture(scope="session")
def eval_data_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "eval"


@pytest.fixture
def one_torch_thread():
    """Tiny models run fastest on one thread, and a shared, loaded machine makes OpenMP spin-waits very slow."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


_SERVER_FIXTURES = {"prefect_server", "served_deployments"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts a Prefect server through the fixtures must say so, or `-m "not server"` runs it anyway."""
    unmarked = [
        item.nodeid
        for item in items
        if _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("server") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"tests using {sorted(_SERVER_FIXTURES)} need @pytest.mark.server: {unmarked}")
