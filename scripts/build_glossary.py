#!/usr/bin/env python3
"""Build the bilingual glossary (book/06_outlook/glossary.md) from every chapter's "Key terms" table.

Each chapter ends with a table ``| English | 中文 |`` under a "Key terms" heading; this script
collects them, merges duplicates (same English term), and writes one alphabetical page
that links each term to the chapters that use it. ``--check`` exits 1 when the page is stale
(the test command runs it), so the glossary can never drift from the chapters.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
OUTPUT = BOOK / "06_outlook" / "glossary.md"
ROW = re.compile(r"^\|\s*(?P<en>[^|]+?)\s*\|\s*(?P<zh>[^|]+?)\s*\|\s*$")


def _markdown(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return path.read_text(encoding="utf-8")


def toc_pages() -> list[Path]:
    """The pages the book builds, in table-of-contents order (pages outside it are drafts)."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    pages = []
    for name in names:
        for suffix in (".md", ".ipynb"):
            if (ROOT / (name + suffix)).exists():
                pages.append(ROOT / (name + suffix))
    return pages


def collect() -> dict[str, dict]:
    terms: dict[str, dict] = {}
    for path in toc_pages():
        if path == OUTPUT:
            continue
        text = _markdown(path)
        start = text.find("Key terms")
        if start < 0:
            continue
        docname = "/" + str(path.relative_to(ROOT).with_suffix(""))
        for line in text[start:].splitlines()[1:]:
            if line.startswith("#"):
                break
            match = ROW.match(line.strip())
            if not match or set(match["en"]) <= set("-: ") or match["en"].lower() == "english":
                continue
            key = match["en"].lower()
            entry = terms.setdefault(key, {"en": match["en"], "zh": [], "chapters": {}})
            if match["zh"] not in entry["zh"]:
                entry["zh"].append(match["zh"])
            entry["chapters"].setdefault(docname, None)
    return terms


def render(terms: dict[str, dict]) -> str:
    lines = [
        "# Glossary: English - 中文",
        "",
        "Every key term of the book with its Chinese equivalent, collected from the \"Key terms\"",
        "table at the end of each chapter (by `scripts/build_glossary.py`; do not edit by hand).",
        "Where chapters translate a term differently, all translations are listed.",
        "",
        "| English | 中文 | introduced in |",
        "|---|---|---|",
    ]
    for key in sorted(terms, key=lambda k: re.sub(r"[^a-z0-9]", "", k.lower()) or k):
        entry = terms[key]
        chapters = ", ".join(f"{{doc}}`{doc}`" for doc in entry["chapters"])  # Sphinx shows each page's title
        lines.append(f"| {entry['en']} | {'; '.join(entry['zh'])} | {chapters} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    page = render(collect())
    if "--check" in sys.argv:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != page:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run python scripts/build_glossary.py")
            return 1
        return 0
    OUTPUT.write_text(page, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({page.count(chr(10)) - 8} terms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
