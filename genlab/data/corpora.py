"""Text corpora that need no download, for the character-level models.

* :func:`python_source_corpus` - Python standard-library source ("code generation");
* :func:`stdlib_docstring_corpus` - English prose: the docstrings of the same modules;
* :func:`book_text_corpus` - the markdown of this book's own chapters (needs the repository).

The standard-library corpora differ slightly between Python versions (the
files themselves change); :func:`corpus_fingerprint` says which text you got.

See: book/05_applications/text_generation.ipynb.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sysconfig
from pathlib import Path

__all__ = [
    "STDLIB_MODULES",
    "CharTokenizer",
    "book_text_corpus",
    "corpus_fingerprint",
    "python_source_corpus",
    "stdlib_docstring_corpus",
    "train_val_split",
]

# Pure-Python modules present in every CPython since 3.8, in a fixed order.
STDLIB_MODULES = (
    "textwrap.py", "string.py", "fractions.py", "heapq.py", "bisect.py", "shlex.py",
    "calendar.py", "difflib.py", "statistics.py", "pprint.py", "argparse.py", "csv.py",
    "dataclasses.py", "functools.py", "inspect.py", "random.py", "shutil.py", "tempfile.py",
    "typing.py", "configparser.py", "logging/__init__.py",
    "json/decoder.py", "json/encoder.py", "email/message.py", "http/client.py",
    "collections/__init__.py", "enum.py", "locale.py", "gettext.py", "ftplib.py",
)


def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_files() -> list[Path]:
    root = _stdlib_dir()
    files = [root / name for name in STDLIB_MODULES if (root / name).exists()]
    if not files:
        raise FileNotFoundError(f"no standard-library source found under {root}")
    return files


def python_source_corpus(max_chars: int | None = 1_000_000) -> str:
    """Concatenated source of :data:`STDLIB_MODULES` (about 1.3 MB in full), cut to ``max_chars``."""
    text = "\n\n".join(path.read_text(encoding="utf-8") for path in _stdlib_files())
    return text[:max_chars] if max_chars else text


def stdlib_docstring_corpus(max_chars: int | None = None) -> str:
    """English prose: every module, class and function docstring of :data:`STDLIB_MODULES`."""
    pieces: list[str] = []
    for path in _stdlib_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40:
                    pieces.append(doc.strip())
    text = "\n\n".join(pieces)
    return text[:max_chars] if max_chars else text


def book_text_corpus(book_dir: str | Path | None = None, max_chars: int | None = None) -> str:
    """The prose of this book: markdown files and notebook markdown cells under ``book_dir``.

    ``book_dir`` defaults to the ``book/`` folder of the repository this package
    sits in; a pip-installed genlab without the repository raises a clear error.
    """
    root = Path(book_dir) if book_dir else Path(__file__).resolve().parents[2] / "book"
    if not root.is_dir():
        raise FileNotFoundError(
            f"book folder {root} not found: book_text_corpus needs a clone of the repository; "
            "use stdlib_docstring_corpus() for prose that is always available"
        )
    pieces: list[str] = []
    for path in sorted(root.rglob("*")):
        if "_build" in path.parts or ".ipynb_checkpoints" in path.parts:
            continue
        if path.suffix == ".md":
            pieces.append(path.read_text(encoding="utf-8"))
        elif path.suffix == ".ipynb":
            cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
            pieces.extend("".join(c["source"]) for c in cells if c.get("cell_type") == "markdown")
    text = "\n\n".join(p.strip() for p in pieces if p.strip())
    if not text:
        raise FileNotFoundError(f"no markdown text found under {root}")
    return text[:max_chars] if max_chars else text


def train_val_split(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Split a corpus into a leading training part and a held-out tail."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    cut = int(len(text) * (1.0 - val_fraction))
    return text[:cut], text[cut:]


def corpus_fingerprint(text: str) -> str:
    """Length and short SHA-256 of a corpus, to say exactly which text a result used."""
    return f"{len(text):,} chars, sha256 {hashlib.sha256(text.encode()).hexdigest()[:12]}"


class CharTokenizer:
    """Characters <-> integer ids, built from a training text.

    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.decode(tok.encode("hell"))
    'hell'

    Characters not seen in the training text raise a ``KeyError`` naming them.
    See: book/05_applications/text_generation.ipynb.
    """

    def __init__(self, chars: list[str]) -> None:
        if len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer: duplicate characters in the vocabulary")
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str):
        import torch

        unknown = sorted(set(text) - self.index.keys())
        if unknown:
            raise KeyError(f"characters not in the vocabulary: {unknown[:10]!r}")
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)
