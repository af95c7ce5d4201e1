"""Format the code cells of the MyST chapters (book/*.md) with ruff, in place.

ruff formats Python files and notebooks, not MyST ``{code-cell}`` blocks, so this script
hands the cells' code to ``ruff format`` as one notebook (the project's settings in
pyproject.toml, line length 88) and writes it back between the cell's fences; prose and
cell options are left exactly as they are. Lint runs on the generated .ipynb twins,
which hold the same cells.

    python scripts/format_chapters.py           # format every chapter in place
    python scripts/format_chapters.py --fix     # also apply ruff's safe lint fixes
    python scripts/format_chapters.py --check   # exit 1 if a chapter would change
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```\{code-cell\}")


def split_cells(text: str) -> list[tuple[str, str]]:
    """The chapter as ("text", s) and ("code", s) pieces that join back to ``text``.

    A code piece is the cell's code only: the fence line, the ``:key: value`` options or
    the ``---`` YAML block and the blank line after them stay in the text pieces.
    """
    lines = text.splitlines(keepends=True)
    pieces: list[tuple[str, str]] = []
    buf: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        buf.append(line)
        i += 1
        if not FENCE.match(line):
            continue
        if i < len(lines) and lines[i].strip() == "---":  # YAML options block
            buf.append(lines[i])
            i += 1
            while i < len(lines) and lines[i].strip() != "---":
                buf.append(lines[i])
                i += 1
            buf.append(lines[i])
            i += 1
        else:
            while i < len(lines) and lines[i].startswith(":"):
                buf.append(lines[i])
                i += 1
        if i < len(lines) and lines[i].strip() == "" and buf[-1] != line:
            buf.append(lines[i])
            i += 1
        pieces.append(("text", "".join(buf)))
        buf = []
        code: list[str] = []
        while i < len(lines) and lines[i].rstrip("\n") != "```":
            code.append(lines[i])
            i += 1
        pieces.append(("code", "".join(code)))
    pieces.append(("text", "".join(buf)))
    return pieces


def ruff(cells: list[str], *, fix: bool) -> list[str]:
    """The cells through ``ruff check --fix`` (if ``fix``) and ``ruff format``.

    The cells go to ruff as one notebook, so that lint sees the chapter's names across
    cells as the kernel does; each cell comes back in the same place.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chapter.ipynb"
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(c.rstrip("\n")) for c in cells]
        nbformat.write(nb, path)
        exe = Path(sys.executable).with_name("ruff")
        base = [str(exe) if exe.exists() else "ruff"]
        conf = ["--config", str(ROOT / "pyproject.toml"), str(path)]
        steps = [["format", "--quiet"]]
        if fix:
            steps.insert(0, ["check", "--fix", "--quiet", "--exit-zero"])
        for step in steps:
            proc = subprocess.run(base + step + conf, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"ruff {step[0]} failed:\n{proc.stdout}{proc.stderr}")
        out = [c.source for c in nbformat.read(path, as_version=4).cells]
    return [o + "\n" if o else o for o in out]


def formatted(text: str, *, fix: bool = False) -> str:
    pieces = split_cells(text)
    codes = [s for kind, s in pieces if kind == "code"]
    new = iter(ruff(codes, fix=fix))
    return "".join(next(new) if kind == "code" else s for kind, s in pieces)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if needed"
    )
    ap.add_argument(
        "--fix", action="store_true", help="also apply ruff's safe lint fixes"
    )
    ap.add_argument("files", nargs="*", type=Path, help="chapters (default: all)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "scripts"))
    import twins

    files = args.files or twins.chapters()
    changed = []
    for md in files:
        text = md.read_text(encoding="utf-8")
        new = formatted(text, fix=args.fix)
        if new != text:
            changed.append(md)
            if not args.check:
                md.write_text(new, encoding="utf-8")
    if changed:
        names = ", ".join(str(p.resolve().relative_to(ROOT)) for p in changed)
        verb = "would reformat" if args.check else "reformatted"
        print(f"{verb}: {names}", file=sys.stderr)
        if args.check:
            print("run `make format`", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
