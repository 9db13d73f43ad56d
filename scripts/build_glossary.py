#!/usr/bin/env python3
"""Build the bilingual glossary (book/06_outlook/glossary.md) from every chapter's "Key terms" table.

Each chapter ends with a table ``| English | 中文 |`` under a "Key terms" heading; this script
collects them, merges duplicates, and writes one alphabetical page with a letter index: a
heading per letter and one line per term (English, Chinese, the chapters that use it).
``--check`` exits 1 when the page is stale (the test command runs it), so the glossary can
never drift from the chapters.

Duplicates merged: the same English term (any case); a term with and without a trailing
abbreviation ("Inception Score" / "Inception Score (IS)": the longer form is shown); and the
synonyms listed in ALIASES. A new chapter (a new part) needs nothing here: add it to _toc.yml
with its "Key terms" table and run this script. When its terms near-duplicate existing ones,
add a line to ALIASES (variant -> the form to show) and run it again.
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
ABBREVIATION = re.compile(r"\s*\([A-Za-z0-9-]{2,8}\)$")   # "Inception Score (IS)" -> "Inception Score"

# Synonyms and near-duplicates: variant (lower case) -> the English form the glossary shows.
ALIASES = {
    "computational graph": "computation graph",
    "kl divergence": "Kullback-Leibler (KL) divergence",
    "kullback-leibler divergence": "Kullback-Leibler (KL) divergence",
    "equilibrium": "Nash equilibrium",
    "equilibrium (nash equilibrium)": "Nash equilibrium",
    "gaussian mixture": "Gaussian mixture model",
    "logit (raw score)": "logit",
    "precision / recall": "precision and recall",
    "wasserstein distance": "Wasserstein distance / earth mover's distance",
    "seed": "random seed / random state",
    "step size / learning rate": "learning rate (step size)",
    "learning rate": "learning rate (step size)",
    "dequantization": "dequantisation",
    "ddim sampler": "deterministic sampler (DDIM)",
}


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


def _key(term: str) -> str:
    """The merge key of an English term: its alias target, without a trailing abbreviation, lower case."""
    term = ALIASES.get(term.lower(), term)
    return ABBREVIATION.sub("", term).lower()


def _norm(zh: str) -> str:
    """'Wasserstein 距离（推土机距离）' and 'Wasserstein 距离 / 推土机距离' spell one translation."""
    return re.sub(r"[\s()（）/]+", "", zh)


def _add_translation(translations: list[str], zh: str) -> None:
    """Add zh unless it repeats one already there: 'KL散度' and 'KL 散度' are one translation, and
    'KL散度' says less than 'KL散度（相对熵）' (the longer one is kept in the shorter one's place)."""
    for i, known in enumerate(translations):
        if _norm(zh) in _norm(known):
            return
        if _norm(known) in _norm(zh):
            translations[i] = zh
            return
    translations.append(zh)


def short_title(path: Path) -> str:
    """A page's title up to its first colon, as link text ("The β-VAE", not the whole subtitle)."""
    text = _markdown(path)
    match = re.search(r"^# (.+)$", text, re.MULTILINE)
    title = match[1] if match else path.stem
    title = title.replace("$\\beta$", "β").replace("`", "")
    return title.split(":")[0].strip()


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
            shown = ALIASES.get(match["en"].lower(), match["en"])
            entry = terms.setdefault(_key(shown), {"en": shown, "zh": [], "chapters": {}})
            if len(shown) > len(entry["en"]):   # the form with its abbreviation
                entry["en"] = shown
            _add_translation(entry["zh"], match["zh"])
            entry["chapters"].setdefault(docname, short_title(path))
    return terms


def _sort_key(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.replace("\\beta", "beta").lower()) or key


def _letter(key: str) -> str:
    first = _sort_key(key)[:1].upper()
    return first if first.isalpha() else "0-9"


def render(terms: dict[str, dict]) -> str:
    keys = sorted(terms, key=_sort_key)
    letters = list(dict.fromkeys(_letter(k) for k in keys))
    label = {letter: "glossary-" + ("digits" if letter == "0-9" else letter.lower()) for letter in letters}
    lines = [
        "# Glossary: English - 中文",
        "",
        "Every key term of the book with its Chinese equivalent and the chapters that use it,",
        "collected from the \"Key terms\" table at the end of each chapter (by",
        "`scripts/build_glossary.py`; do not edit by hand). Where chapters translate a term",
        "differently, all translations are listed.",
        "",
        " · ".join(f"{{ref}}`{letter} <{label[letter]}>`" for letter in letters),
    ]
    for letter in letters:
        lines += ["", f"({label[letter]})=", f"## {letter}", ""]
        for key in (k for k in keys if _letter(k) == letter):
            entry = terms[key]
            chapters = ", ".join(f"{{doc}}`{title} <{doc}>`" for doc, title in entry["chapters"].items())
            lines.append(f"- **{entry['en']}** · {'; '.join(entry['zh'])} · {chapters}")
    return "\n".join(lines) + "\n"


def main() -> int:
    page = render(collect())
    if "--check" in sys.argv:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != page:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run python scripts/build_glossary.py")
            return 1
        return 0
    OUTPUT.write_text(page, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({sum(line.startswith('- **') for line in page.splitlines())} terms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
