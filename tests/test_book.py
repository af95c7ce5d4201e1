"""The book as a reader gets it: twins in sync, a warning-free build, pages in a real
browser.

The build runs once per session in the ``quick`` profile into ``_build/quick`` (its own
execution cache, so it never mixes with ``make book``'s outputs). The browser tests
serve the HTML on 127.0.0.1 and open every page in headless Chromium (Debian's
``chromium``, driven by Playwright's Python package; no browser is ever downloaded).
Without Chromium they are skipped, unless ``DGMLIB_REQUIRE_BROWSER=1`` (set by CI) makes
that a failure.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import twins  # noqa: E402

pytestmark = pytest.mark.book
BUILD = ROOT / "_build" / "quick"
HTML = BUILD / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("DGMLIB_CHROMIUM", "/usr/bin/chromium")


def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [c["file"] for c in part.get("chapters", [])]
    return pages


def test_every_chapter_has_an_up_to_date_twin():
    chapters = twins.chapters()
    assert chapters, "no MyST chapters found under book/"
    stale = [md.name for md in chapters if twins.stale(md)]
    assert not stale, f"stale or missing .ipynb twins: {stale}; run `make twins`"


def test_every_chapter_is_in_the_toc_and_asks_for_a_gpu():
    pages = set(toc_pages())
    for md in twins.chapters():
        assert f"book/{md.stem}" in pages, f"{md.name} is not in _toc.yml"
        import json

        meta = json.loads(md.with_suffix(".ipynb").read_text())["metadata"]
        assert meta.get("accelerator") == "GPU" and "colab" in meta, (
            f"{md.name} does not ask Colab for a GPU"
        )


def test_every_twin_installs_the_dgmlib_it_was_built_from():
    """Colab installs the tagged release of the page's own version, never the branch."""
    import json

    version = re.search(
        r'^__version__ = "([^"]+)"$',
        (ROOT / "dgmlib" / "__init__.py").read_text(encoding="utf-8"),
        re.M,
    ).group(1)
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'version = { attr = "dgmlib.__version__" }' in pyproject
    for md in twins.chapters():
        cells = json.loads(md.with_suffix(".ipynb").read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        first = "".join(code[0]["source"])
        assert "google.colab" in first and "pip" in first, f"{md.name}: no install cell"
        assert f'pkg = f"dgmlib[music] @ git+{{repo}}@v{version}"' in first, (
            f"{md.name}: the install cell is not pinned to v{version}"
        )
        assert f'repo = "{twins.REPO_URL}"' in first
        rest = "".join("".join(c["source"]) for c in code[1:])
        assert "pip install" not in rest and "git+https" not in rest, (
            f"{md.name}: a second install cell"
        )
    assert twins.install_url("9.9.9").endswith("@v9.9.9")


@pytest.fixture(scope="session")
def built_book(request) -> Path:
    """The book built with -W -n in the quick profile, once per session: the root
    conftest starts the build in a subprocess when the tests are collected (so it runs
    beside the unit and chapter tests), and this waits for it.
    """
    proc = getattr(request.config, "dgmlib_quick_build", None)
    if proc is None:  # DGMLIB_REUSE_BUILD: test the existing quick build as it is
        return HTML
    if not (ROOT / "_vendor" / ".versions").exists():
        proc.kill()
        pytest.fail("_vendor/ is missing: run `make vendor` (make test does it)")
    try:
        proc.wait(timeout=max(1.0, 1500 - (time.monotonic() - proc.started)))
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the quick book build took over 1500 s (_build/quick-build.log)")
    log = (ROOT / "_build" / "quick-build.log").read_text()
    assert proc.returncode == 0, (
        f"jupyter-book build failed (log in _build/quick-build.log):\n{log[-6000:]}"
    )
    return HTML


def test_book_builds_without_warnings(built_book):
    for page in toc_pages():
        assert (built_book / f"{page}.html").exists(), f"{page}.html was not built"
    # offline assets are served from _static, never from a CDN
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").exists()
    html = (built_book / "book" / "01_introduction.html").read_text()
    assert (
        "cdn.jsdelivr" not in html and "cdnjs" not in html and "mathjax@3" not in html
    )
    assert (
        "colab.research.google.com/github/" in html
        and "book/01_introduction.ipynb" in html
    )


# --- what the reader sees under the cells -------------------------------------------
REPR = re.compile(r"<[\w.]+(?: object)? at 0x[0-9a-f]+>")
WARNING = re.compile(r"\b\w*Warning\b|warnings\.warn")
# characters of a printed line that fit the code box without scrolling
OUTPUT_WIDTH = 88


def chapter_pages() -> list[str]:
    return [p for p in toc_pages() if p.startswith("book/") and p[5:7].isdigit()]


@pytest.mark.parametrize("page_name", chapter_pages())
def test_rendered_outputs_have_no_reprs_warnings_or_long_lines(page_name, built_book):
    from bs4 import BeautifulSoup

    soup = BeautifulSoup((built_book / f"{page_name}.html").read_text(), "html.parser")
    problems = []
    for out in soup.select(".cell_output"):
        text = out.get_text("\n")
        problems += [f"stray repr: {m.group(0)}" for m in REPR.finditer(text)]
        problems += [f"warning: {m.group(0)}" for m in WARNING.finditer(text)]
        for pre in out.select("pre"):
            for line in pre.get_text().splitlines():
                if len(line) > OUTPUT_WIDTH:
                    problems.append(f"{len(line)}-character line: {line[:70]}...")
    assert not problems, f"{page_name}: {problems}"


RAW_TEX = re.compile(r"\\(?:mathbf|frac|sum|log|boldsymbol|mathcal|top|mid)\b")


@pytest.mark.parametrize("page_name", chapter_pages())
def test_prose_has_no_untypeset_maths(page_name, built_book):
    """TeX outside the math elements is maths MyST did not see (e.g. inline maths
    split so that a line starts with '- ', which becomes a list item)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup((built_book / f"{page_name}.html").read_text(), "html.parser")
    article = soup.select_one("article") or soup
    for skip in article.select(".math, pre, code, script, .cell_output"):
        skip.decompose()
    found = RAW_TEX.findall(article.get_text(" "))
    assert not found, f"{page_name}: TeX left as text: {found[:5]}"


def test_no_chapter_writes_a_warning(built_book):
    """The page drops stderr (``stderr_output: remove``), so warnings are looked for in
    the executed notebooks the build keeps beside the HTML."""
    import json

    executed = built_book.parent / "jupyter_execute" / "book"
    notebooks = sorted(executed.glob("*.ipynb"))
    assert len(notebooks) == len(chapter_pages()), f"executed notebooks: {notebooks}"
    found = []
    for nb in notebooks:
        for cell in json.loads(nb.read_text())["cells"]:
            for out in cell.get("outputs", []):
                text = "".join(out.get("text", ""))
                if out.get("name") == "stderr" and WARNING.search(text):
                    found.append(f"{nb.name}: {text.strip()[:200]}")
    assert not found, found


def test_rendered_outputs_check_catches_a_stray_repr(tmp_path):
    """The check above, on a page made to fail it (a repr, a warning, a long line)."""
    text = "<matplotlib.image.AxesImage at 0x7f3a2c1d90d0>\nUserWarning: x\n" + "y" * 89
    assert REPR.search(text) and WARNING.search(text)
    assert max(map(len, text.splitlines())) > OUTPUT_WIDTH
    assert not REPR.search("<dgmlib.energy.BernoulliRBM>") and not WARNING.search(
        "warm"
    )


# --- the browser ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def server(built_book):
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        msg = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("DGMLIB_REQUIRE_BROWSER"):
            pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield b
        b.close()


@pytest.mark.browser
@pytest.mark.parametrize("page_name", toc_pages())
def test_page_renders_offline(page_name, server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    outside, errors = [], []

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server}/{page_name}.html", wait_until="load")
    has_math = page.evaluate("document.querySelectorAll('.math').length") > 0
    if has_math:
        page.wait_for_function(
            "window.MathJax && MathJax.startup && MathJax.startup.document",
            timeout=30000,
        )
        page.evaluate("MathJax.startup.promise")
        page.wait_for_function(
            "document.querySelectorAll('mjx-container').length > 0", timeout=30000
        )
    n_widgets = page.evaluate(
        "document.querySelectorAll('script[type=\"application/vnd.jupyter.widget-view+json\"]').length"
    )
    if n_widgets:
        page.wait_for_function(
            "document.querySelectorAll('.jupyter-widgets.widget-slider, "
            ".widget-slider').length >= 1",
            timeout=30000,
        )
        page.wait_for_function(
            "document.querySelectorAll('.jupyter-widgets-output-area img, "
            ".widget-output img').length >= 1",
            timeout=30000,
        )
    page.wait_for_timeout(300)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=str(SHOTS / f"{page_name.replace('/', '_')}.png"), full_page=True
    )

    scrolls = page.evaluate(
        "Array.from(document.querySelectorAll('article pre'))"
        ".filter(p => p.offsetParent !== null && p.scrollWidth > p.clientWidth + 1)"
        ".map(p => p.textContent.split('\\n').reduce((a, b) => a.length > b.length"
        " ? a : b).slice(0, 100))"
    )
    assert not scrolls, f"code or output boxes that scroll sideways: {scrolls}"
    if has_math:  # display equations wider than the text column scroll too
        wide = page.evaluate(
            "Array.from(document.querySelectorAll("
            "'article mjx-container[display=true]'))"
            ".map(m => [m.querySelector('mjx-math').getBoundingClientRect().width,"
            " m.clientWidth, MathJax.startup.document.getMathItemsWithin(m)"
            ".map(i => i.math.trim().slice(0, 60)).join('')])"
            ".filter(w => w[0] > w[1] + 1)"
        )
        assert not wide, f"display equations wider than the page: {wide}"
    text = page.inner_text("article")
    assert "\\(" not in text and "\\[" not in text and "$$" not in text, (
        "raw LaTeX left untypeset"
    )
    sizes = page.evaluate(
        "Array.from(document.images).map(i => [i.currentSrc.slice(0, 80), "
        "i.naturalWidth, i.naturalHeight])"
    )
    broken = [s for s in sizes if s[1] == 0 or s[2] == 0]
    assert not broken, f"images with no natural size: {broken}"
    if page_name.startswith("book/0"):
        n_figures = page.evaluate(
            "document.querySelectorAll('.cell_output img').length"
        )
        assert n_figures >= 1, "a chapter without a single figure"
    assert not outside, f"requests left 127.0.0.1: {outside}"
    assert not errors, f"console errors: {errors}"
    page.close()
