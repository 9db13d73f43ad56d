#!/usr/bin/env python3
"""Author tool: turn a jupytext "percent" script into a book notebook (no outputs yet).

    python scripts/py2nb.py /tmp/nbsrc/value_function.py book/02_gan_math/value_function.ipynb

Sets the kernel metadata and inserts the genlab install cell (scripts/sync_notebooks.py).
Then execute it: GENLAB_PROFILE=standard python3 tasks.py execute book/02_gan_math/value_function.ipynb
Needs jupytext (pip install jupytext; part of the `dev` extra).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jupytext

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync_notebooks import sync  # noqa: E402


def convert(source: Path, destination: Path) -> None:
    notebook = jupytext.read(source, fmt="py:percent")
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    destination.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(notebook, destination, fmt="ipynb")
    sync(destination, check=False)
    # stable cell ids make diffs readable
    data = json.loads(destination.read_text(encoding="utf-8"))
    for index, cell in enumerate(data["cells"]):
        cell["id"] = cell.get("id") if cell.get("id") == "genlab-install" else f"cell-{index}"
    destination.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
