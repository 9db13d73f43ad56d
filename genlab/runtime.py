"""Run-time helpers: device choice, seeding and the notebook *profile*.

Every training budget in the book derives from the profile:

* ``quick``    - CI smoke runs: seconds per notebook, results only need to exist;
* ``standard`` - a laptop CPU (2 cores): a few minutes per notebook, convincing results;
* ``full``     - one GPU: the quality targets of each chapter.

The profile comes from the environment variable ``GENLAB_PROFILE``; when it is
not set it is ``full`` when CUDA is available and ``standard`` otherwise.
The device comes from ``GENLAB_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``...) or is
CUDA when present, else CPU.

See: book/00_front/how_to_use.md (profiles and devices).
"""

from __future__ import annotations

import os
import random
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

PROFILES = ("quick", "standard", "full")
T = TypeVar("T")


def get_device(override: str | torch.device | None = None) -> torch.device:
    """The device to compute on: ``override``, else ``$GENLAB_DEVICE``, else CUDA if present, else CPU.

    Asking for CUDA on a machine without it raises a clear error instead of
    failing later inside a kernel.
    See: book/04_practice/setup.ipynb.
    """
    choice = override if override is not None else os.environ.get("GENLAB_DEVICE") or None
    if choice is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {str(device)!r} was requested but CUDA is not available on this machine; "
            "use 'cpu' or unset GENLAB_DEVICE"
        )
    return device


@contextmanager
def eval_mode(model) -> Iterator[None]:
    """Run the block with ``model`` in eval mode (BatchNorm running statistics, no dropout), then
    restore the mode it had, even if the block raises. See: book/04_practice/mlp_gan.ipynb."""
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _is_notebook_cell(filename: str) -> bool:
    """IPython runs each cell from a temporary file (``/tmp/ipykernel_1234/5678.py``, or
    ``<ipython-input-...>`` in older versions): a path that means nothing to a reader."""
    folder, name = os.path.split(filename)
    return filename.startswith("<ipython-input") or (
        os.path.basename(folder).startswith("ipykernel_") and name.removesuffix(".py").isdigit())


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` pointing at the first caller outside genlab: the user's line, not ours.

    In a notebook the location reads ``notebook cell:LINE`` instead of the kernel's temporary
    file, so stored outputs carry no machine-specific path. Python's usual filters apply (by
    default each location warns once).
    """
    package = os.path.dirname(os.path.abspath(__file__))
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame = frame.f_back
    if frame is None:
        warnings.warn(message, category, stacklevel=2)
        return
    filename = frame.f_code.co_filename
    warnings.warn_explicit(message, category, "notebook cell" if _is_notebook_cell(filename) else filename,
                           frame.f_lineno, module=frame.f_globals.get("__name__", "__main__"),
                           registry=frame.f_globals.setdefault("__warningregistry__", {}))


def progress_bar(total: int | None, progress: bool | None = None, desc: str | None = None):
    """A ``tqdm.auto`` bar: a widget in Jupyter, text in a terminal.

    ``progress=None`` is tqdm's ``disable=None`` convention: no bar when the output is not
    interactive (a file, a CI log), so logs are not flooded; True always shows one, False never.
    See: book/04_practice/mlp_gan.ipynb.
    """
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=None if progress is None else not progress, desc=desc, leave=True)


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) and return a seeded CPU generator.

    On CPU, two runs with the same seed give bit-identical results.
    See: book/04_practice/checkpoints.ipynb (reproducibility).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class Profile:
    """A named compute budget. Use :meth:`pick` to choose a number per profile.

    >>> Profile("quick").pick(quick=100, standard=2_000, full=20_000)
    100
    """

    name: str

    def __post_init__(self) -> None:
        if self.name not in PROFILES:
            raise ValueError(f"unknown profile {self.name!r}; expected one of {PROFILES}")

    def pick(self, *, quick: T, standard: T, full: T) -> T:
        """Return the value for this profile (all three must be given)."""
        return {"quick": quick, "standard": standard, "full": full}[self.name]

    @property
    def is_quick(self) -> bool:
        return self.name == "quick"

    def __str__(self) -> str:
        return self.name


def get_profile(name: str | None = None) -> Profile:
    """The active profile: ``name``, else ``$GENLAB_PROFILE``, else automatic.

    Automatic means ``full`` when a CUDA GPU is available and ``standard`` otherwise.
    See: book/00_front/how_to_use.md.
    """
    chosen = name or os.environ.get("GENLAB_PROFILE", "").strip().lower() or None
    if chosen is None:
        chosen = "full" if torch.cuda.is_available() else "standard"
    return Profile(chosen)
