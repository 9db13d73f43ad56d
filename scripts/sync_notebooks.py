#!/usr/bin/env python3
"""Keep every notebook's first code cell (the genlab install cell) in sync with _config.yml.

The repository URL lives in one place, ``_config.yml`` (``repository.url``); this script writes
it into the install cell of each notebook under ``book/``. ``--check`` only reports notebooks
that are out of date (exit 1), which the test command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MARKER = "# Install genlab when it is missing (e.g. on Colab); does nothing where it is installed."


def install_cell_source() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    url = config["repository"]["url"]
    return "\n".join([
        MARKER,
        "import importlib.util",
        "import subprocess",
        "import sys",
        "",
        'if importlib.util.find_spec("genlab") is None:',
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "genlab @ git+{url}"], check=True)',
    ])


def sync(path: Path, check: bool) -> bool:
    """Return True when the notebook was (or, with check, would be) changed."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    source = install_cell_source()
    code_cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    first = code_cells[0] if code_cells else None
    if first is not None and "".join(first["source"]).startswith(MARKER):
        if "".join(first["source"]) == source:
            return False
        if not check:
            first["source"] = source.splitlines(keepends=True)
    elif not check:
        cell = {"cell_type": "code", "execution_count": None, "id": "genlab-install",
                "metadata": {"tags": ["remove-cell"]}, "outputs": [],
                "source": source.splitlines(keepends=True)}
        index = notebook["cells"].index(first) if first is not None else len(notebook["cells"])
        notebook["cells"].insert(index, cell)
    if not check:
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def main() -> int:
    check = "--check" in sys.argv
    stale = [p for p in sorted((ROOT / "book").rglob("*.ipynb"))
             if ".ipynb_checkpoints" not in p.parts and sync(p, check)]
    for path in stale:
        print(("out of date: " if check else "updated: ") + str(path.relative_to(ROOT)))
    if check and stale:
        print("run: python3 tasks.py sync")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
