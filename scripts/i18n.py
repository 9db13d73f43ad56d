#!/usr/bin/env python3
"""The translation catalogs of the book's other editions (today: 中文, zh_CN).

One source, many languages, the way Sphinx projects (the Python documentation among them) do it:
Sphinx's gettext builder extracts every translatable message of every page (paragraphs, list
items, headings, table cells, admonitions, exercise and solution text) into a template; each
page has a catalog ``locales/<lang>/LC_MESSAGES/<page>.po`` whose ``msgstr`` entries hold the
translations; the translated edition is the same build with ``language`` set. Code, outputs and
math are never extracted, so the editions cannot drift apart in code or results.

    python scripts/i18n.py update [--lang zh_CN]   extract, then merge into the catalogs: new
                                                   messages untranslated, changed ones fuzzy
    python scripts/i18n.py check  [--lang zh_CN]   extract and compare, writing nothing: fails when
                                                   more than 2% of the messages are untranslated or
                                                   fuzzy, or a translation breaks the markup; lists
                                                   the pages that need work
    python scripts/i18n.py stats  [--lang zh_CN]   the per-page table, never fails
    python scripts/i18n.py build  [--lang zh_CN] [-W]
                                                   build that edition into _build/html/<folder>/
                                                   (after the English one, which owns _build/html/)

``tasks.py i18n`` runs ``update``; ``tasks.py test`` runs ``check``. A translation must keep the
message's math (``$...$``), inline code and role targets (``{doc}`page```), and link URLs
exactly; everything else is free text.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "locales"
MAX_MISSING = 0.02  # the share of untranslated or fuzzy messages the check accepts
TITLES = {"zh_CN": "生成式 AI 动手实践"}  # each translated edition's book title

# Markup a translation must carry over unchanged.
_DISPLAY_MATH = re.compile(r"\$\$.+?\$\$", re.S)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)(?:\\.|[^$\\])+?\$")
_ROLE = re.compile(r"\{([a-z:]+)\}`([^`]*)`")
_CODE = re.compile(r"(`+)(.+?)\1", re.S)
_URL = re.compile(r"\]\(([^)\s]+)\)|<(https?://[^>\s]+)>")


def markup(text: str) -> Counter:
    """The pieces of ``text`` a translation must keep: math, inline code, role targets, link URLs.

    >>> sorted(markup("See {doc}`the flows <normalizing_flows>` and `x.sum()`: $p(x)$.").elements())
    ['$p(x)$', '`x.sum()`', '{doc}normalizing_flows']
    """
    found: Counter = Counter()
    rest = text
    found.update(_DISPLAY_MATH.findall(rest))
    rest = _DISPLAY_MATH.sub(" ", rest)
    for role, content in _ROLE.findall(rest):
        target = re.search(r"<([^<>]+)>\s*$", content)  # {doc}`title <target>`: the title may change
        found[f"{{{role}}}{target.group(1) if target else content}"] += 1
    rest = _ROLE.sub(" ", rest)
    for ticks, code in _CODE.findall(rest):
        found[f"{ticks}{code}{ticks}"] += 1
    rest = _CODE.sub(" ", rest)
    found.update(_INLINE_MATH.findall(rest))
    for md, angle in _URL.findall(rest):
        found[md or angle] += 1
    return found


_PARSER = None
_BLOCK_START = re.compile(r"(\d+[.)]|[-*+]|#{1,6}|>)(\s|$)")


def stray_asterisks(text: str) -> int:
    """How many ``*`` a reader would see in ``text`` rendered (CommonMark's rules, as MyST parses it).

    Chinese text trips CommonMark's flanking rules: in ``**粗体（注）**确`` the closing ``**`` follows
    punctuation and precedes a letter, so it closes nothing and all four asterisks show.

    >>> stray_asterisks("**粗体**：文本"), stray_asterisks("**粗体（注）**确"), stray_asterisks("$a * b$")
    (0, 4, 0)
    """
    global _PARSER
    if _PARSER is None:
        from markdown_it import MarkdownIt
        from mdit_py_plugins.dollarmath import dollarmath_plugin

        _PARSER = MarkdownIt("commonmark").use(dollarmath_plugin)
    return sum(token.content.count("*") for block in _PARSER.parse(text) for token in block.children or []
               if token.type == "text")


def markup_problem(msgid: str, msgstr: str) -> str | None:
    """Why ``msgstr`` is not a faithful carrier of ``msgid``'s markup, or None when it is."""
    expected, got = markup(msgid), markup(msgstr)
    parts = []
    if expected != got:
        missing, extra = expected - got, got - expected
        if missing:
            parts.append("lost " + ", ".join(sorted(missing)))
        if extra:
            parts.append("added " + ", ".join(sorted(extra)))
    if msgstr != msgid and _BLOCK_START.match(msgstr):
        parts.append("starts like a list item, heading or quote: Sphinx parses a translation as a block and "
                     "drops one that is not a paragraph; escape the marker (e.g. `1\\.`)")
    if stray_asterisks(msgstr) > stray_asterisks(msgid):
        parts.append("shows literal asterisks: a ** or * that follows Chinese punctuation and precedes a letter "
                     "(or the reverse) closes nothing; move the punctuation outside or add a space")
    return "; ".join(parts) or None


@dataclass
class PageStats:
    page: str
    total: int = 0
    translated: int = 0
    fuzzy: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        """Messages a reader of the translation would see in English: untranslated or fuzzy."""
        return self.total - self.translated


def _jupyter_book() -> str:
    """The jupyter-book beside this Python (the project's .venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("jupyter-book")
    return str(beside) if beside.exists() else "jupyter-book"


def extract(out: Path) -> Path:
    """Run Sphinx's gettext builder (through Jupyter Book) into ``out``; returns the templates' folder."""
    command = [_jupyter_book(), "build", str(ROOT),
               "--builder", "custom", "--custom-builder", "gettext", "--path-output", str(out), "--all", "-q"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    templates = out / "_build" / "gettext"
    if done.returncode != 0 or not templates.is_dir():
        raise SystemExit(f"the gettext build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return templates


def templates_of(folder: Path) -> dict[str, Catalog]:
    """page name (``book/03_vae/elbo``) -> its message template."""
    found = {}
    for pot in sorted(folder.rglob("*.pot")):
        with pot.open("rb") as f:
            found[pot.relative_to(folder).with_suffix("").as_posix()] = read_po(f)
    return found


def catalog_path(page: str, lang: str) -> Path:
    return LOCALES / lang / "LC_MESSAGES" / f"{page}.po"


def merged(page: str, template: Catalog, lang: str) -> Catalog:
    """The page's catalog brought up to date with its template (Babel's msgmerge)."""
    path = catalog_path(page, lang)
    if path.exists():
        with path.open("rb") as f:
            catalog = read_po(f, locale=lang)
    else:
        catalog = Catalog(locale=lang, project="genlab", fuzzy=False, creation_date=template.creation_date,
                          header_comment=f"# {lang} translation of the genlab book's page {page}.\n"
                                         "# Text: CC BY 4.0, like the English edition. Updated by "
                                         "`python3 tasks.py i18n`; see scripts/i18n.py.",
                          language_team=f"genlab {lang}", msgid_bugs_address="", last_translator="")
    created = catalog.creation_date
    catalog.update(template, no_fuzzy_matching=False, update_header_comment=False)
    catalog.creation_date = created  # only the messages may change: no date churn in git
    catalog.obsolete.clear()  # messages that left the page: nothing to keep them for
    return catalog


def page_stats(page: str, catalog: Catalog) -> PageStats:
    stats = PageStats(page)
    for message in catalog:
        if not message.id:
            continue  # the header
        stats.total += 1
        if message.fuzzy:
            stats.fuzzy += 1
        elif message.string:
            stats.translated += 1
            problem = markup_problem(message.id, message.string)
            if problem:
                stats.problems.append(f"{message.id[:60]!r}: {problem}")
    return stats


def write_catalog(catalog: Catalog, path: Path) -> None:
    """Atomically: a catalog is someone's hours of translation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, suffix=".tmp") as f:
        write_po(f, catalog, width=0, omit_header=False, include_lineno=False)
    os.replace(f.name, path)


