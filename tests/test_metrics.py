"""Tests for genlab.metrics: Frechet distance, Inception Score, precision/recall, mode coverage."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from genlab.classifier import CLASSIFIER_WEIGHTS
from genlab.data import grid25, ring8, two_moons
from genlab.metrics import (
    MetricWarning,
    classifier_features,
    classifier_inception_score,
    evaluate_images,
    fid_mnist,
    frechet_distance,
    label_histogram,
    mode_coverage,
    precision_recall,
)


def _gaussian_with_exact_moments(mean: torch.Tensor, cov: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n points whose *sample* mean and (unbiased) covariance equal ``mean`` and ``cov`` exactly."""
    z = torch.randn(n, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = z - z.mean(0)
    whitening = torch.linalg.cholesky(z.T @ z / (n - 1))
    z = torch.linalg.solve_triangular(whitening, z.T, upper=False).T  # sample covariance = I
    return z @ torch.linalg.cholesky(cov).T + mean


def _random_spd(dim: int, seed: int) -> torch.Tensor:
    a = torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T / dim + 0.1 * torch.eye(dim, dtype=torch.float64)


# --- Frechet distance ----------------------------------------------------------------------------


def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = torch.randn(400, 16, generator=torch.Generator().manual_seed(0)) @ torch.randn(16, 16)
    scale = torch.cov(x.T.double()).trace().item()
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6 * scale)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    var_a = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    var_b = torch.tensor([1.0, 1.0, 0.25, 9.0], dtype=torch.float64)
    mu_a = torch.tensor([0.0, 1.0, -1.0, 2.0], dtype=torch.float64)
    mu_b = torch.tensor([1.0, 1.0, 0.5, 0.0], dtype=torch.float64)
    a = _gaussian_with_exact_moments(mu_a, torch.diag(var_a), 300, seed=1)
    b = _gaussian_with_exact_moments(mu_b, torch.diag(var_b), 200, seed=2)
    expected = (mu_a - mu_b).square().sum() + (var_a.sqrt() - var_b.sqrt()).square().sum()
    assert frechet_distance(a, b) == pytest.approx(expected.item(), rel=1e-9)


def test_frechet_distance_with_non_commuting_covariances():
    # With S_a = I the trace term is Tr(S_b^{1/2}) = sum of sqrt(eigenvalues of S_b), for any S_b.
    dim = 6
    cov_b = _random_spd(dim, seed=3)
    mu_b = torch.linspace(-1, 1, dim, dtype=torch.float64)
    a = _gaussian_with_exact_moments(torch.zeros(dim, dtype=torch.float64), torch.eye(dim, dtype=torch.float64),
                                     500, seed=4)
    b = _gaussian_with_exact_moments(mu_b, cov_b, 500, seed=5)
    expected = mu_b.square().sum() + dim + cov_b.trace() - 2 * torch.linalg.eigvalsh(cov_b).sqrt().sum()
    assert frechet_distance(a, b) == pytest.approx(expected.item(), rel=1e-9)


def test_frechet_distance_agrees_with_scipy_sqrtm_and_is_symmetric():
    linalg = pytest.importorskip("scipy.linalg")
    dim = 5
    a = _gaussian_with_exact_moments(torch.zeros(dim, dtype=torch.float64), _random_spd(dim, 6), 300, seed=7)
    b = _gaussian_with_exact_moments(torch.ones(dim, dtype=torch.float64), _random_spd(dim, 8), 300, seed=9)
    cov_a, cov_b = torch.cov(a.T).numpy(), torch.cov(b.T).numpy()
    cross = linalg.sqrtm(cov_a @ cov_b).real
    expected = dim + (cov_a + cov_b - 2 * cross).trace()  # ||mu_a - mu_b||^2 = dim
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-7)
    assert frechet_distance(b, a) == pytest.approx(frechet_distance(a, b), rel=1e-9)
    # Rotating both sets by the same orthogonal matrix leaves the distance unchanged.
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(10),
                                              dtype=torch.float64))
    assert frechet_distance(a @ rotation, b @ rotation) == pytest.approx(frechet_distance(a, b), rel=1e-9)


