"""Sample-quality metrics: FID-MNIST, classifier Inception Score, precision/recall, density/coverage, mode coverage.

Image metrics run generated digits through the small MNIST classifier of
:mod:`genlab.classifier` (weights shipped in ``genlab/assets``). They take
images in [0, 1]; map tanh outputs first with ``genlab.data.to_unit_range(x, (-1, 1))``.

* :func:`fid_mnist` - the Frechet distance between Gaussians fitted to the
  classifier's 128-d penultimate features (lower is better);
* :func:`classifier_inception_score` - exp E_x KL(p(y|x) || p(y)), between 1 and 10;
* :func:`precision_recall` - Kynkaanniemi et al. (2019): fidelity and diversity separately;
* :func:`density_coverage` - Naeem et al. (2020): the same two questions, robust to outliers;
* :func:`label_histogram` - which digits a generator makes (mode collapse shows at once);
* :func:`mode_coverage` - the PacGAN/VEEGAN protocol on the 2-D toy mixtures.

Degenerate inputs give a :class:`MetricWarning` instead of a silently meaningless number:
fewer samples than feature dimensions for a Frechet distance (rank-deficient covariances),
and fake features with almost no spread for precision/recall (an untrained or collapsed
generator, whose one repeated image can land inside the real manifold: precision 1.0).

See: book/04_practice/evaluation.ipynb, book/02_gan_math/mode_collapse.ipynb.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from genlab.classifier import check_unit_images, load_classifier
from genlab.data.toy2d import ToyDistribution, toy_distribution
from genlab.runtime import warn

__all__ = [
    "MetricWarning",
    "classifier_features",
    "classifier_inception_score",
    "density_coverage",
    "evaluate_images",
    "fid_mnist",
    "frechet_distance",
    "label_histogram",
    "mode_coverage",
    "precision_recall",
]


MIN_SPREAD_RATIO = 1e-3  # fake/real total feature variance below which precision/recall warn


class MetricWarning(UserWarning):
    """A metric was computed on inputs that make its value meaningless (see the module docstring).

    See: book/04_practice/evaluation.ipynb.
    """


def _as_matrix(feats: Tensor | np.ndarray, name: str, min_rows: int = 1) -> Tensor:
    """A float64 CPU copy of an (N, D) feature matrix, checked for shape and finiteness."""
    matrix = torch.as_tensor(feats).detach().to("cpu", torch.float64)
    if matrix.dim() != 2:
        raise ValueError(f"expected {name} of shape (N, D), got {tuple(matrix.shape)}")
    if len(matrix) < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {len(matrix)}")
    if not torch.isfinite(matrix).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return matrix


def _mean_and_covariance(feats: Tensor) -> tuple[Tensor, Tensor]:
    mean = feats.mean(0)  # (D,)
    centred = feats - mean  # (N, D)
    return mean, centred.T @ centred / (len(feats) - 1)  # (D,), (D, D) unbiased


def _psd_sqrt(matrix: Tensor) -> Tensor:
    """Symmetric square root of a symmetric PSD matrix via eigh; tiny negative eigenvalues -> 0."""
    eigenvalues, eigenvectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return eigenvectors @ torch.diag(eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T


def frechet_distance(feats_a: Tensor | np.ndarray, feats_b: Tensor | np.ndarray) -> float:
    """Frechet (2-Wasserstein) distance between Gaussians fitted to two (N, D) feature sets.

    d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}).
    The trace of (S_a S_b)^{1/2} is computed in float64 as the sum of square roots
    of the eigenvalues of the symmetric PSD matrix S_a^{1/2} S_b S_a^{1/2}, which is
    similar to S_a S_b and so has the same eigenvalues; tiny negative eigenvalues
    from rounding are clamped to 0, so no complex numbers ever appear. The result
    is a squared distance (as reported in FID tables), clamped at 0. With N <= D samples in
    a set (rank-deficient covariance) it warns (:class:`MetricWarning`).
    See: book/04_practice/evaluation.ipynb.
    """
    a, b = _as_matrix(feats_a, "feats_a", 2), _as_matrix(feats_b, "feats_b", 2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: feats_a has {a.shape[1]}, feats_b has {b.shape[1]}")
    dim = a.shape[1]
    if min(len(a), len(b)) <= dim:
        warn(f"Frechet distance of {len(a)} and {len(b)} samples of {dim}-d features: a covariance estimated "
             f"from N samples has rank at most N - 1 < {dim}, so the value is dominated by small-sample bias "
             "(two sets of real digits score far from 0). Use more than "
             f"{dim} samples per set, a few thousand for tables.", MetricWarning)
    mu_a, cov_a = _mean_and_covariance(a)
    mu_b, cov_b = _mean_and_covariance(b)
    sqrt_a = _psd_sqrt(cov_a)
    middle = sqrt_a @ cov_b @ sqrt_a  # (D, D), similar to S_a S_b
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    distance = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    return max(float(distance), 0.0)


def _resolve(classifier: nn.Module | None) -> nn.Module:
    return load_classifier("mnist") if classifier is None else classifier


@torch.no_grad()
def _features_and_logits(images: Tensor, classifier: nn.Module | None, batch_size: int) -> tuple[Tensor, Tensor]:
    """Run the classifier once over ``images``: features (N, D) and logits (N, C), float32 on CPU.

    The classifier must provide ``features(x)`` and ``head(features)`` (as
    :class:`genlab.classifier.MNISTClassifier` does).
    """
    check_unit_images(images)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    model = _resolve(classifier)
    if model.training:
        raise ValueError("the classifier is in training mode (dropout/BatchNorm would be random); call .eval()")
    device = next(model.parameters(), torch.empty(0)).device  # parameter-free models run on CPU
    feats, logits = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device, torch.float32)
        f = model.features(batch)  # (b, D)
        feats.append(f.float().cpu())
        logits.append(model.head(f).float().cpu())  # (b, C)
    return torch.cat(feats), torch.cat(logits)


def classifier_features(images: Tensor, classifier: nn.Module | None = None, batch_size: int = 500) -> Tensor:
    """Penultimate classifier features (N, 128) of images in [0, 1] (default: the shipped classifier).

    Raises ValueError for images below -0.01 (map [-1, 1] images with
    ``genlab.data.to_unit_range(x, (-1, 1))``), above 1.01, NaN, or a wrong shape.
    See: book/04_practice/evaluation.ipynb.
    """
    return _features_and_logits(images, classifier, batch_size)[0]


def fid_mnist(images_a: Tensor, images_b: Tensor, classifier: nn.Module | None = None,
              batch_size: int = 500) -> float:
    """FID-MNIST: the Frechet distance between classifier features of two image sets in [0, 1].

    It is *not* the FID of papers on natural images: those use ImageNet
    Inception-v3 pool3 features (2048-d); this uses the 128-d penultimate layer
    of genlab's MNIST classifier, so its values live on another scale and are
    comparable only with FID-MNIST values computed with the same weights and
    similar sample sizes (the estimate is biased upwards for small N; use at
    least a few thousand images per set for tables).
    See: book/04_practice/evaluation.ipynb.
    """
    return frechet_distance(classifier_features(images_a, classifier, batch_size),
                            classifier_features(images_b, classifier, batch_size))


def _inception_score_from_logits(logits: Tensor, splits: int = 1) -> float:
    if not 1 <= splits <= len(logits):
        raise ValueError(f"splits must be between 1 and the number of images ({len(logits)}), got {splits}")
    log_p_yx = torch.log_softmax(logits.double(), dim=1)  # (N, C)
    scores = []
    for part in torch.tensor_split(log_p_yx, splits):
        log_p_y = torch.logsumexp(part, dim=0) - math.log(len(part))  # (C,) log of the marginal
        kl = (part.exp() * (part - log_p_y)).sum(1)  # (n,) KL(p(y|x) || p(y))
        scores.append(kl.mean().exp().item())
    return float(np.mean(scores))


def classifier_inception_score(images: Tensor, classifier: nn.Module | None = None, splits: int = 1,
                               batch_size: int = 500) -> float:
    """Classifier Inception Score exp(E_x KL(p(y|x) || p(y))) of images in [0, 1].

    Equals exp(H(y) - E_x H(y|x)): high when each image is classified confidently
    (low H(y|x)) and all classes are used equally (high H(y)). It lies between 1
    and the number of classes (10); real MNIST test digits score close to 10.
    With ``splits > 1`` the images are split into groups and the scores averaged
    (the Inception-paper protocol). It ignores within-class diversity and is not
    comparable with the ImageNet Inception Score.
    See: book/04_practice/evaluation.ipynb.
    """
    return _inception_score_from_logits(_features_and_logits(images, classifier, batch_size)[1], splits)


def _kth_neighbour_radii(feats: Tensor, k: int, chunk_size: int) -> Tensor:
    """Distance from each row to its k-th nearest other row (N,)."""
    radii = []
    for chunk in torch.split(feats, chunk_size):
        distances = torch.cdist(chunk, feats)  # (c, N), includes the zero distance to itself
        radii.append(distances.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def _fraction_inside(queries: Tensor, centres: Tensor, radii: Tensor, chunk_size: int) -> float:
    """Fraction of queries that lie within radius_i of at least one centre_i."""
    inside = 0
    for chunk in torch.split(queries, chunk_size):
        distances = torch.cdist(chunk, centres)  # (c, M)
        inside += (distances <= radii[None, :]).any(dim=1).sum().item()
    return inside / len(queries)


def _warn_if_no_spread(real: Tensor, fake: Tensor, metric: str = "precision_recall") -> None:
    spread_real, spread_fake = (float(feats.var(dim=0).sum()) for feats in (real, fake))  # total variances
    if spread_fake < MIN_SPREAD_RATIO * spread_real:
        warn(f"{metric}: the {len(fake)} fake samples have almost no spread (total feature variance "
             f"{spread_fake:.3g}, {spread_fake / spread_real:.1e} of the real set's): they are (nearly) all the "
             "same image, as from an untrained or collapsed generator. Precision then only says whether that "
             "one point falls inside the ball of some real point (balls around real outliers are large), so "
             "it can be 1.0 for a blank image; look at the samples, the recall and the FID instead.",
             MetricWarning)
    elif spread_real == 0:
        warn(f"{metric}: the real features have no spread (all real samples identical); "
             f"the k-NN radii are 0 and {metric.replace('_', '/')} mean nothing", MetricWarning)


def precision_recall(real_feats: Tensor | np.ndarray, fake_feats: Tensor | np.ndarray, k: int = 3,
                     chunk_size: int = 1024) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al., 2019) of fake features against real ones.

    Each set's manifold is the union of balls around its points with radius the
    distance to the point's k-th nearest neighbour in the same set. Precision is
    the fraction of fake points inside the real manifold (fidelity); recall is
    the fraction of real points inside the fake manifold (diversity). Use equal
    numbers of real and fake points; distances are computed in chunks with
    ``torch.cdist`` (memory O(chunk_size * N)). Fake features whose total variance is below
    ``MIN_SPREAD_RATIO`` times the real ones' (nearly identical samples) get a
    :class:`MetricWarning`: one point inside a large ball around a real outlier gives
    precision 1.0. See: book/04_practice/evaluation.ipynb.
    """
    real = _as_matrix(real_feats, "real_feats", k + 1).float()
    fake = _as_matrix(fake_feats, "fake_feats", k + 1).float()
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: real has {real.shape[1]}, fake has {fake.shape[1]}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _warn_if_no_spread(real, fake)
    real_radii = _kth_neighbour_radii(real, k, chunk_size)
    fake_radii = _kth_neighbour_radii(fake, k, chunk_size)
    return {"precision": _fraction_inside(fake, real, real_radii, chunk_size),
            "recall": _fraction_inside(real, fake, fake_radii, chunk_size)}