def report(all_stats: list[PageStats], lang: str) -> tuple[float, int]:
    total = sum(s.total for s in all_stats)
    missing = sum(s.missing for s in all_stats)
    fuzzy = sum(s.fuzzy for s in all_stats)
    problems = sum(len(s.problems) for s in all_stats)
    share = missing / total if total else 0.0
    print(f"{lang}: {total} messages in {len(all_stats)} pages; translated {total - missing} "
          f"({100 * (1 - share):.1f}%), fuzzy {fuzzy}, untranslated {missing - fuzzy}, markup problems {problems}")
    needing = [s for s in all_stats if s.missing or s.problems]
    if needing:
        print(f"\n{'page':<48} {'messages':>8} {'untranslated':>12} {'fuzzy':>6} {'markup':>6}")
        for s in sorted(needing, key=lambda s: -s.missing):
            print(f"{s.page:<48} {s.total:>8} {s.missing - s.fuzzy:>12} {s.fuzzy:>6} {len(s.problems):>6}")
        for s in needing:
            for problem in s.problems[:5]:
                print(f"  {s.page}: {problem}")
    return share, problems


def build(lang: str, strict: bool) -> int:
    """Build the ``lang`` edition: the book's _config.yml with ``language`` and the title changed."""
    import yaml

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from editions import EDITIONS  # the folder the language switcher links to

    folder = EDITIONS[lang][0]
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    config["title"] = TITLES[lang]
    config["sphinx"]["config"]["language"] = lang
    config["sphinx"]["local_extensions"] = {name: str((ROOT / path).resolve())  # relative to the config file
                                            for name, path in config["sphinx"]["local_extensions"].items()}
    work = ROOT / "_build" / f"edition-{folder}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "_config.yml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    command = [_jupyter_book(), "build", "--all", "--keep-going",
               "--config", str(work / "_config.yml"), "--toc", str(ROOT / "_toc.yml"), "--path-output", str(work),
               str(ROOT)]
    if strict:
        command.insert(2, "-W")
    print("+", " ".join(command), flush=True)
    done = subprocess.run(command, cwd=ROOT)
    built, target = work / "_build" / "html", ROOT / "_build" / "html" / folder
    if (built / "index.html").exists():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(built, target)
        print(f"{lang} edition: {target / 'book' / 'intro.html'}")
    return done.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["update", "check", "stats", "build"])
    parser.add_argument("--lang", default="zh_CN")
    parser.add_argument("--templates", type=Path, help="use these .pot files instead of extracting")
    parser.add_argument("--page", action="append", default=[],
                        help="only pages whose name starts with this (repeatable)")
    parser.add_argument("-W", dest="strict", action="store_true", help="build: warnings are errors")
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(args.lang, args.strict)
    with tempfile.TemporaryDirectory(prefix="genlab-gettext-") as tmp:
        if args.templates is not None and not args.templates.is_dir():
            raise SystemExit(f"--templates {args.templates}: no such folder (the .pot files of a gettext build)")
        folder = args.templates or extract(Path(tmp))
        templates = templates_of(folder)
        all_stats = []
        for page, template in templates.items():
            if args.page and not any(page.startswith(p) for p in args.page):
                continue
            catalog = merged(page, template, args.lang)
            if args.command == "update":
                write_catalog(catalog, catalog_path(page, args.lang))
            all_stats.append(page_stats(page, catalog))
    if args.command == "update" and not args.page:
        known = {catalog_path(page, args.lang) for page in templates}
        for stale in (LOCALES / args.lang / "LC_MESSAGES").rglob("*.po"):
            if stale not in known:
                stale.unlink()
                print(f"removed {stale.relative_to(ROOT)} (its page left the book)")
    share, problems = report(all_stats, args.lang)
    if args.command == "check" and (share > MAX_MISSING or problems):
        print(f"\nFAILED: {100 * share:.1f}% untranslated or fuzzy (at most {100 * MAX_MISSING:.0f}%), "
              f"{problems} markup problems. Translate the pages above in locales/{args.lang}/LC_MESSAGES/ "
              f"(after `python3 tasks.py i18n`), and clear the fuzzy flags you have checked.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
