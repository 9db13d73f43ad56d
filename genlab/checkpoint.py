"""Checkpoints that survive crashes and load safely: atomic writes, plain contents, clear errors.

What a checkpoint is
    One ``torch.save`` file holding a dict of *plain* values only: tensors, ints,
    floats, strings, ``None``, lists/tuples/dicts of these. That is what
    ``torch.load(path, weights_only=True)`` accepts, so loading a checkpoint never runs
    pickled code from the file. NumPy and Python RNG states are converted to
    tensors/lists on the way in (:func:`rng_state`) and back on the way out
    (:func:`set_rng_state`).
Atomic
    :func:`save_checkpoint` writes to a temporary file in the same folder, flushes and
    ``fsync``s it, then ``os.replace``s it over the target. A crash (or a full disk)
    midway leaves the previous checkpoint untouched; a reader never sees half a file.
Safe to load
    :func:`load_checkpoint` turns a damaged or foreign file into a :class:`CheckpointError`
    naming the path, PyTorch's whole reason, and what to do: a *damaged genlab checkpoint*
    (recognised by the ``format`` entry it still holds) is best replaced by an older copy or
    deleted and trained again; any other file is *not a genlab checkpoint*: pass another path.
    :func:`load_model_state` names the parameters whose shapes differ (the usual cause: the
    model was built with other arguments).

The :class:`genlab.training.Trainer` uses these for ``trainer.save(path)``,
``trainer.load(path)`` and ``trainer.fit(..., checkpoint_path=path)``; use them directly
to keep a model only::

    save_checkpoint("vae.pt", models={"vae": vae.state_dict()})
    load_model_state(vae, load_checkpoint("vae.pt")["models"]["vae"], name="vae")

See: book/04_practice/checkpoints.ipynb.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "checkpoint_dir",
    "load_checkpoint",
    "load_model_state",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

FORMAT = "genlab-checkpoint"
FORMAT_VERSION = 1
_PLAIN_SCALARS = (bool, int, float, str, type(None), torch.dtype, torch.device)  # exact types only


def checkpoint_dir() -> Path:
    """Where notebooks keep models for later chapters: ``$GENLAB_CHECKPOINT_DIR``, else
    ``~/.cache/genlab/checkpoints`` (created on first use).

    See: book/04_practice/cgan_wgan.ipynb (train-or-load with :meth:`Trainer.fit_or_load`).
    """
    env = os.environ.get("GENLAB_CHECKPOINT_DIR")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "genlab" / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


class CheckpointError(RuntimeError):
    """A checkpoint file is corrupt, foreign, or does not fit the model it is loaded into.

    See: book/04_practice/checkpoints.ipynb.
    """


def _genlab_version() -> str:
    try:
        from genlab import __version__
    except ImportError:  # pragma: no cover - partial installs
        return "unknown"
    return __version__


def _check_plain(value: Any, where: str) -> None:
    """Raise a TypeError naming the first value ``weights_only`` loading would reject."""
    if type(value) in _PLAIN_SCALARS or isinstance(value, torch.Tensor):  # a str subclass would not load
        return
    if type(value) in (dict, OrderedDict):  # what state_dict() returns
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where} has a key of type {type(key).__name__}; use str or int keys")
            _check_plain(item, f"{where}[{key!r}]")
        return
    if type(value) in (list, tuple):  # not NamedTuples: weights_only rejects their classes
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    hint = " (convert it with torch.from_numpy or .tolist())" if type(value).__module__ == "numpy" else ""
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__name__}, which a weights_only checkpoint "
        f"cannot hold{hint}; store tensors, numbers, strings, lists or dicts"
    )


def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict:
    """Every random state that affects training, as plain values.

    Keys: ``torch`` (the CPU default generator), ``cuda`` (one state per GPU, empty without
    CUDA), ``numpy`` (MT19937 key as an int64 tensor plus position and cached Gaussian),
    ``python`` (``random.getstate()`` as lists), and ``generators`` (the states of the
    given ``torch.Generator`` objects, e.g. the Trainer's batch sampler, with their device type).
    See: book/04_practice/checkpoints.ipynb.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": [version, list(internal), gauss_next],
        "generators": {key: {"state": g.get_state(), "device": g.device.type}
                       for key, g in (generators or {}).items()},
    }


