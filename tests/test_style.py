"""One line length, 88, wherever a reader sees code: ruff format and ruff check.

The package, the tests, the benchmarks and the scripts are checked as files; the
chapters' code cells through the MyST sources (``scripts/format_chapters.py --check``)
and through their .ipynb twins, which hold the same cells (so lint sees names across
cells). ruff is pinned in requirements.txt; ``make format`` applies what these ask for.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["dgmlib", "benchmarks", "tests", "scripts", "conftest.py", "book/_ext"]


def ruff() -> str:
    exe = Path(sys.executable).with_name("ruff")
    if exe.exists():
        return str(exe)
    found = shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: requirements.txt pins it (make venv)")
    return found


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True)


def test_python_files_are_ruff_formatted():
    proc = run(ruff(), "format", "--check", *PATHS)
    assert proc.returncode == 0, f"run `make format`:\n{proc.stdout}{proc.stderr}"


def test_python_files_pass_ruff_check():
    proc = run(ruff(), "check", "--output-format", "concise", *PATHS)
    assert proc.returncode == 0, f"ruff check:\n{proc.stdout}{proc.stderr}"


def test_chapter_cells_are_ruff_formatted():
    proc = run(sys.executable, "scripts/format_chapters.py", "--check")
    assert proc.returncode == 0, proc.stderr


def test_chapter_cells_pass_ruff_check():
    twins = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "book").glob("*.ipynb"))
    assert twins, "no .ipynb twins under book/: run `make twins`"
    proc = run(ruff(), "check", "--output-format", "concise", *twins)
    assert proc.returncode == 0, f"ruff check on the chapters' twins:\n{proc.stdout}"


def test_format_chapters_changes_only_code(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import format_chapters

    text = (
        "---\njupytext: {}\n---\n# Title\n\nProse   stays   as it is.\n\n"
        "```{code-cell} ipython3\n:tags: [remove-cell]\n\nx=[1,2 ,3]\n```\n\n"
        "```python\ny=[1,2]\n```\n"
    )
    out = format_chapters.formatted(text)
    assert "x = [1, 2, 3]\n```" in out and ":tags: [remove-cell]\n\nx" in out
    assert "Prose   stays   as it is." in out and "y=[1,2]" in out
    assert format_chapters.formatted(out) == out
