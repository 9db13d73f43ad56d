"""Sphinx extension: the rendered book's own chrome.

- Serve MathJax, the widget manager and mermaid from _vendor/ when present.
  ``python scripts/vendor_assets.py`` fetches them (from the npm registry, integrity-checked);
  without that folder the book falls back to the CDN defaults of Sphinx, myst-nb and
  sphinxcontrib-mermaid, so a build never fails for want of the local copies.
- Add the book's stylesheet and script (book/_static/genlab.css, genlab.js: wide math and tables
  scroll in their own box, mermaid diagrams keep legible labels).
- Drop the theme's fontawesome.js (1.5 MB on every page): the theme's CSS already draws every
  icon from the Font Awesome web font (templates/static/webpack-macros.html).
- Fix console errors the toolchain causes: scripts added twice (``THEBE_JS_URL`` declared
  twice), and the widget manager calling MathJax 2's ``MathJax.Hub.Queue`` under MathJax 3;
  serve the widget manager's fonts from where it looks for them.
- Doctree transforms: notebook figures get alt text; ``# NBVAL_...`` test-marker lines are
  removed from rendered code cells; a title's math that is one Greek letter or symbol becomes
  that Unicode character, so the browser tab, the sidebar and links never show raw TeX.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.transforms import SphinxTransform
from sphinx.util import logging

logger = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
VENDOR = HERE.parents[1] / "_vendor"
WIDGET_MANAGER = "html-manager/dist/embed-amd.js"


def _use_local_assets(app: Sphinx, config: Config) -> None:
    if not (VENDOR / "mathjax" / "es5" / "tex-mml-chtml.js").exists():
        logger.info("offline_assets: _vendor/ not found; MathJax, widgets and mermaid load from CDNs")
        return
    config.html_static_path = [*config.html_static_path, str(VENDOR)]  # copied into _static/
    config.mathjax_path = "mathjax/es5/tex-mml-chtml.js"
    if (VENDOR / WIDGET_MANAGER).exists():
        config.nb_ipywidgets_js = {
            "requirejs/require.js": {},
            WIDGET_MANAGER: {},
        }
    if (VENDOR / "mermaid" / "dist" / "mermaid.esm.min.mjs").exists():
        config.mermaid_use_local = "mermaid/dist/mermaid.esm.min.mjs"
    logger.info("offline_assets: serving MathJax, widgets and mermaid from %s", VENDOR)


def _add_book_assets(app: Sphinx, config: Config) -> None:
    config.html_static_path = [*config.html_static_path, str(HERE.parent / "_static")]
    config.templates_path = [str(HERE / "templates"), *config.templates_path]


TITLE = re.compile(r"""(?:title|suptitle|set_title)\s*[=(]\s*f?(["'])(.+?)\1""")


def _alt_text_for_notebook_figures(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Give notebook figures real alt text: the titles set in the code that drew them.

    myst-nb uses the image's file name as its alt text, which tells a screen-reader user
    nothing. We take the figure titles from the cell's source (``title="..."``,
    ``set_title(...)``, ``suptitle(...)``), falling back to a plain description.
    """
    for image in doctree.findall(nodes.image):
        alt = image.get("alt", "")
        if alt and not alt.endswith((".png", ".jpg", ".svg")):
            continue
        cell = image.parent
        while cell is not None and "cell" not in cell.get("classes", []):
            cell = cell.parent
        source = ""
        if cell is not None:
            source = "\n".join(block.astext() for block in cell.findall(nodes.literal_block)
                               if "cell_input" in block.parent.get("classes", []) or block.get("language"))
        titles = [match.group(2) for match in TITLE.finditer(source) if "{" not in match.group(2)]
        image["alt"] = "Figure: " + "; ".join(titles) if titles else "Figure produced by the code cell above"


NBVAL_LINE = re.compile(r"^[ \t]*#[ \t]*NBVAL_[A-Z_]+[^\n]*(?:\n|$)", re.MULTILINE)


def strip_nbval_markers(source: str) -> str:
    """Remove whole lines that are nbval test markers (``# NBVAL_IGNORE_OUTPUT`` ...)."""
    return NBVAL_LINE.sub("", source)


def _strip_nbval_markers(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Readers never see the test markers: they stay in the notebook (nbval reads them there)."""
    for block in doctree.findall(nodes.literal_block):
        parent = block.parent
        if parent is None or "cell_input" not in parent.get("classes", []):
            continue
        text = block.astext()
        if "NBVAL_" not in text:
            continue
        stripped = strip_nbval_markers(text)
        block.children = [nodes.Text(stripped)]
        block.rawsource = stripped


# TeX a title may hold that has a one-character Unicode form
TITLE_SYMBOLS = {
    **{f"\\{name}": chr(code) for name, code in [
        ("alpha", 0x3B1), ("beta", 0x3B2), ("gamma", 0x3B3), ("delta", 0x3B4), ("epsilon", 0x3B5),
        ("varepsilon", 0x3B5), ("zeta", 0x3B6), ("eta", 0x3B7), ("theta", 0x3B8), ("kappa", 0x3BA),
        ("lambda", 0x3BB), ("mu", 0x3BC), ("nu", 0x3BD), ("xi", 0x3BE), ("pi", 0x3C0), ("rho", 0x3C1),
        ("sigma", 0x3C3), ("tau", 0x3C4), ("phi", 0x3C6), ("varphi", 0x3C6), ("chi", 0x3C7),
        ("psi", 0x3C8), ("omega", 0x3C9), ("Gamma", 0x393), ("Delta", 0x394), ("Theta", 0x398),
        ("Lambda", 0x39B), ("Sigma", 0x3A3), ("Phi", 0x3A6), ("Psi", 0x3A8), ("Omega", 0x3A9),
        ("infty", 0x221E), ("nabla", 0x2207), ("partial", 0x2202)]},
}


class PlainTitleMath(SphinxTransform):
    """``# The $\\beta$-VAE`` -> "The β-VAE" everywhere a title goes (tab, sidebar, links).

    Titles reach places MathJax never typesets: the browser tab, link texts (``{doc}``) and the
    sidebar of pages that load no MathJax. A title's math that is a single symbol with a
    Unicode form is replaced by it; any other math in a title is left alone (the page sweep
    reports it as raw TeX).
    """

    default_priority = 100

    def apply(self, **kwargs) -> None:
        for title in self.document.findall(nodes.title):
            for math in list(title.findall(nodes.math)):
                symbol = TITLE_SYMBOLS.get(math.astext().strip())
                if symbol is not None:
                    math.parent.replace(math, nodes.Text(symbol))


def _dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Drop repeated <script> entries (same file or same inline body), keeping the first.

    sphinx-thebe and sphinx-togglebutton register their inline scripts once per build phase,
    which with Jupyter Book puts ``const THEBE_JS_URL = ...`` on every page twice: a
    SyntaxError in the console of every page.
    """
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, kept = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {}) or {}
        key = (str(getattr(script, "filename", script) or ""), attributes.get("body", ""),
               tuple(sorted((k, str(v)) for k, v in attributes.items() if k not in ("body", "priority"))))
        if key in seen:
            continue
        seen.add(key)
        kept.append(script)
    scripts[:] = kept


# ipywidgets' HTML manager typesets HTML widgets with MathJax 2 (MathJax.Hub.Queue); the book
# loads MathJax 3. Give every MathJax object (the config, then MathJax 3 itself) a Hub.Queue
# that hands "Typeset" jobs to MathJax 3's typesetPromise once it is ready.
MATHJAX2_SHIM = """(function () {
  function queue() {
    for (var i = 0; i < arguments.length; i++) {
      var job = arguments[i];
      if (!Array.isArray(job) || job[0] !== "Typeset" || !job[2]) continue;
      var element = job[2];
      var mj = window.MathJax;
      var ready = mj && mj.startup && mj.startup.promise ? mj.startup.promise : Promise.resolve();
      ready.then(function () { if (window.MathJax.typesetPromise) return window.MathJax.typesetPromise([element]); });
    }
  }
  function install(mj) {
    if (mj && typeof mj === "object" && !Object.prototype.hasOwnProperty.call(mj, "Hub"))
      Object.defineProperty(mj, "Hub", {value: {Queue: queue}, enumerable: false, configurable: true});
  }
  var current = window.MathJax;
  install(current);
  Object.defineProperty(window, "MathJax", {configurable: true, enumerable: true,
    get: function () { return current; }, set: function (value) { current = value; install(value); }});
})();"""


def _widget_page_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """On pages that load the widget manager: the MathJax 2 shim, and where its fonts are.

    The manager finds its fonts relative to its AMD module ids ("@jupyter-widgets/base",
    "@jupyter-widgets/html-manager/dist/..."), i.e. next to the page: six 404s per page.
    Mapping those ids to the vendored folder makes them load from _static/.
    """
    scripts = context.get("script_files") or []
    names = [str(getattr(script, "filename", script) or "") for script in scripts]
    if not any(name.endswith("embed-amd.js") for name in names):
        return
    app.add_js_file(None, body=MATHJAX2_SHIM, priority=100)
    if any(name.endswith(WIDGET_MANAGER) and not name.startswith("http") for name in names):
        folder = context["pathto"]("_static/html-manager/dist", 1)
        # the fonts' public path is the folder of whichever module's id loads them first
        paths = {"@jupyter-widgets/html-manager/dist": folder, "@jupyter-widgets": folder}
        app.add_js_file(None, body=f"var require = {{paths: {json.dumps(paths)}}};", priority=100)


def setup(app: Sphinx) -> dict:
    app.add_transform(PlainTitleMath)
    app.connect("doctree-resolved", _alt_text_for_notebook_figures)
    app.connect("doctree-resolved", _strip_nbval_markers)
    app.connect("config-inited", _use_local_assets, priority=900)
    app.connect("config-inited", _add_book_assets, priority=901)
    app.connect("html-page-context", _widget_page_scripts, priority=900)
    app.connect("html-page-context", _dedupe_scripts, priority=999)
    app.add_css_file("genlab.css")
    app.add_js_file("genlab.js", defer="defer")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