def test_frechet_distance_grows_with_added_noise():
    generator = torch.Generator().manual_seed(11)
    x = torch.randn(2000, 8, generator=generator)
    noise = torch.randn(2000, 8, generator=generator)
    distances = [frechet_distance(x, x + s * noise) for s in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert distances[0] < 1e-6
    assert all(d1 < d2 for d1, d2 in zip(distances, distances[1:])), distances


def test_frechet_distance_rejects_bad_input():
    x = torch.randn(10, 4)
    with pytest.raises(ValueError, match="feature dimensions differ"):
        frechet_distance(x, torch.randn(10, 5))
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        frechet_distance(x.flatten(), x)
    with pytest.raises(ValueError, match="at least 2 rows"):
        frechet_distance(x[:1], x)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(x, bad)


# --- precision and recall ------------------------------------------------------------------------


def test_precision_recall_of_a_set_against_itself_is_one():
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(12))
    assert precision_recall(x, x, k=3) == {"precision": 1.0, "recall": 1.0}


def test_precision_recall_of_far_apart_sets_is_zero():
    generator = torch.Generator().manual_seed(13)
    real = torch.randn(300, 8, generator=generator)
    fake = torch.randn(300, 8, generator=generator) + 100.0
    assert precision_recall(real, fake) == {"precision": 0.0, "recall": 0.0}


def test_precision_measures_fidelity_and_recall_measures_diversity():
    generator = torch.Generator().manual_seed(14)
    real = torch.randn(1000, 2, generator=generator)
    # A "collapsed" generator: real points near the centre only -> all realistic, little diversity.
    collapsed = real[real.norm(dim=1) < 0.5]
    result = precision_recall(real, collapsed, k=3, chunk_size=256)
    assert result["precision"] == 1.0 and result["recall"] < 0.4
    # A "blurry" generator: spread far wider than the data -> diverse but mostly unrealistic.
    spread = 4.0 * torch.randn(1000, 2, generator=generator)
    result = precision_recall(real, spread, k=3, chunk_size=256)
    assert result["recall"] > 0.9 and result["precision"] < 0.4


def test_precision_recall_rejects_bad_input():
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="feature dimensions differ"):
        precision_recall(x, torch.randn(10, 4))
    with pytest.raises(ValueError, match="at least 4 rows"):
        precision_recall(x[:3], x, k=3)


# --- classifier-based image metrics on a transparent stand-in classifier -------------------------


