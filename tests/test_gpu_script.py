"""The prepared GPU script (benchmarks/gpu.sh) must work before a GPU is lent: its dry run on a CPU
goes through every step (CUDA tests collected, epoch variants, speed and quality code paths) and
writes nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


@pytest.mark.slow
def test_gpu_script_dry_run_on_cpu():
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    before = hashlib.sha256(RESULTS.read_bytes()).hexdigest()
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--dry-run"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for heading in ("CUDA-marked tests", "DCGAN epoch variants", "Trainer vs hand loop", "=== done"):
        assert heading in result.stdout, result.stdout[-2000:]
    assert "s per 60k epoch" in result.stdout
    assert hashlib.sha256(RESULTS.read_bytes()).hexdigest() == before, "a dry run must not write RESULTS.md"


def test_gpu_script_refuses_to_time_a_cpu():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_epoch.py")], cwd=ROOT,
                            env={**os.environ, "GENLAB_DEVICE": "cpu"}, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "no CUDA device" in result.stderr
