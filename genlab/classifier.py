"""The small MNIST classifier behind the book's image metrics.

FID, Inception Score and precision/recall were defined with an ImageNet
Inception network; on 28x28 digits that network sees blurry, upsampled
grey blobs. The book follows the common practice for MNIST papers instead and
measures generated digits with a *domain* classifier: a LeNet-style CNN trained
on MNIST whose 128-d penultimate layer plays the role of Inception's pool3
features. Numbers computed with it are only comparable with other numbers
computed with the same weights (see :mod:`genlab.metrics`).

The weights ship with the package (``genlab/assets/mnist_classifier.pt``, float16,
well under 1 MB) with a card ``mnist_classifier.json`` recording their test
accuracy and how they were trained. Regenerate them with::

    python scripts/train_classifier.py

See: book/04_practice/evaluation.ipynb.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from genlab.data.images import value_range_hint
from genlab.runtime import get_device

__all__ = [
    "ASSETS_DIR",
    "CLASSIFIER_WEIGHTS",
    "ClassifierWeightsError",
    "MNISTClassifier",
    "check_unit_images",
    "load_classifier",
    "load_classifier_weights",
    "save_classifier_weights",
]

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
CLASSIFIER_WEIGHTS: dict[str, Path] = {"mnist": ASSETS_DIR / "mnist_classifier.pt"}
WEIGHTS_FORMAT = "genlab-mnist-classifier-v1"
REGENERATE_HINT = "regenerate it with `python scripts/train_classifier.py` (from the repository root)"

# Mean and standard deviation of MNIST pixels in [0, 1]; the network standardises its input itself.
MNIST_PIXEL_MEAN = 0.1307
MNIST_PIXEL_STD = 0.3081


class ClassifierWeightsError(RuntimeError):
    """The classifier's weights file is missing, corrupt or does not fit the architecture."""


def check_unit_images(images: Tensor, what: str = "images") -> None:
    """Raise a ValueError unless ``images`` is a finite (B, 1, 28, 28) batch in [0, 1].

    Images from a tanh generator live in [-1, 1]; map them first with
    ``genlab.data.to_unit_range(x, (-1, 1))``. A tolerance of 0.01 allows for
    rounding at the edges of the range. The error names the range found and the
    fix that fits it (:func:`genlab.data.value_range_hint`).
    See: book/04_practice/evaluation.ipynb.
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"expected {what} of shape (B, 1, 28, 28), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"expected floating-point {what} in [0, 1], got dtype {images.dtype}")
    if images.numel() == 0:
        raise ValueError(f"{what} is an empty batch")
    if not torch.isfinite(images).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    low, high = images.min().item(), images.max().item()
    if low < -0.01 or high > 1.01:
        raise ValueError(f"{what} lie in [{low:.3g}, {high:.3g}], but the classifier expects [0, 1]; "
                         + value_range_hint(low, high, (0.0, 1.0)))


class MNISTClassifier(nn.Module):
    """A LeNet-style CNN for 28x28 digits: three conv blocks, a 128-d feature layer, 10 logits.

    ``forward(x)`` takes images in [0, 1] and returns logits (B, 10);
    ``features(x)`` returns the penultimate ReLU activations (B, 128) used by
    FID-MNIST and precision/recall; ``head(features)`` maps them to logits, so
    ``forward(x) == head(features(x))``. About 240k parameters.
    See: book/04_practice/evaluation.ipynb.
    """

    def __init__(self, width: int = 32, feature_dim: int = 128, num_classes: int = 10,
                 dropout: float = 0.3) -> None:
        super().__init__()
        if width < 1 or feature_dim < 1 or num_classes < 2:
            raise ValueError(f"need width >= 1, feature_dim >= 1, num_classes >= 2; "
                             f"got {width}, {feature_dim}, {num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.width, self.feature_dim, self.num_classes = width, feature_dim, num_classes

        def block(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.conv1 = block(1, width, 5)  # (B, 32, 14, 14)
        self.conv2 = block(width, 2 * width, 3)  # (B, 64, 7, 7)
        self.conv3 = block(2 * width, 4 * width, 3)  # (B, 128, 3, 3)
        self.fc = nn.Linear(4 * width * 3 * 3, feature_dim)  # (B, 128)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_dim, num_classes)  # (B, 10)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations (B, feature_dim) for images x in [0, 1] of shape (B, 1, 28, 28)."""
        check_unit_images(x)
        h = (x - MNIST_PIXEL_MEAN) / MNIST_PIXEL_STD  # (B, 1, 28, 28), standardised
        h = self.conv3(self.conv2(self.conv1(h)))  # (B, 128, 3, 3)
        return torch.relu(self.fc(h.flatten(1)))  # (B, 128)

    def head(self, features: Tensor) -> Tensor:
        """Logits (B, num_classes) from penultimate features (B, feature_dim)."""
        return self.classifier(self.dropout(features))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (B, num_classes) for images in [0, 1]; apply softmax for p(y|x)."""
        return self.head(self.features(x))


def save_classifier_weights(model: MNISTClassifier, path: str | Path,
                            metadata: dict[str, Any] | None = None) -> Path:
    """Write the model's weights to ``path`` as float16, atomically (temporary file + rename).

    Floating-point tensors are stored as float16 (half the size; the metrics
    change by far less than their sampling noise) and restored to float32 by
    :func:`load_classifier_weights`. ``metadata`` (plain str/int/float values)
    is stored alongside. See: book/04_practice/evaluation.ipynb.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
             for k, v in model.state_dict().items()}
    payload = {
        "format": WEIGHTS_FORMAT,
        "config": {"width": model.width, "feature_dim": model.feature_dim, "num_classes": model.num_classes},
        "state_dict": state,
        "metadata": dict(metadata or {}),
    }
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp_name)
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; the weights are a readable package file
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return path


