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
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from unittest import mock

import pytest

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


# --- the quick book build runs beside the other tests ---------------------------------
# Every chapter runs twice in `make test`: once under nbval, once in the book build (its
# executed outputs are what the browser tests look at). Both kernels run on one thread
# in the quick profile, so on 2 cores the build goes in a subprocess while the unit and
# chapter tests run, and the tests that need it (the fixture ``built_book``) go last.
QUICK_BUILD = ROOT / "_build" / "quick"
QUICK_BUILD_LOG = ROOT / "_build" / "quick-build.log"


def start_quick_build() -> subprocess.Popen:
    """``jupyter-book build`` with -W -n in the quick profile, into ``_build/quick``."""
    env = dict(os.environ, DGMLIB_PROFILE="quick")
    env.pop("MPLBACKEND", None)  # a non-inline backend in the kernel drops every figure
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(ROOT), "--path-output", str(QUICK_BUILD)]
    cmd += ["--warningiserror", "--nitpick", "--keep-going"]
    QUICK_BUILD_LOG.parent.mkdir(exist_ok=True)
    log = open(QUICK_BUILD_LOG, "w")  # a file, not a pipe: a full pipe would stall it
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    proc.started = time.monotonic()
    return proc


@pytest.hookimpl(trylast=True)  # after -m / -k have deselected what will not run
def pytest_collection_modifyitems(config, items):
    needs = {id(i) for i in items if "built_book" in getattr(i, "fixturenames", ())}
    if not needs:
        return
    items[:] = [i for i in items if id(i) not in needs] + [
        i for i in items if id(i) in needs
    ]
    reuse = os.environ.get("DGMLIB_REUSE_BUILD")
    if not (reuse and (QUICK_BUILD / "_build" / "html" / "index.html").exists()):
        config.dgmlib_quick_build = start_quick_build()


def pytest_unconfigure(config):
    proc = getattr(config, "dgmlib_quick_build", None)
    if proc is not None and proc.poll() is None:  # interrupted: stop the build too
        proc.kill()
        proc.wait()