class PixelClassifier(nn.Module):
    """Reads the class off pixels 0..9 of the first image row: logits = 50 * those pixels."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :10]

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return 50.0 * features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _images_of_classes(labels: list[int]) -> torch.Tensor:
    images = torch.zeros(len(labels), 1, 28, 28)
    images[torch.arange(len(labels)), 0, 0, torch.tensor(labels)] = 1.0
    return images


def test_inception_score_is_number_of_equally_used_confident_classes():
    stand_in = PixelClassifier().eval()
    assert classifier_inception_score(_images_of_classes(list(range(10)) * 20), stand_in) == pytest.approx(10, rel=1e-6)
    assert classifier_inception_score(_images_of_classes([0, 1] * 30), stand_in) == pytest.approx(2, rel=1e-6)
    assert classifier_inception_score(_images_of_classes([7] * 50), stand_in) == pytest.approx(1, rel=1e-6)
    # Unsure predictions (uniform p(y|x)) score 1 however varied the images are.
    assert classifier_inception_score(torch.zeros(40, 1, 28, 28), stand_in) == pytest.approx(1, rel=1e-6)


def test_inception_score_splits_score_each_group_separately():
    stand_in = PixelClassifier().eval()
    images = _images_of_classes([0, 1, 2, 3] * 10 + [4, 5] * 20)  # first half 4 classes, second half 2
    # Pooled: p(y) = (1/8, 1/8, 1/8, 1/8, 1/4, 1/4), so IS = exp(H(y)) = sqrt(32).
    assert classifier_inception_score(images, stand_in, splits=1) == pytest.approx(math.sqrt(32), rel=1e-6)
    assert classifier_inception_score(images, stand_in, splits=2) == pytest.approx(3, rel=1e-6)
    with pytest.raises(ValueError, match="splits"):
        classifier_inception_score(images, stand_in, splits=0)


def test_label_histogram_counts_predictions():
    labels = [3] * 5 + [0] * 2 + [9]
    counts = label_histogram(_images_of_classes(labels), PixelClassifier().eval(), batch_size=3)
    assert counts.tolist() == [2, 0, 0, 5, 0, 0, 0, 0, 0, 1]
    assert counts.dtype == torch.int64


def test_image_metrics_reject_images_outside_unit_range():
    stand_in = PixelClassifier().eval()
    tanh_images = torch.rand(4, 1, 28, 28) * 2 - 1
    with pytest.raises(ValueError, match="to_unit_range"):
        classifier_features(tanh_images, stand_in)
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        classifier_features(torch.rand(4, 784), stand_in)
    with pytest.raises(ValueError, match="training mode"):
        classifier_features(torch.rand(4, 1, 28, 28), PixelClassifier().train())


def test_evaluate_images_agrees_with_the_single_metrics():
    stand_in = PixelClassifier().eval()
    generator = torch.Generator().manual_seed(18)
    fake, real = torch.rand(60, 1, 28, 28, generator=generator), torch.rand(80, 1, 28, 28, generator=generator)
    fake[:, :, 0, :10] *= 0.5  # a different feature distribution
    metrics = evaluate_images(fake, real, stand_in, k=3)
    fake_feats, real_feats = classifier_features(fake, stand_in), classifier_features(real, stand_in)
    assert fake_feats.shape == (60, 10)
    assert metrics["fid"] == pytest.approx(fid_mnist(fake, real, stand_in), rel=1e-9)
    assert metrics["fid"] == pytest.approx(frechet_distance(fake_feats, real_feats), rel=1e-9)
    assert metrics["inception_score"] == pytest.approx(classifier_inception_score(fake, stand_in), rel=1e-9)
    expected = precision_recall(real_feats, fake_feats, k=3)  # argument order: real first
    assert (metrics["precision"], metrics["recall"]) == (expected["precision"], expected["recall"])


# --- mode coverage -------------------------------------------------------------------------------


@pytest.mark.parametrize("toy", [ring8(), grid25()], ids=["ring8", "grid25"])
def test_exact_samples_cover_every_mode_with_high_quality(toy):
    samples = toy.sample(20_000, generator=torch.Generator().manual_seed(15))
    result = mode_coverage(samples, toy)
    assert result["modes_covered"] == result["num_modes"] == len(toy.modes)
    # In 2-D, P(|x - mode| <= 3 sigma) = 1 - exp(-9/2) = 0.9889 (a chi distribution with 2 dof).
    assert result["high_quality_fraction"] == pytest.approx(1 - math.exp(-4.5), abs=0.004)
    assert 0.0 <= result["reverse_kl"] < 0.01
    assert sum(result["samples_per_mode"]) == round(result["high_quality_fraction"] * 20_000)


def test_samples_from_three_modes_cover_three():
    toy = grid25()
    generator = torch.Generator().manual_seed(16)
    chosen = torch.tensor([0, 7, 24])
    samples = toy.modes[chosen[torch.randint(3, (3000,), generator=generator)]]
    samples = samples + toy.sigma * torch.randn(3000, 2, generator=generator)
    result = mode_coverage(samples, toy)
    assert result["modes_covered"] == 3
    assert [i for i, c in enumerate(result["samples_per_mode"]) if c > 0] == chosen.tolist()
    # Three equally used modes out of 25: KL(q || uniform) = log(25 / 3).
    assert result["reverse_kl"] == pytest.approx(math.log(25 / 3), abs=0.01)


def test_far_away_points_are_not_high_quality_and_threshold_applies():
    toy = ring8()
    far = torch.full((100, 2), 5.0)
    on_mode = toy.modes[:1].repeat(10, 1)  # 10 exact hits on mode 0
    result = mode_coverage(torch.cat([far, on_mode]), toy)
    assert result["high_quality_fraction"] == pytest.approx(10 / 110)
    assert result["modes_covered"] == 1
    assert result["reverse_kl"] == pytest.approx(math.log(8))
    assert mode_coverage(torch.cat([far, on_mode]), toy, min_samples=11)["modes_covered"] == 0
    # Just outside 3 sigma of a mode is not high quality; just inside is.
    offset = torch.tensor([[1.0 + 3.05 * toy.sigma, 0.0], [1.0 + 2.95 * toy.sigma, 0.0]])
    assert mode_coverage(offset, toy)["samples_per_mode"][0] == 1
    assert math.isnan(mode_coverage(far, toy)["reverse_kl"])


def test_mode_coverage_rejects_bad_input():
    with pytest.raises(ValueError, match="has none"):
        mode_coverage(torch.zeros(5, 2), two_moons())
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        mode_coverage(torch.zeros(5, 3), ring8())
    with pytest.raises(ValueError, match="NaN"):
        mode_coverage(torch.tensor([[float("nan"), 0.0]]), "ring8")


# --- the shipped classifier on real digits -------------------------------------------------------


@pytest.fixture(scope="module")
def real_digits(mnist_test):
    if not CLASSIFIER_WEIGHTS["mnist"].exists():
        pytest.skip("classifier weights not found: run python scripts/train_classifier.py")
    return mnist_test.images[:600], mnist_test.labels[:600]


def test_real_digits_score_near_ten_and_are_classified_evenly(real_digits):
    images, labels = real_digits
    assert classifier_inception_score(images) > 9.0
    counts = label_histogram(images)
    true_counts = torch.bincount(labels, minlength=10)
    assert ((counts - true_counts).abs().sum() / len(images)).item() < 0.06  # at most 3% misplaced
    assert (counts > 0.07 * len(images)).all() and (counts < 0.13 * len(images)).all()


def test_fid_mnist_separates_real_from_noise(real_digits):
    images, _ = real_digits
    noise = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(17))
    feats_a, feats_b = classifier_features(images[:300]).split(150)
    feats_noise = classifier_features(noise)
    assert feats_a.shape == (150, 128)
    assert frechet_distance(feats_a, feats_b) < 0.05 * frechet_distance(feats_a, feats_noise)
    same = precision_recall(feats_a, feats_b)
    assert same["precision"] > 0.6 and same["recall"] > 0.6
    noise_scores = precision_recall(feats_a, feats_noise)
    assert noise_scores["precision"] < 0.05 and noise_scores["recall"] < 0.05


# --- degenerate inputs warn, range errors advise what fits ------------------------------------------


def test_frechet_distance_warns_when_covariances_are_rank_deficient():
    draw = torch.Generator().manual_seed(4)
    few_a, few_b = torch.randn(5, 16, generator=draw), torch.randn(5, 16, generator=draw)
    with pytest.warns(MetricWarning, match=r"5 and 5 samples of 16-d features.*rank at most N - 1"):
        frechet_distance(few_a, few_b)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MetricWarning)
        frechet_distance(torch.randn(17, 16, generator=draw), torch.randn(40, 16, generator=draw))


def test_precision_recall_warns_when_fake_samples_have_no_spread():
    real = torch.randn(200, 8, generator=torch.Generator().manual_seed(5))
    constant = real.mean(0).expand(200, 8)  # one point, in the middle of the real cloud
    with pytest.warns(MetricWarning, match="almost no spread.*untrained or collapsed") as record:
        scores = precision_recall(real, constant)
    assert scores["precision"] == 1.0 and len(record) == 1  # what the warning is about
    with pytest.warns(MetricWarning, match="almost no spread"):
        precision_recall(real, constant + 1e-4 * torch.randn(200, 8, generator=torch.Generator().manual_seed(6)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", MetricWarning)
        precision_recall(real[:100], real[100:])


@pytest.mark.parametrize("scale, shift, advice, not_advice", [
    (255.0, 0.0, "x / 255", "to_unit_range(x, (-1, 1))"),
    (1 / 0.3081, -0.1307 / 0.3081, "Normalize", "to_unit_range(x, (-1, 1))"),
    (2.0, -1.0, "to_unit_range(x, (-1, 1))", "x / 255"),
])
def test_range_errors_advise_what_fits_the_range_found(scale, shift, advice, not_advice):
    images = torch.linspace(0, 1, 4 * 784).view(4, 1, 28, 28) * scale + shift
    with pytest.raises(ValueError, match=r"lie in \[") as info:
        classifier_features(images, PixelClassifier().eval())
    assert advice in str(info.value) and not_advice not in str(info.value)


def test_fid_of_five_images_and_precision_of_grey_images_warn(real_digits):
    images, _ = real_digits
    with pytest.warns(MetricWarning, match="5 and 5 samples of 128-d"):
        fid_mnist(images[:5], images[5:10])
    grey = torch.full((300, 1, 28, 28), 0.5)
    with pytest.warns(MetricWarning, match="almost no spread"):
        precision_recall(classifier_features(images[:300]), classifier_features(grey))
