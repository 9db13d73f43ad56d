"""Applications of VAEs and classifiers: inpainting, anomaly scores, ROC/AUC, style moments, CAS.

The pieces used by more than one cell of Part 5 (or worth a test of their own):

- :func:`psnr`, :func:`inpaint` (iterative VAE reconstruction that keeps the known pixels),
  :func:`reconstruction_error` and :func:`negative_elbo` per image (anomaly scores);
- :func:`roc_curve` and :func:`roc_auc` (the AUC is the Mann-Whitney probability that a
  positive scores above a negative, ties counting one half);
- :func:`image_moments`: ink, stroke thickness and slant of each digit from its pixel moments;
- :func:`train_digit_classifier` and :func:`classification_accuracy`: the same small CNN and
  budget for real and for generated training sets (classification accuracy score, CAS).

See: book/05_applications/inpainting_anomaly.ipynb, synthetic_data.ipynb, style_transfer.ipynb.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.applications import psnr  # one PSNR for the book (re-exported for the VAE chapters)
from genlab.classifier import MNISTClassifier
from genlab.losses import elbo
from genlab.runtime import eval_mode

__all__ = [
    "classification_accuracy",
    "image_moments",
    "inpaint",
    "negative_elbo",
    "psnr",
    "reconstruction_error",
    "roc_auc",
    "roc_curve",
    "train_digit_classifier",
]


def _check_images(images: Tensor, name: str = "images") -> None:
    if not isinstance(images, Tensor) or images.ndim != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"expected {name} of shape (B, 1, 28, 28), got {shape}")


@torch.no_grad()
def inpaint(model: Any, images: Tensor, known: Tensor, num_iters: int = 20, labels: Tensor | None = None,
            init: str = "mean", history: bool = False) -> Tensor | list[Tensor]:
    """Fill the unknown pixels of ``images`` by iterating ``x <- known*x_obs + (1-known)*reconstruct(x)``.

    ``known`` is a {0, 1} (or bool) mask of the same shape, 1 where the pixel is observed. The
    unknown pixels start at the mean of the known ones (``init="mean"``) or at 0 (``"zero"``);
    each iteration reconstructs with the posterior mean (``model.reconstruct``) and puts the
    observed pixels back, a simple fixed-point scheme (Rezende et al., 2014, impute missing pixels
    with a similar chain that samples instead). Returns the final images, or every iterate with ``history=True``.
    See: book/05_applications/inpainting_anomaly.ipynb.
    """
    _check_images(images)
    if known.shape != images.shape:
        raise ValueError(f"mask shape {tuple(known.shape)} differs from images {tuple(images.shape)}")
    if num_iters < 0:
        raise ValueError(f"num_iters must be >= 0, got {num_iters}")
    known = known.to(images.dtype)
    if init == "mean":
        fill = (images * known).flatten(1).sum(1) / known.flatten(1).sum(1).clamp(min=1)  # (B,)
        start = fill.view(-1, 1, 1, 1).expand_as(images)
    elif init == "zero":
        start = torch.zeros_like(images)
    else:
        raise ValueError(f"init must be 'mean' or 'zero', got {init!r}")
    with eval_mode(model):
        x = known * images + (1 - known) * start  # (B, 1, 28, 28)
        iterates = [x]
        for _ in range(num_iters):
            x = known * images + (1 - known) * model.reconstruct(x, labels)
            iterates.append(x)
    return iterates if history else x


@torch.no_grad()
def _per_image(model: Any, images: Tensor, labels: Tensor | None, batch_size: int, score) -> Tensor:
    """``score(x, y)`` -> (b,) over minibatches of ``images`` with ``model`` in eval mode, concatenated."""
    _check_images(images)
    with eval_mode(model):
        return torch.cat([score(images[i : i + batch_size], None if labels is None else labels[i : i + batch_size])
                          for i in range(0, len(images), batch_size)])


@torch.no_grad()
def reconstruction_error(model: Any, images: Tensor, labels: Tensor | None = None,
                         batch_size: int = 1000) -> Tensor:
    """Squared error ``sum_pixels (x - reconstruct(x))**2`` per image, shape (B,).

    See: book/05_applications/inpainting_anomaly.ipynb.
    """
    return _per_image(model, images, labels, batch_size,
                      lambda x, y: (x - model.reconstruct(x, y)).pow(2).flatten(1).sum(1))


@torch.no_grad()
def negative_elbo(model: Any, images: Tensor, labels: Tensor | None = None, num_samples: int = 1,
                  generator: torch.Generator | None = None, batch_size: int = 1000) -> Tensor:
    """``-ELBO`` per image in nats (``genlab.losses.elbo``, ``beta = 1``), averaged over ``num_samples`` draws.

    See: book/05_applications/inpainting_anomaly.ipynb.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    return _per_image(model, images, labels, batch_size, lambda x, y: sum(
        -elbo(model, x, y, generator=generator).elbo.float().cpu() for _ in range(num_samples)) / num_samples)


def _scores(negatives: Tensor, positives: Tensor) -> tuple[Tensor, Tensor]:
    negatives = torch.as_tensor(negatives, dtype=torch.float64).flatten()
    positives = torch.as_tensor(positives, dtype=torch.float64).flatten()
    if len(negatives) == 0 or len(positives) == 0:
        raise ValueError(f"need at least one negative and one positive score, got {len(negatives)} and "
                         f"{len(positives)}")
    return negatives, positives


