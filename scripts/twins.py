"""Generate or check the .ipynb twins of the MyST chapters (book/*.md -> book/*.ipynb).

The twins are what Colab opens: the same cells as the chapter, no outputs, and cell ids
numbered in order so that regenerating an unchanged chapter gives byte-identical files.
Each twin starts with an install cell that the MyST source does not have: on Colab it
installs the ``dgmlib`` the page was built from, pinned to the git tag
``v<dgmlib.__version__>``, so a reader of an older release never gets a newer package.

    python scripts/twins.py --write   # (re)generate every twin
    python scripts/twins.py --check   # exit 1 and name the missing or stale twins
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
REPO_URL = "https://github.com/dgm-executable/deep-generative-models"


def version() -> str:
    """``dgmlib.__version__``, read from the source (no import: torch is not needed)."""
    text = (ROOT / "dgmlib" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    if match is None:
        raise SystemExit('dgmlib/__init__.py has no line __version__ = "X.Y.Z"')
    return match.group(1)


def install_url(ver: str | None = None) -> str:
    """The pip requirement of the twins: this repository at the tag of this version."""
    return f"dgmlib[music] @ git+{REPO_URL}@v{ver or version()}"


def install_cell() -> str:
    """The first code cell of every twin: pip-installs the pinned dgmlib, on Colab."""
    return (
        f"# Colab only: install dgmlib {version()}, the version this page was built\n"
        "# from (Colab's own torch is kept). Anywhere else this cell does nothing.\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    repo = "{REPO_URL}"\n'
        f'    pkg = f"dgmlib[music] @ git+{{repo}}@v{version()}"\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", pkg], '
        "check=True)"
    )


def chapters(book: Path = ROOT / "book") -> list[Path]:
    """The MyST notebooks under book/: .md files whose front matter names jupytext."""
    out = []
    for md in sorted(book.glob("*.md")):
        head = md.read_text(encoding="utf-8")[:400]
        if head.startswith("---") and "jupytext:" in head:
            out.append(md)
    return out


def twin_text(md: Path) -> str:
    """The .ipynb text for chapter ``md``: its cells, no outputs, deterministic cell
    ids.
    """
    nb = jupytext.read(md, fmt="md:myst")
    cell = nbformat.v4.new_code_cell(install_cell())
    cell.metadata["tags"] = ["remove-cell"]
    nb.cells.insert(1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0, cell)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
        if cell.cell_type == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return jupytext.writes(nb, fmt="ipynb")


def stale(md: Path) -> bool:
    twin = md.with_suffix(".ipynb")
    return not twin.exists() or twin.read_text(encoding="utf-8") != twin_text(md)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate every twin")
    mode.add_argument(
        "--check", action="store_true", help="fail if a twin is missing or out of date"
    )
    args = ap.parse_args(argv)
    bad = []
    for md in chapters():
        if args.write:
            md.with_suffix(".ipynb").write_text(twin_text(md), encoding="utf-8")
            print(f"wrote {md.with_suffix('.ipynb').relative_to(ROOT)}")
        elif stale(md):
            bad.append(md)
    if bad:
        names = ", ".join(str(p.relative_to(ROOT)) for p in bad)
        print(
            f"stale or missing .ipynb twins: {names}. Run `make twins` and commit "
            "them.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