def load_classifier_weights(path: str | Path, device: str | torch.device | None = None) -> MNISTClassifier:
    """Build an :class:`MNISTClassifier` from a weights file, in eval mode, float32, on ``device``.

    Uses ``torch.load(..., weights_only=True)`` (no arbitrary code runs). A missing
    or corrupt file raises :class:`ClassifierWeightsError` saying how to regenerate it.
    See: book/04_practice/evaluation.ipynb.
    """
    path = Path(path)
    if not path.exists():
        raise ClassifierWeightsError(f"classifier weights {path} not found; {REGENERATE_HINT}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged pickle can fail in many ways (UnpicklingError, IndexError...)
        raise ClassifierWeightsError(
            f"classifier weights {path} are corrupt or unreadable ({type(error).__name__}: {error}); "
            f"{REGENERATE_HINT}"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise ClassifierWeightsError(
            f"{path} is not a genlab classifier file (expected format {WEIGHTS_FORMAT!r}); {REGENERATE_HINT}"
        )
    try:
        model = MNISTClassifier(**payload["config"])
        state = {k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()}
        model.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError) as error:
        raise ClassifierWeightsError(
            f"classifier weights {path} do not match the MNISTClassifier architecture ({error}); "
            f"{REGENERATE_HINT}"
        ) from error
    model.requires_grad_(False)
    return model.to(get_device(device)).eval()


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, device: str) -> MNISTClassifier:
    return load_classifier_weights(CLASSIFIER_WEIGHTS[name], device)


def load_classifier(name: str = "mnist", device: str | torch.device | None = None) -> MNISTClassifier:
    """The shipped classifier ``name`` (only ``"mnist"``) in eval mode on ``device``, cached per device.

    The same (frozen, eval-mode) module is returned on every call for a device:
    do not train or modify it. ``load_classifier.cache_clear()`` forgets it.
    See: book/04_practice/evaluation.ipynb.
    """
    if name not in CLASSIFIER_WEIGHTS:
        raise ValueError(f"unknown classifier {name!r}; known: {sorted(CLASSIFIER_WEIGHTS)}")
    return _load_cached(name, str(get_device(device)))


load_classifier.cache_clear = _load_cached.cache_clear  # type: ignore[attr-defined]