def _check_pair_of_feature_sets(real_feats: Tensor | np.ndarray, fake_feats: Tensor | np.ndarray, k: int,
                                 chunk_size: int) -> tuple[Tensor, Tensor]:
    """float32 (N, D) and (M, D) copies of the real and fake features, checked for k-NN metrics."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int (the k-th nearest neighbour), got {k!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    real = _as_matrix(real_feats, "real_feats", k + 1).float()
    fake = _as_matrix(fake_feats, "fake_feats", 1).float()
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: real has {real.shape[1]}, fake has {fake.shape[1]}")
    return real, fake


def density_coverage(real_feats: Tensor | np.ndarray, fake_feats: Tensor | np.ndarray, k: int = 5,
                     chunk_size: int = 1024) -> dict[str, float]:
    """Density and coverage (Naeem et al., 2020) of fake features against real ones.

    Both use only the *real* k-NN balls ``B(x_i, r_i)``, ``r_i`` the distance from real
    point ``x_i`` to its k-th nearest other real point (the same radii as
    :func:`precision_recall`), so a few outlying fake points cannot inflate the fake
    manifold (recall's weakness) and real outliers are counted per ball (precision's)::

        density  = 1 / (k M) sum_j sum_i 1[y_j in B(x_i, r_i)]   (M fake points y_j)
        coverage = 1 / N sum_i 1[some y_j in B(x_i, r_i)]         (N real points x_i)

    *Density* counts how many real balls each fake point falls into, divided by k: about
    1 when fake and real come from the same distribution, above 1 when fakes crowd into
    dense real regions, below 1 for poor samples; it is not bounded by 1. *Coverage* is
    the fraction of real balls that contain at least one fake point, in [0, 1]: a
    diversity measure, below 1 when modes are missed. The paper recommends k = 5
    (the default) and at least a few thousand points per set.

    Balls are closed (distance <= radius), as in :func:`precision_recall`; the reference
    code (the ``prdc`` package) uses ``<``. The two agree except when a distance equals a
    radius exactly, which continuous features never do (``tests/test_metrics_reference.py``
    checks both against the published equations). Distances are float32 ``torch.cdist`` in
    chunks of ``chunk_size`` rows (memory O(chunk_size * N)). Fake features with almost
    no spread (a collapsed generator) get a :class:`MetricWarning`.
    Returns ``dict(density, coverage)``. See: book/04_practice/evaluation.ipynb.
    """
    real, fake = _check_pair_of_feature_sets(real_feats, fake_feats, k, chunk_size)
    if len(fake) > 1:
        _warn_if_no_spread(real, fake, "density_coverage")
    real_radii = _kth_neighbour_radii(real, k, chunk_size)  # (N,)
    return _density_coverage_from_radii(real, fake, real_radii, k, chunk_size)


def _density_coverage_from_radii(real: Tensor, fake: Tensor, real_radii: Tensor, k: int,
                                 chunk_size: int) -> dict[str, float]:
    balls_hit = 0  # sum over fake points of the number of real balls containing them
    for chunk in torch.split(fake, chunk_size):
        distances = torch.cdist(chunk, real)  # (c, N)
        balls_hit += (distances <= real_radii[None, :]).sum().item()
    covered = 0  # real points whose ball holds at least one fake point
    for chunk, radii in zip(torch.split(real, chunk_size), torch.split(real_radii, chunk_size)):
        nearest_fake = torch.cdist(chunk, fake).min(dim=1).values  # (c,)
        covered += (nearest_fake <= radii).sum().item()
    return {"density": balls_hit / (k * len(fake)), "coverage": covered / len(real)}


def label_histogram(images: Tensor, classifier: nn.Module | None = None, batch_size: int = 500) -> Tensor:
    """Counts (num_classes,) int64 of the classifier's predicted labels for images in [0, 1].

    A healthy MNIST generator gives roughly equal counts; a collapsed one piles
    up on a few digits. See: book/02_gan_math/mode_collapse.ipynb.
    """
    logits = _features_and_logits(images, classifier, batch_size)[1]
    return torch.bincount(logits.argmax(1), minlength=logits.shape[1])


def evaluate_images(fake_images: Tensor, real_images: Tensor, classifier: nn.Module | None = None,
                    k: int = 3, batch_size: int = 500, *,
                    density_coverage_k: int | None = None) -> dict[str, float]:
    """All image metrics at once: dict(fid, inception_score, precision, recall).

    ``fid`` is FID-MNIST between fake and real; ``inception_score`` is that of the
    fake images; precision/recall use the classifier features with ``k``
    neighbours. Each image set goes through the classifier once.
    With ``density_coverage_k`` (an int, 5 in the paper) the dict also holds ``density`` and
    ``coverage`` (:func:`density_coverage` with that k, on the same features); the default
    ``None`` leaves them out, and the four default values never change.
    See: book/04_practice/evaluation.ipynb.
    """
    if density_coverage_k is not None and (isinstance(density_coverage_k, bool)
                                           or not isinstance(density_coverage_k, int) or density_coverage_k < 1):
        raise ValueError(f"density_coverage_k must be None or a positive int (5 in Naeem et al. 2020), "
                         f"got {density_coverage_k!r}")
    fake_feats, fake_logits = _features_and_logits(fake_images, classifier, batch_size)
    real_feats, _ = _features_and_logits(real_images, classifier, batch_size)
    metrics = {"fid": frechet_distance(fake_feats, real_feats),
               "inception_score": _inception_score_from_logits(fake_logits),
               **precision_recall(real_feats, fake_feats, k=k)}
    if density_coverage_k is not None:
        metrics.update(density_coverage(real_feats, fake_feats, k=density_coverage_k))
    return metrics


def mode_coverage(samples: Tensor, toy: ToyDistribution | str, num_std: float = 3.0,
                  min_samples: int = 1) -> dict:
    """Mode coverage of 2-D samples on a Gaussian mixture (the VEEGAN / PacGAN protocol).

    Each sample is assigned to its nearest mode centre; it is *high quality* when
    it lies within ``num_std`` standard deviations (Euclidean distance
    <= num_std * sigma) of that centre. A mode is *covered* when at least
    ``min_samples`` high-quality samples are assigned to it. The defaults are
    the published rule (Srivastava et al., 2017, VEEGAN; Lin et al., 2018,
    PacGAN, whose evaluation code counts a mode when it receives at least one
    high-quality sample, on 2,500 samples). Raise ``min_samples`` for a stricter
    count that ignores stray points.

    In 2-D, a perfect sampler is high quality with probability
    1 - exp(-num_std^2 / 2) (98.9% for 3 sigma, not the 1-D 99.7%).

    ``reverse_kl`` = KL(q || p) = sum_k q_k log(q_k / p_k), with q the histogram
    of the high-quality samples over modes and p the true (uniform) mode weights:
    0 for a perfectly balanced generator, log(K) when everything sits on one
    mode, NaN when no sample is high quality.

    Returns dict(modes_covered, num_modes, high_quality_fraction, reverse_kl,
    samples_per_mode (list of K ints)).
    See: book/02_gan_math/mode_collapse.ipynb.
    """
    if isinstance(toy, str):
        toy = toy_distribution(toy)
    if toy.modes is None:
        raise ValueError(f"mode_coverage needs a mixture with known modes; toy distribution {toy.name!r} has none")
    points = torch.as_tensor(samples).detach().to("cpu", torch.float64)
    if points.dim() != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(f"expected samples of shape (N, 2), got {tuple(points.shape)}")
    if not torch.isfinite(points).all():
        raise ValueError("samples contain NaN or infinite values (diverged generator?)")
    if num_std <= 0 or min_samples < 1:
        raise ValueError(f"need num_std > 0 and min_samples >= 1, got {num_std} and {min_samples}")
    modes = toy.modes.to(torch.float64)  # (K, 2)
    distance, nearest = torch.cdist(points, modes).min(dim=1)  # (N,), (N,)
    high_quality = distance <= num_std * toy.sigma  # (N,)
    counts = torch.bincount(nearest[high_quality], minlength=len(modes))  # (K,)
    num_high = int(counts.sum())
    if num_high == 0:
        reverse_kl = float("nan")
    else:
        q = counts.double() / num_high  # (K,)
        used = q > 0
        reverse_kl = float((q[used] * (q[used] * len(modes)).log()).sum())
    return {
        "modes_covered": int((counts >= min_samples).sum()),
        "num_modes": len(modes),
        "high_quality_fraction": num_high / len(points),
        "reverse_kl": reverse_kl,
        "samples_per_mode": counts.tolist(),
    }
