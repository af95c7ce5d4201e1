"""Sphinx extension: make the saved ipywidgets render offline from _static/widgets/.

myst-nb adds RequireJS and @jupyter-widgets/html-manager's ``embed-amd.js`` to pages
that hold widget state (``nb_ipywidgets_js`` in _config.yml points them at the local
copies that scripts/fetch_vendor.sh fetched). Two things still reach for the network or
fail:

* the manager loads its icon fonts from ``<module uri>/..``, and RequireJS resolves the
  module ``@jupyter-widgets/html-manager/dist/...`` relative to the page; a per-page
  ``require.config`` maps it to ``_static/widgets/html-manager/`` where the fonts are;
* the manager typesets widget labels with MathJax 2's ``MathJax.Hub.Queue``; the book
uses
  MathJax 3, so a two-line shim forwards that call to ``MathJax.typesetPromise``.
"""

from __future__ import annotations

from sphinx.application import Sphinx

EMBED = "widgets/embed-amd.js"

SHIM = """
document.addEventListener("DOMContentLoaded", function () {
  if (window.MathJax && !window.MathJax.Hub) {
    window.MathJax.Hub = {Queue: function (cmd) {
      if (Array.isArray(cmd) && cmd[0] === "Typeset" && MathJax.startup) {
        MathJax.startup.promise.then(function () {
          return MathJax.typesetPromise([cmd[2]]);
        });
      }
    }};
  }
});
"""


def _name(js) -> str:
    return str(getattr(js, "filename", js) or "")


def _add_page_config(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    scripts = context.get("script_files") or []
    if not any(_name(js).endswith(EMBED) for js in scripts):
        return
    base = context["pathto"]("_static/widgets/html-manager", 1)
    config = (
        'require.config({paths: {"@jupyter-widgets/html-manager/dist": '
        f'"{base}"}}}});'
    )
    # inline scripts right after require.js, before embed-amd.js
    index = next(i for i, js in enumerate(scripts) if _name(js).endswith(EMBED))
    from sphinx.builders.html._assets import _JavaScript

    scripts.insert(index, _JavaScript("", body=config + SHIM, priority=500))


def setup(app: Sphinx) -> dict:
    # default priority, registered after myst_nb: runs once myst-nb has added its
    # scripts and before any theme handler that returns a template (html-page-context
    # stops at the first result)
    app.connect("html-page-context", _add_page_config)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
