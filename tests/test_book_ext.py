"""The book's Sphinx extension (book/_ext/offline_assets.py): its doctree transforms, without a build."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
from docutils import nodes  # noqa: E402
from docutils.frontend import get_default_settings  # noqa: E402
from docutils.parsers.rst import Parser  # noqa: E402
from docutils.utils import new_document  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("offline_assets", ROOT / "book" / "_ext" / "offline_assets.py")
offline_assets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(offline_assets)


def _document() -> nodes.document:
    return new_document("<test>", get_default_settings(Parser))


def test_nbval_marker_lines_are_removed_and_nothing_else():
    source = "# NBVAL_IGNORE_OUTPUT\nimport torch\n  # NBVAL_CHECK_OUTPUT  \nx = 1  # keep this comment\nprint(x)"
    assert offline_assets.strip_nbval_markers(source) == "import torch\nx = 1  # keep this comment\nprint(x)"
    code = "print('# NBVAL_SKIP is a marker')"
    assert offline_assets.strip_nbval_markers(code) == code


def _cell(source: str) -> tuple[nodes.document, nodes.literal_block]:
    document = _document()
    cell_input = nodes.container(classes=["cell_input"])
    block = nodes.literal_block(source, source)
    cell_input += block
    document += cell_input
    return document, block


def test_markers_are_stripped_from_cell_inputs_only():
    document, block = _cell("# NBVAL_RAISES_EXCEPTION\nraise ValueError")
    markdown_code = nodes.literal_block("# NBVAL_SKIP\n", "# NBVAL_SKIP\n")  # a code block in the prose
    document += markdown_code
    offline_assets._strip_nbval_markers(None, document, "page")
    cell = next(n for n in document.findall(nodes.literal_block) if "cell_input" in n.parent.get("classes", []))
    assert cell.astext() == "raise ValueError"
    assert markdown_code.astext() == "# NBVAL_SKIP\n", "prose that explains the markers keeps them"


def _title_with_math(tex: str) -> nodes.title:
    title = nodes.title()
    title += nodes.Text("The ")
    title += nodes.math(tex, tex)
    title += nodes.Text("-VAE")
    return title


@pytest.mark.parametrize(("tex", "expected"), [("\\beta", "The β-VAE"), (" \\lambda ", "The λ-VAE"),
                                                ("\\beta_1", "The \\beta_1-VAE")])
def test_title_math_becomes_unicode_when_it_is_one_symbol(tex, expected):
    document = _document()
    section = nodes.section()
    section += _title_with_math(tex)
    document += section
    transform = offline_assets.PlainTitleMath(document)
    transform.apply()
    title = next(document.findall(nodes.title))
    assert title.astext() == expected
    assert bool(list(title.findall(nodes.math))) == (expected.count("\\") > 0)
