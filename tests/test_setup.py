"""The README's set-up must leave a working local route: JupyterLab installed beside genlab.

book/00_front/how_to_use.md tells a reader to run ``python3 tasks.py lab`` (or ``jupyter lab``)
after ``python3 tasks.py book``; the test command runs inside that same set-up, so these checks
fail when the set-up stops installing what the page promises.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_jupyterlab_is_installed_by_the_setup():
    assert importlib.util.find_spec("jupyterlab") is not None, (
        "JupyterLab is missing: `python3 tasks.py setup` must install genlab's `lab` extra")
    scripts = Path(sys.executable).parent
    assert any((scripts / name).exists() for name in ("jupyter-lab", "jupyter-lab.exe")), (
        f"no jupyter-lab command beside {Path(sys.executable).name}: the `lab` extra did not install its script")


def test_jupyter_lab_command_runs():
    result = subprocess.run([sys.executable, "-m", "jupyterlab", "--version"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()[0].isdigit()


def test_tasks_help_documents_the_lab_command():
    result = subprocess.run([sys.executable, str(ROOT / "tasks.py"), "help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "tasks.py lab" in result.stdout


def test_conda_environment_installs_the_same_extras():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip_lines = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert "-e .[book,test,lab]" in pip_lines
