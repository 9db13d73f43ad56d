#!/usr/bin/env python3
"""Execute notebooks top to bottom, storing their outputs (for the committed book).

    GENLAB_PROFILE=standard python scripts/execute_notebook.py book/02_gan_math/value_function.ipynb
    python scripts/execute_notebook.py --output-dir executed book/**/*.ipynb   # keep the originals

In place by default; with ``--output-dir`` the executed copies go there (same relative paths).
Progress bars are stored as one line of text (scripts/static_progress.py), not as widgets.
Prints the wall time of each notebook, which benchmarks/RESULTS.md collects.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from static_progress import static_progress


def execute(path: Path, output: Path | None = None, timeout: int = 1800) -> float:
    notebook = nbformat.read(path, as_version=4)
    # Minimal tracebacks: a cell that raises on purpose stores the one-line error a reader needs,
    # not 40 lines through torch internals with this machine's paths (readers' own runs keep full ones)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            extra_arguments=["--InteractiveShell.xmode=Minimal"])
    started = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - started
    # Finished tqdm bars are stored as their one-line text, not as widgets (scripts/static_progress.py)
    static_progress(notebook)
    output = output or path
    output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, output)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--output-dir", type=Path, default=None)
    args = parser.parse_args()
    total = 0.0
    for path in args.notebooks:
        output = args.output_dir / path if args.output_dir else None
        seconds = execute(path, output)
        total += seconds
        print(f"{path}: {seconds:.1f} s", flush=True)
    print(f"total: {total:.1f} s")


if __name__ == "__main__":
    main()
