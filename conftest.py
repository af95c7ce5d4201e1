"""Pytest configuration shared by the unit tests and the chapter tests.

Chapters are MyST Markdown notebooks (``book/*.md`` with a jupytext header). With
``--nbval-lax`` they are collected here, read through jupytext, and run cell by cell by
nbval in a kernel that inherits this environment: ``DGMLIB_PROFILE=quick`` (unless set)
and ``DGMLIB_CACHE=off`` so every chapter trains for real. The ``.ipynb`` twins are
generated copies for Colab and are not collected.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent
collect_ignore_glob = ["book/*.ipynb", ".venv/*", "_build/*", "_vendor/*"]

os.environ.setdefault("DGMLIB_PROFILE", "quick")
os.environ.setdefault("DGMLIB_CACHE", "off")
os.environ.setdefault("DGMLIB_QUIET", "1")


def is_chapter(path: Path) -> bool:
    """A MyST notebook chapter: a .md file under book/ whose front matter names
    jupytext.
    """
    if path.suffix != ".md" or path.parent.name != "book":
        return False
    with open(path, encoding="utf-8") as f:
        head = f.read(400)
    return head.startswith("---") and "jupytext:" in head


def pytest_collect_file(file_path: Path, parent):
    opt = parent.config.option
    if not (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)):
        return None
    if is_chapter(file_path):
        return MystNotebook.from_parent(parent, path=file_path)
    return None


try:
    from nbval.plugin import IPyNbFile
except ImportError:  # nbval missing: chapters are simply not collected
    IPyNbFile = None

if IPyNbFile is not None:
    import jupytext
    import nbval.plugin as _nbval

    class MystNotebook(IPyNbFile):
        """nbval's notebook collector, reading the MyST source through jupytext."""

        def collect(self):
            def read(path, as_version=4, **kw):
                return jupytext.read(path, fmt="md:myst")

            with mock.patch.object(_nbval.nbformat, "read", read):
                yield from super().collect()


# --- per-chapter timings: written to _build/timings/<profile>.json and summarised -----
_timings: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.startswith("book/") and path.endswith(".md"):
        _timings[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _timings:
        return
    profile = os.environ.get("DGMLIB_PROFILE", "quick")
    out = ROOT / "_build" / "timings" / f"{profile}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "profile": profile,
                "seconds": dict(_timings),
                "when": time.strftime("%Y-%m-%d %H:%M"),
            },
            indent=2,
        )
    )
    terminalreporter.section(f"chapter times ({profile} profile)")
    for path, sec in sorted(_timings.items()):
        terminalreporter.write_line(f"{sec:7.1f} s  {path}")
