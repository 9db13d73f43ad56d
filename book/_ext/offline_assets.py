"""Sphinx extension: serve MathJax, the widget manager and mermaid from _vendor/ when present,
and add the book's small stylesheet (book/_static/genlab.css).

``python scripts/vendor_assets.py`` fetches them (from the npm registry, integrity-checked);
without that folder the book falls back to the CDN defaults of Sphinx, myst-nb and
sphinxcontrib-mermaid, so a build never fails for want of the local copies.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

logger = logging.getLogger(__name__)
VENDOR = Path(__file__).resolve().parents[2] / "_vendor"


def _use_local_assets(app: Sphinx, config: Config) -> None:
    if not (VENDOR / "mathjax" / "es5" / "tex-mml-chtml.js").exists():
        logger.info("offline_assets: _vendor/ not found; MathJax, widgets and mermaid load from CDNs")
        return
    config.html_static_path = [*config.html_static_path, str(VENDOR)]  # copied into _static/
    config.mathjax_path = "mathjax/es5/tex-mml-chtml.js"
    if (VENDOR / "html-manager" / "dist" / "embed-amd.js").exists():
        config.nb_ipywidgets_js = {
            "requirejs/require.js": {},
            "html-manager/dist/embed-amd.js": {},
        }
    if (VENDOR / "mermaid" / "dist" / "mermaid.esm.min.mjs").exists():
        config.mermaid_use_local = "mermaid/dist/mermaid.esm.min.mjs"
    logger.info("offline_assets: serving MathJax, widgets and mermaid from %s", VENDOR)


def _add_book_css(app: Sphinx, config: Config) -> None:
    config.html_static_path = [*config.html_static_path, str(Path(__file__).resolve().parents[1] / "_static")]


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


def setup(app: Sphinx) -> dict:
    app.connect("doctree-resolved", _alt_text_for_notebook_figures)
    app.connect("config-inited", _use_local_assets, priority=900)
    app.connect("config-inited", _add_book_css, priority=901)
    app.add_css_file("genlab.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
