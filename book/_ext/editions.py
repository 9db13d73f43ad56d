"""Sphinx extension: the two editions of the book (English and 中文) link to each other.

The English edition is built into ``_build/html/`` and the Chinese one, from the same sources
and the catalogs in ``locales/zh_CN/``, into ``_build/html/zh/`` (``python3 tasks.py book``).
Every page gets a small link, above its content, to the same page in the other edition; the link
is relative, so it works from a file system, a local server and GitHub Pages alike.
"""

from __future__ import annotations

from sphinx.application import Sphinx

# language code -> (folder under _build/html, the other edition's link text)
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
        return f"{up}zh/{pagename}.html"
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


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", _add_switch)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
