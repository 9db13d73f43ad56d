"""Sphinx extension: the two editions of the book (English and 中文) link to each other.

The English edition is built into ``_build/html/`` and the Chinese one, from the same sources
and the catalogs in ``locales/zh_CN/``, into ``_build/html/zh/`` (``python3 tasks.py book``).
Every page gets a small link, above its content, to the same page in the other edition; the link
is relative, so it works from a file system, a local server and GitHub Pages alike.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.locale import init as init_locale
from sphinx.util.i18n import docname_to_domain

# language code -> (folder under _build/html, the other edition's link text); scripts/i18n.py builds
# each translated edition into its folder
EDITIONS = {"en": ("", "中文版"), "zh_CN": ("zh", "English edition")}


def switch_href(pagename: str, language: str) -> str:
    """The relative URL, from ``pagename`` in ``language``'s edition, of the same page in the other one.

    >>> switch_href("book/03_vae/elbo", "en")
    '../../zh/book/03_vae/elbo.html'
    >>> switch_href("book/03_vae/elbo", "zh_CN")
    '../../../book/03_vae/elbo.html'
    """
    if language not in EDITIONS:
        raise ValueError(f"no edition for language {language!r}; known: {sorted(EDITIONS)}")
    up = "../" * pagename.count("/")
    if language == "en":
        return f"{up}{EDITIONS['zh_CN'][0]}/{pagename}.html"
    return f"{up}../{pagename}.html"


def _add_switch(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    language = app.config.language or "en"
    if doctree is None or language not in EDITIONS or "body" not in context:
        return  # search page, genindex: no counterpart worth linking
    label = EDITIONS[language][1]
    lang = "zh-Hans" if language == "en" else "en"
    link = (f'<p class="genlab-edition"><a href="{switch_href(pagename, language)}" hreflang="{lang}" '
            f'lang="{lang}">{label}</a></p>\n')
    context["body"] = link + context["body"]


def _translate_toc_captions(app: Sphinx, doctree: nodes.document) -> None:
    """The table of contents' part captions ("Part 1: Concepts"), from the root page's catalog.

    sphinx-external-toc inserts the toctrees after Sphinx's own translation step has run, so their
    captions (extracted into the root page's catalog like any message) must be translated here.
    """
    language = app.config.language or "en"
    if language == "en":
        return
    domain = docname_to_domain(app.env.docname, app.config.gettext_compact)
    dirs = [str(Path(app.srcdir, folder)) for folder in app.config.locale_dirs]
    catalog, found = init_locale(dirs, language, domain)
    if not found:
        return
    for toctree in doctree.findall(addnodes.toctree):
        caption = toctree.get("caption")
        if caption:
            toctree["caption"] = catalog.gettext(caption)


def setup(app: Sphinx) -> dict:
    app.connect("doctree-read", _translate_toc_captions)
    app.connect("html-page-context", _add_switch)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
