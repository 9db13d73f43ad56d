"""Shared test set-up: a non-interactive matplotlib backend, the quick profile, and data fixtures."""

from __future__ import annotations

import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("GENLAB_PROFILE", "quick")


def _mnist_test_available() -> bool:
    from genlab.data import data_dir

    return (data_dir() / "mnist" / "t10k-images-idx3-ubyte.gz").exists()


@pytest.fixture(scope="session")
def mnist_test():
    """The official MNIST test split in [0, 1]; skipped when GENLAB_DATA_DIR does not hold it."""
    if not _mnist_test_available():
        pytest.skip("MNIST test split not found: set GENLAB_DATA_DIR to a folder with mnist/t10k-*.gz")
    from genlab.data import load_mnist

    return load_mnist("test", download=False)


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU; none on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread (no contention on shared CI cores); restored afterwards.

    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Each notebook's time in this run (the sum of its cells: set-up, call and teardown).

    CI executes every notebook in the ``quick`` profile (goal: each under a minute; kernel
    start-up falls in its first cell); the table makes a slow one visible in the CI log.
    """
    totals: dict[str, float] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            nodeid = getattr(report, "nodeid", "")
            path = nodeid.split("::", 1)[0]
            if path.endswith(".ipynb"):
                totals[path] = totals.get(path, 0.0) + getattr(report, "duration", 0.0)
    if not totals:
        return
    profile = os.environ.get("GENLAB_PROFILE", "quick")
    terminalreporter.section(f"notebook times ({profile} profile, sum of cell times)")
    for path, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        flag = "  (over 60 s)" if seconds > 60 and profile == "quick" else ""
        terminalreporter.write_line(f"{seconds:7.1f} s  {path}{flag}")
    terminalreporter.write_line(f"{sum(totals.values()):7.1f} s  all {len(totals)} notebooks")