def roc_curve(negatives: Tensor, positives: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """ROC curve for the rule "positive when score >= threshold": ``(fpr, tpr, thresholds)``.

    Thresholds run over the distinct scores from high to low, with ``+inf`` first, so the
    curve starts at (0, 0) and ends at (1, 1). See: book/05_applications/inpainting_anomaly.ipynb.
    """
    negatives, positives = _scores(negatives, positives)
    scores = torch.cat([negatives, positives])
    is_positive = torch.cat([torch.zeros(len(negatives)), torch.ones(len(positives))]).double()
    order = torch.argsort(scores, descending=True)
    sorted_scores, sorted_positive = scores[order], is_positive[order]
    tp = torch.cumsum(sorted_positive, 0)  # positives with score >= sorted_scores[i]
    fp = torch.cumsum(1 - sorted_positive, 0)
    last_of_group = torch.ones(len(scores), dtype=torch.bool)  # keep one point per distinct score
    last_of_group[:-1] = sorted_scores[1:] != sorted_scores[:-1]
    zero = torch.zeros(1, dtype=torch.float64)
    fpr = torch.cat([zero, fp[last_of_group] / len(negatives)])
    tpr = torch.cat([zero, tp[last_of_group] / len(positives)])
    thresholds = torch.cat([torch.tensor([float("inf")], dtype=torch.float64), sorted_scores[last_of_group]])
    return fpr, tpr, thresholds


def roc_auc(negatives: Tensor, positives: Tensor) -> float:
    """Area under the ROC curve = P(positive score > negative score) + 0.5 P(tie).

    Computed from ranks (Mann-Whitney U), O(n log n). See: book/05_applications/inpainting_anomaly.ipynb.
    """
    negatives, positives = _scores(negatives, positives)
    scores = torch.cat([negatives, positives])
    order = torch.argsort(scores)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    # average the ranks of tied scores
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    mean_rank = ends - (counts.double() - 1) / 2  # (groups,)
    ranks[order] = mean_rank[inverse]
    n_pos, n_neg = len(positives), len(negatives)
    u = ranks[n_neg:].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def image_moments(images: Tensor, threshold: float = 0.5) -> dict[str, Tensor]:
    """Style statistics of each digit from its pixel moments (images in [0, 1], (B, 1, 28, 28)).

    - ``ink``: total intensity ``sum_ij x_ij``;
    - ``thickness``: approximate stroke width in pixels, ``2 * area / boundary`` of the pixels
      above ``threshold`` (a stroke of width t and length L has area ~ tL and ~ 2L boundary
      pixels, those with an "off" pixel in their 3x3 neighbourhood);
    - ``slant``: the shear ``mu_11 / mu_02`` of the intensity-weighted second central moments
      (x to the right, y downwards): 0 for an upright stroke, positive when the top leans right.

    See: book/05_applications/style_transfer.ipynb.
    """
    _check_images(images)
    x = images[:, 0].double()  # (B, 28, 28)
    h, w = x.shape[1:]
    ys = torch.arange(h, dtype=torch.float64).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float64).view(1, 1, w)
    ink = x.sum((1, 2)).clamp(min=1e-8)  # (B,)
    cy = (x * ys).sum((1, 2)) / ink
    cx = (x * xs).sum((1, 2)) / ink
    dy = ys - cy.view(-1, 1, 1)
    dx = xs - cx.view(-1, 1, 1)
    mu02 = (x * dy * dy).sum((1, 2)) / ink
    mu11 = (x * dx * dy).sum((1, 2)) / ink
    slant = -mu11 / mu02.clamp(min=1e-8)  # y grows downwards: top leaning right gives mu11 < 0
    on = (images[:, :1] > threshold).double()  # (B, 1, 28, 28)
    inside = -F.max_pool2d(-on, 3, stride=1, padding=1)  # erosion: pixels whose 3x3 neighbourhood is all on
    boundary = (on - inside).sum((1, 2, 3))
    area = on.sum((1, 2, 3))
    thickness = 2 * area / boundary.clamp(min=1)
    return {"ink": ink.float(), "thickness": thickness.float(), "slant": slant.float()}


def classification_accuracy(model: torch.nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``images`` whose argmax logit equals the label (the model in eval mode).

    See: book/05_applications/synthetic_data.ipynb.
    """
    correct = 0
    with eval_mode(model):
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                logits = model(images[start : start + batch_size])
                correct += (logits.argmax(1) == labels[start : start + batch_size]).sum().item()
    return correct / len(images)


def train_digit_classifier(images: Tensor, labels: Tensor, steps: int, seed: int = 0, batch_size: int = 128,
                           lr: float = 3e-3, width: int = 8) -> MNISTClassifier:
    """Train a fresh small :class:`~genlab.classifier.MNISTClassifier` for ``steps`` Adam steps.

    The same architecture, budget and minibatch order (from ``seed``) whatever the training set,
    so accuracies on the real test split compare training sets, not training runs: the
    classification accuracy score (CAS, Ravuri & Vinyals, 2019) when ``images`` are generated.
    See: book/05_applications/synthetic_data.ipynb.
    """
    _check_images(images)
    if len(images) != len(labels) or len(images) < batch_size:
        raise ValueError(f"need as many labels as images and at least batch_size={batch_size} of them, got "
                         f"{len(images)} images and {len(labels)} labels")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = MNISTClassifier(width=width, feature_dim=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        index = torch.randint(len(images), (batch_size,), generator=generator)
        loss = F.cross_entropy(model(images[index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    return model
