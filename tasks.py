#!/usr/bin/env python3
"""The project's two commands (and a few for authors), using nothing but Python and pip.

    python3 tasks.py book    set up .venv, install genlab with the book tools, build the HTML book:
                             English in _build/html/, 中文 (from locales/zh_CN) in _build/html/zh/
    python3 tasks.py test    the same set-up, then lint, a book build with warnings as errors,
                             unit tests, notebook tests (quick profile) and browser tests of the
                             rendered pages (headless Chromium; installed with apt-get when root)

For authors:
    python3 tasks.py setup                       only create/update .venv
    python3 tasks.py lab                         set up, then open the notebooks in JupyterLab
    python3 tasks.py execute [NOTEBOOK ...]      re-run notebooks in place and store their outputs
                                                 (profile from GENLAB_PROFILE, default standard)
    python3 tasks.py sync                        rewrite each notebook's install cell from _config.yml
                                                 and the glossary from the chapters' key-term tables
    python3 tasks.py i18n                        update the translation catalogs (locales/zh_CN) from
                                                 the English pages: new text untranslated, changed fuzzy

Environment: GENLAB_PROFILE (quick/standard/full), GENLAB_DATA_DIR (data cache),
GENLAB_OFFLINE=1 (never download), GENLAB_CHECKPOINT_DIR (saved runs shared by notebooks;
`test` uses a fresh temporary one). Re-running is cheap: the install step is skipped while
pyproject.toml and the constraints file are unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
CONSTRAINTS = ROOT / ".ci" / "constraints.txt"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def run(*cmd: str | Path, env: dict | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    started = time.perf_counter()
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, env={**os.environ, **(env or {})})
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    if result.returncode != 0:
        sys.exit(result.returncode)


def setup() -> None:
    """Create .venv and install genlab (editable) with the book, test and lab extras, pinned by the constraints."""
    if sys.version_info < (3, 10):  # noqa: UP036 - tasks.py runs before the venv exists
        sys.exit(f"genlab needs Python >= 3.10; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".genlab-installed"
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + CONSTRAINTS.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == key:
        return
    run(PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "-c", CONSTRAINTS, "-e", ".[book,test,lab]")
    stamp.write_text(key)


def vendor_assets() -> None:
    """Local copies of MathJax, the widget manager and mermaid (best effort: else the CDN is used)."""
    subprocess.run([str(PYTHON), "scripts/vendor_assets.py"], cwd=ROOT)


def ensure_chromium() -> None:
    """The browser test needs Chromium: install Debian's package when we are root on Debian."""
    if shutil.which("chromium") or os.environ.get("GENLAB_CHROMIUM"):
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        print("installing Chromium for the browser test (apt-get)", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                       stdout=subprocess.DEVNULL, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not shutil.which("chromium"):
        print("no Chromium: the browser tests will be skipped (set GENLAB_CHROMIUM to a Chromium binary)")


def build_book(strict: bool = True) -> None:
    """Both editions: English into _build/html/, then 中文 into _build/html/zh/ (scripts/i18n.py build)."""
    vendor_assets()
    args = ["build", "--all", "--keep-going", "."]
    if strict:
        args.insert(2, "-W")
    run(BIN / "jupyter-book", *args)
    index = ROOT / "_build" / "html" / "index.html"
    print(f"book built: {index}" if index.exists() else "book build produced no index.html")
    run(PYTHON, "scripts/i18n.py", "build", "--lang", "zh_CN", *(["-W"] if strict else []))


def notebooks() -> list[Path]:
    return sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def test() -> None:
    env = {"GENLAB_PROFILE": os.environ.get("GENLAB_PROFILE", "quick"), "MPLBACKEND": "Agg"}
    run(BIN / "ruff", "check", ".")
    run(PYTHON, "scripts/sync_notebooks.py", "--check")
    run(PYTHON, "scripts/build_glossary.py", "--check")
    run(PYTHON, "scripts/i18n.py", "check", "--lang", "zh_CN")  # <= 2% untranslated or fuzzy, markup intact
    build_book(strict=True)  # first: the browser tests read _build/html
    ensure_chromium()
    workers = str(max(1, min(os.cpu_count() or 1, 4)))  # each notebook runs whole on one worker (loadfile)
    # notebooks share saved runs through the checkpoint folder: give each test run a fresh one,
    # so a run left by another genlab version can never be loaded
    env["GENLAB_CHECKPOINT_DIR"] = tempfile.mkdtemp(prefix="genlab-checkpoints-")
    if workers != "1":  # one thread per worker: two 2-thread kernels on 2 cores slowed each other 10-30x
        env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "1")
    run(PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", workers, "--dist", "loadfile",
        "--nbval-lax", "--durations=20", "tests", *[p.relative_to(ROOT) for p in notebooks()], env=env)


def execute(paths: list[str]) -> None:
    targets = [Path(p) for p in paths] or notebooks()
    env = {"GENLAB_PROFILE": os.environ.get("GENLAB_PROFILE", "standard")}
    for path in targets:
        run(PYTHON, "scripts/execute_notebook.py", path, env=env)


def main(argv: list[str]) -> None:
    command = argv[0] if argv else "help"
    if command == "book":
        setup()
        build_book(strict=True)
    elif command == "test":
        setup()
        test()
    elif command == "setup":
        setup()
    elif command == "lab":
        setup()
        os.execv(BIN / "jupyter-lab", [str(BIN / "jupyter-lab"), "--notebook-dir", str(ROOT / "book"), *argv[1:]])
    elif command == "execute":
        setup()
        execute(argv[1:])
    elif command == "i18n":
        setup()
        run(PYTHON, "scripts/i18n.py", "update", "--lang", "zh_CN")
    elif command == "sync":
        python = PYTHON if PYTHON.exists() else sys.executable
        run(python, "scripts/sync_notebooks.py")
        run(python, "scripts/build_glossary.py")
    else:
        print(__doc__)
        sys.exit(0 if command in {"help", "-h", "--help"} else 2)


if __name__ == "__main__":
    main(sys.argv[1:])
