#!/usr/bin/env python3
"""Execute a notebook top to bottom in place, storing its outputs (for the committed book).

    GENLAB_PROFILE=standard python scripts/execute_notebook.py book/02_gan_math/value_function.ipynb

Prints the wall time, which benchmarks/RESULTS.md collects per notebook.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path, timeout: int = 1800) -> float:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    started = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - started
    nbformat.write(notebook, path)
    return elapsed


if __name__ == "__main__":
    for name in sys.argv[1:]:
        seconds = execute(Path(name))
        print(f"{name}: {seconds:.1f} s", flush=True)
