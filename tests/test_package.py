"""Tests for the genlab package itself: lazy submodules, ``dir(genlab)``, the docstring's example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import genlab


def test_submodules_are_reachable_without_importing_them():
    code = ("import sys, genlab; assert 'genlab.metrics' not in sys.modules; "
            "f = genlab.data.load_mnist; m = genlab.metrics.fid_mnist; print(genlab.models.gan.DCGANGenerator)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "DCGANGenerator" in result.stdout


def test_dir_lists_the_submodules_and_unknown_names_fail_clearly():
    package = Path(genlab.__file__).parent
    on_disk = {p.stem for p in package.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    assert set(genlab.SUBMODULES) == on_disk  # every module is reachable, and listed
    assert set(genlab.SUBMODULES) <= set(dir(genlab)) and "seed_everything" in dir(genlab)
    for name in genlab.SUBMODULES:
        assert f"``genlab.{name}``" in genlab.__doc__  # the package docstring lists each one
    with pytest.raises(AttributeError, match="no attribute 'dat'.*data"):
        genlab.dat  # noqa: B018


def test_docstring_example_runs_in_the_quick_profile(tmp_path):
    example = genlab.__doc__.split("::", 1)[1]
    code = "\n".join(line[4:] for line in example.splitlines())  # dedent the literal block
    assert "channels=(64, 32)" in code and "channels=(32, 64)" in code and "standard=3_000" in code
    assert re.search(r"lr=1e-3", code) and "batch_size=64" in code  # the recipe of book/04_practice/dcgan.ipynb
    env = {**os.environ, "GENLAB_PROFILE": "quick", "GENLAB_OFFLINE": "1", "GENLAB_DEVICE": "cpu",
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code + "\nprint(tuple(images.shape), trainer.step)"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "(64, 1, 28, 28) 30" in result.stdout and (tmp_path / "dcgan.pt").exists()
