"""The libraries never import Prefect: only flows/ (and infra/) do, so the libraries run, test and benchmark alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARIES = ("corpus", "tokenization", "modeling", "evaluation")


def test_no_library_module_imports_prefect() -> None:
    modules = sorted(
        f"{p.parent.name}.{p.stem}" for lib in LIBRARIES for p in (REPO / lib).glob("*.py") if p.stem != "__init__"
    )
    assert len(modules) > 40
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", f"a library module imports Prefect: {out.stdout.strip()[:500]}"
