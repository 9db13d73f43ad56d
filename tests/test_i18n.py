"""The Chinese edition's machinery: the markup a translation must keep, the catalog check, the edition links."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


i18n = _load("genlab_i18n", ROOT / "scripts" / "i18n.py")
editions = _load("genlab_editions", ROOT / "book" / "_ext" / "editions.py")


def test_markup_keeps_math_code_roles_and_urls():
    msgid = ("The bound $-\\log p(x) \\le L$ of {doc}`the ELBO chapter <elbo>` uses `vlb_bits_per_dim`; "
             "see [the paper](https://arxiv.org/abs/2006.11239) and {doc}`flow_matching`.")
    good = ("{doc}`证据下界一章 <elbo>` 中的界 $-\\log p(x) \\le L$ 使用 `vlb_bits_per_dim`；"
            "见[论文](https://arxiv.org/abs/2006.11239)与 {doc}`flow_matching`。")
    assert i18n.markup_problem(msgid, good) is None  # titles and link texts may change, targets may not
    assert "lost $-\\log p(x) \\le L$" in i18n.markup_problem(msgid, good.replace("$-\\log p(x) \\le L$", "界"))
    assert "lost {doc}elbo" in i18n.markup_problem(msgid, good.replace("<elbo>", "<vae>"))
    assert "lost `vlb_bits_per_dim`" in i18n.markup_problem(msgid, good.replace("`vlb_bits_per_dim`", "函数"))
    assert "lost https://arxiv.org" in i18n.markup_problem(msgid, good.replace("2006.11239", "2006.1123"))
    assert "added $x$" in i18n.markup_problem("plain text", "纯文本 $x$")


def test_markup_tells_display_from_inline_math():
    msgid = "Since $$a = b$$ holds, $c$ follows."
    assert sorted(i18n.markup(msgid)) == ["$$a = b$$", "$c$"]
    assert i18n.markup_problem(msgid, "因为 $$a = b$$ 成立，所以 $c$ 成立。") is None
    assert i18n.markup_problem(msgid, "因为 $a = b$ 成立，所以 $c$ 成立。") is not None


def _template(messages: list[str]) -> Catalog:
    template = Catalog(locale=None, project="genlab")
    for message in messages:
        template.add(message)
    return template


def _write(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, catalog, width=0)


def test_check_fails_above_two_percent_and_names_the_page(tmp_path, monkeypatch, capsys):
    """100 messages: 2 untranslated pass the check, a third fails it; a changed English message turns fuzzy."""
    monkeypatch.setattr(i18n, "LOCALES", tmp_path / "locales")
    templates = tmp_path / "gettext"
    messages = [f"Sentence number {i}." for i in range(100)]
    _write(_template(messages), templates / "book" / "page.pot")
    catalog = Catalog(locale="zh_CN", project="genlab")
    for i, message in enumerate(messages[:98]):
        catalog.add(message, f"第 {i} 句。")
    _write(catalog, i18n.catalog_path("book/page", "zh_CN"))
    args = ["--templates", str(templates), "--lang", "zh_CN"]
    assert i18n.main(["check", *args]) == 0
    assert "book/page" in capsys.readouterr().out  # listed: it still has work

    catalog.delete(messages[97])
    _write(catalog, i18n.catalog_path("book/page", "zh_CN"))
    assert i18n.main(["check", *args]) == 1
    assert "FAILED: 3.0% untranslated or fuzzy" in capsys.readouterr().out

    # the English of message 0 changes: update keeps the old translation as a fuzzy guess
    messages[0] = "Sentence number 0, reworded."
    _write(_template(messages), templates / "book" / "page.pot")
    assert i18n.main(["update", *args]) == 0
    with i18n.catalog_path("book/page", "zh_CN").open("rb") as f:
        updated = read_po(f)
    assert updated[messages[0]].fuzzy and updated[messages[0]].string == "第 0 句。"
    assert "Sentence number 0." not in updated  # the old message is gone, not kept as obsolete
    stats = i18n.page_stats("book/page", updated)  # new messages may get fuzzy guesses too: still missing
    assert (stats.total, stats.missing, stats.translated) == (100, 4, 96)


def test_check_fails_on_a_broken_formula(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(i18n, "LOCALES", tmp_path / "locales")
    templates = tmp_path / "gettext"
    _write(_template(["The loss is $\\log D(x)$."]), templates / "book" / "page.pot")
    catalog = Catalog(locale="zh_CN")
    catalog.add("The loss is $\\log D(x)$.", "损失是 $\\log D(x$。")
    _write(catalog, i18n.catalog_path("book/page", "zh_CN"))
    assert i18n.main(["check", "--templates", str(templates)]) == 1
    assert "lost $\\log D(x)$" in capsys.readouterr().out


def test_missing_templates_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no such folder"):
        i18n.main(["check", "--templates", str(tmp_path / "nothing")])


def test_edition_links_point_at_the_same_page():
    assert editions.switch_href("book/intro", "en") == "../zh/book/intro.html"
    assert editions.switch_href("book/intro", "zh_CN") == "../../book/intro.html"
    assert editions.switch_href("book/07_diffusion/scoreboard", "zh_CN") == "../../../book/07_diffusion/scoreboard.html"
    with pytest.raises(ValueError, match="no edition for language 'fr'"):
        editions.switch_href("book/intro", "fr")


def test_emphasis_next_to_chinese_punctuation_is_a_markup_problem():
    """CommonMark does not close ``**`` that follows a full-width bracket and precedes a letter."""
    msgid = "**Correction:** the discriminator is optimal."
    assert i18n.markup_problem(msgid, "**更正**：该判别器是最优的。") is None
    assert "literal asterisks" in i18n.markup_problem(msgid, "**更正（注）**该判别器是最优的。")
    assert i18n.markup_problem(msgid, "**更正（注）** 该判别器是最优的。") is None


def test_a_translation_that_parses_as_a_list_is_a_markup_problem():
    """Sphinx drops a translated table cell "1. 概念" (it parses as a list); "1\\. 概念" is kept."""
    assert "list item" in i18n.markup_problem("1. Concepts", "1. 概念")
    assert i18n.markup_problem("1. Concepts", "1\\. 概念") is None
