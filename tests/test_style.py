"""One line length, 88, wherever a reader sees code: ruff format and ruff check.

The package, the tests, the benchmarks and the scripts are checked as files; the
chapters' code cells through the MyST sources (``scripts/format_chapters.py --check``)
and through their .ipynb twins, which hold the same cells (so lint sees names across
cells). ruff is pinned in requirements.txt; ``make format`` applies what these ask for.
"""

from __future__ import annotations

import ast
import re
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


# --- what a chapter includes from dgmlib shows the maths -----------------------------
MAX_SHOWN = 30  # lines of library code a chapter shows at once, outside a dropdown
MARK = re.compile(r"#\s*\[(/?)maths:([\w.-]+)\]")


def _includes(md: Path):
    """(path, options, inside_dropdown) of every literalinclude in a chapter."""
    lines = md.read_text(encoding="utf-8").splitlines()
    fence = None  # the colon fence of the dropdown we are in
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(:{3,})\{dropdown\}", line)
        if m and fence is None:
            fence = m.group(1)
        elif fence is not None and line.strip() == fence:
            fence = None
        m = re.match(r"^`{3,}\{literalinclude\}\s+(\S+)", line)
        if m:
            opts = {}
            i += 1
            while i < len(lines) and lines[i].startswith(":"):
                key, _, val = lines[i][1:].partition(":")
                opts[key.strip()] = val.strip().strip('"')
                i += 1
            yield (md.parent / m.group(1)).resolve(), opts, fence is not None
            continue
        i += 1


def _object_lines(path: Path, dotted: str) -> int:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    node = tree
    for part in dotted.split("."):
        node = next(
            n
            for n in ast.iter_child_nodes(node)
            if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
            and n.name == part
        )
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return node.end_lineno - start + 1


def _shown_lines(path: Path, opts: dict) -> int:
    if "pyobject" in opts:
        return _object_lines(path, opts["pyobject"])
    text = path.read_text(encoding="utf-8").splitlines()
    start, end = 0, len(text)
    if "start-after" in opts:
        start = next(k for k, t in enumerate(text) if opts["start-after"] in t) + 1
    if "end-before" in opts:
        end = next(k for k, t in enumerate(text[start:]) if opts["end-before"] in t)
        end += start
    return end - start


def test_maths_markers_are_paired_and_unique():
    seen: dict[str, str] = {}
    for py in sorted((ROOT / "dgmlib").rglob("*.py")):
        open_: list[str] = []
        for n, line in enumerate(py.read_text(encoding="utf-8").splitlines(), 1):
            m = MARK.search(line)
            if not m:
                continue
            where = f"{py.relative_to(ROOT)}:{n}"
            if m.group(1):
                assert open_ and open_.pop() == m.group(2), f"unmatched end at {where}"
            else:
                assert m.group(2) not in seen, f"[maths:{m.group(2)}] twice: {where}"
                seen[m.group(2)] = where
                open_.append(m.group(2))
        assert not open_, f"{py.relative_to(ROOT)}: [maths:{open_[-1]}] never closed"


def test_included_code_shows_the_maths_and_keeps_the_rest_in_a_dropdown():
    sys.path.insert(0, str(ROOT / "scripts"))
    import twins

    long = []
    for md in twins.chapters():
        for path, opts, in_dropdown in _includes(md):
            n = _shown_lines(path, opts)
            if not in_dropdown and n > MAX_SHOWN:
                what = opts.get("pyobject") or opts.get("start-after") or "whole file"
                long.append(f"{md.name}: {what} ({n} lines)")
    assert not long, (
        f"included blocks longer than {MAX_SHOWN} lines outside a dropdown (show the "
        f"maths between '# [maths:name]' markers, the whole function in a dropdown): "
        f"{long}"
    )
