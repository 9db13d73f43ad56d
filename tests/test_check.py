"""Tests for `python -m genlab.check`: the report's content, data status without downloads."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import genlab
from genlab import check
from genlab.data.images import DATASETS

EXPECTED_KEYS = [
    "genlab", "python", "torch", "numpy", "matplotlib", "ipywidgets", "device", "cuda",
    "profile", "data_dir", "mnist_train", "mnist_test", "classifier",
]


def test_report_has_the_expected_keys_versions_and_device(monkeypatch):
    monkeypatch.delenv("GENLAB_DEVICE", raising=False)
    rows = check.report()
    assert list(rows) == EXPECTED_KEYS
    assert all(isinstance(v, str) and v for v in rows.values())
    assert rows["genlab"] == genlab.__version__
    assert rows["torch"] == torch.__version__
    assert rows["python"].startswith(".".join(map(str, sys.version_info[:3])))
    assert rows["device"] == str(genlab.get_device())
    assert rows["profile"] == str(genlab.get_profile())
    if not torch.cuda.is_available():
        assert rows["cuda"] == "not available"


def test_report_survives_a_bad_device_or_profile_setting(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA to request an unavailable device")
    monkeypatch.setenv("GENLAB_DEVICE", "cuda")
    monkeypatch.setenv("GENLAB_PROFILE", "turbo")
    rows = check.report()
    assert rows["device"].startswith("error:") and "CUDA is not available" in rows["device"]
    assert rows["profile"].startswith("error:") and "turbo" in rows["profile"]


def test_dataset_status_without_files_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GENLAB_OFFLINE", raising=False)
    assert check.dataset_status("mnist", "test") == "not cached - would download"
    assert check.dataset_status("mnist", "train").startswith("not cached - would download or ")
    assert not any(tmp_path.iterdir())  # nothing was fetched or created
    monkeypatch.setenv("GENLAB_OFFLINE", "1")
    assert "offline" in check.dataset_status("mnist", "train")
    assert check.report()["data_dir"] == "$GENLAB_DATA_DIR"  # no absolute path of this machine


def test_dataset_status_flags_a_corrupt_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA_DIR", str(tmp_path))
    (image_file, _), (label_file, _) = DATASETS["mnist"]["files"]["test"]
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / image_file).write_bytes(b"not the real file")
    status = check.dataset_status("mnist", "test")
    assert "CORRUPT" in status and image_file in status


def test_dataset_status_verifies_the_shared_mnist_test_split(monkeypatch):
    import os

    shared = os.environ.get("GENLAB_DATA_DIR")
    image_file = DATASETS["mnist"]["files"]["test"][0][0]
    if not shared or not (Path(shared) / "mnist" / image_file).exists():
        pytest.skip("GENLAB_DATA_DIR does not provide the MNIST test split")
    assert check.dataset_status("mnist", "test") == "cached, verified"


def test_python_dash_m_genlab_check_prints_an_aligned_table():
    result = subprocess.run([sys.executable, "-m", "genlab.check"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "genlab check"
    table = {line.split()[0]: line for line in lines[1:]}
    assert list(table) == EXPECTED_KEYS
    value_columns = {len(line) - len(line[len(key) + 2 :].lstrip()) for key, line in table.items()}
    assert len(value_columns) == 1  # every value starts in the same column