def set_rng_state(state: dict, generators: dict[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`rng_state` captured (global RNGs and the named generators).

    A generator saved on another device type (a GPU run resumed on a CPU) cannot take the
    state; it keeps its own and a warning says the continuation is not bit-identical.
    See: book/04_practice/checkpoints.ipynb.
    """
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state["cuda"]:
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    for key, generator in (generators or {}).items():
        saved = state["generators"].get(key)
        if saved is None:
            raise CheckpointError(f"the checkpoint holds no state for the generator {key!r}")
        if saved["device"] != generator.device.type:
            warnings.warn(f"generator {key!r} was saved on {saved['device']} and now runs on "
                          f"{generator.device.type}: its random stream restarts, so the resumed run "
                          "is not bit-identical to an uninterrupted one", stacklevel=2)
            continue
        generator.set_state(saved["state"])


def save_checkpoint(path: str | os.PathLike, **state: Any) -> Path:
    """Atomically write ``state`` (plain values: state_dicts, step, history...) to ``path``.

    Adds ``format``, ``format_version``, ``genlab_version``, ``torch_version`` and, unless
    given, ``rng`` (:func:`rng_state` of the global RNGs). The file is written to a
    temporary neighbour, flushed, ``fsync``ed and moved over ``path`` with ``os.replace``, so
    ``path`` holds either the old or the new checkpoint, never a mixture. Values that
    ``weights_only`` loading would reject raise a ``TypeError`` naming them *before* writing.
    Returns the path.
    See: book/04_practice/checkpoints.ipynb.
    """
    path = Path(path)
    reserved = {"format", "format_version", "genlab_version", "torch_version"} & state.keys()
    if reserved:
        raise ValueError(f"save_checkpoint sets {sorted(reserved)} itself; do not pass them")
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "genlab_version": _genlab_version(),
               "torch_version": str(torch.__version__), **state}
    payload.setdefault("rng", rng_state())
    _check_plain(payload, "state")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    try:  # persist the rename itself (POSIX); harmless where directories cannot be opened
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:
        pass
    return path


def _torch_reason(error: Exception) -> str:
    """PyTorch's reason for refusing a file, whole but on one line, without its advice to unpickle."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", " ".join(str(error).split()))  # one line, no terminal colours
    if "WeightsUnpickler error:" in text:  # keep the reason, drop the weights_only=False / allowlist advice
        text = text.split("WeightsUnpickler error:", 1)[1].split(" Please use", 1)[0]
        text = text.split(" Check the documentation of torch.load", 1)[0].strip()
    text = text.rstrip(". ")
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _unreadable(path: Path, error: Exception) -> str:
    """The message for a file ``torch.load(weights_only=True)`` refused: damaged genlab checkpoint or not one."""
    reason = _torch_reason(error)
    if "Unsupported global" in reason:
        return (f"{path} is not a genlab checkpoint: it stores Python objects (code), which genlab never "
                f"unpickles (PyTorch says {reason}). Pass another path (a file written by genlab), and load this "
                "one with weights_only=False only if you trust whoever made it")
    size = path.stat().st_size
    with open(path, "rb") as handle:  # torch stores its pickle uncompressed: the marker survives truncation
        ours = FORMAT.encode() in handle.read(1 << 24)
    if ours:
        return (f"{path} is a damaged genlab checkpoint ({size:,} bytes; truncated or partly overwritten, "
                "e.g. by an interrupted copy): load an older copy, or delete the file and train again. "
                f"PyTorch's reason: {reason}")
    return (f"{path} is not a genlab checkpoint ({size:,} bytes that PyTorch cannot read as one: {reason}). "
            "Pass another path: a file written by genlab (Trainer.save, save_checkpoint)")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises ``FileNotFoundError`` when there is no file, and :class:`CheckpointError` when the
    file is a damaged genlab checkpoint, not a genlab checkpoint, or from a newer format version
    (the module docstring says what each message advises).
    See: book/04_practice/checkpoints.ipynb.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (nothing has been saved there yet?)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated zip, garbage bytes, forbidden pickle globals...
        raise CheckpointError(_unreadable(path, error)) from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a PyTorch file but not a genlab checkpoint (no format={FORMAT!r} "
                              "entry); pass another path: a file written by genlab (Trainer.save, save_checkpoint)")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {state['format_version']}, newer than this "
                              f"genlab ({_genlab_version()}, format {FORMAT_VERSION}); upgrade genlab")
    return state


def load_model_state(module: nn.Module, state_dict: dict, name: str = "model") -> None:
    """``module.load_state_dict(state_dict)`` with an error that names every mismatch.

    Shape differences, missing and unexpected keys are all listed in one
    :class:`CheckpointError` (instead of PyTorch's long traceback), with the likely cause.
    See: book/04_practice/checkpoints.ipynb.
    """
    own = module.state_dict()
    shapes = [f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}"
              for key, value in state_dict.items() if key in own and tuple(value.shape) != tuple(own[key].shape)]
    missing = sorted(own.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - own.keys())
    problems = ([f"shape mismatch for {'; '.join(shapes)}"] if shapes else []) + \
               ([f"missing keys {missing[:8]}"] if missing else []) + \
               ([f"unexpected keys {unexpected[:8]}"] if unexpected else [])
    if problems:
        raise CheckpointError(
            f"cannot load the checkpoint's {name} into {type(module).__name__}: {', '.join(problems)}. "
            "Was the model built with the same arguments (latent_dim, widths, num_classes)?"
        )
    module.load_state_dict(state_dict)
