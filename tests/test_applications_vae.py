"""Tests for genlab.applications_vae: ROC/AUC, PSNR, inpainting, anomaly scores, image moments, CAS."""

import math

import pytest
import torch

from genlab.applications_vae import (
    classification_accuracy,
    image_moments,
    inpaint,
    negative_elbo,
    psnr,
    reconstruction_error,
    roc_auc,
    roc_curve,
    train_digit_classifier,
)
from genlab.models.vae import MLPVAE


def brute_force_auc(negatives, positives):
    wins = sum((p > n) + 0.5 * (p == n) for p in positives.tolist() for n in negatives.tolist())
    return wins / (len(positives) * len(negatives))


def test_auc_of_perfectly_separated_scores_is_one_and_reversed_is_zero():
    negatives, positives = torch.arange(10.0), torch.arange(10.0) + 100
    assert roc_auc(negatives, positives) == 1.0
    assert roc_auc(positives, negatives) == 0.0


def test_auc_of_identical_distributions_is_about_one_half():
    g = torch.Generator().manual_seed(0)
    negatives, positives = torch.randn(4000, generator=g), torch.randn(4000, generator=g)
    assert abs(roc_auc(negatives, positives) - 0.5) < 0.02


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_brute_force_pairwise_count_with_ties(seed):
    g = torch.Generator().manual_seed(seed)
    negatives = torch.randint(0, 6, (37,), generator=g).float()  # many ties
    positives = torch.randint(2, 9, (23,), generator=g).float()
    assert roc_auc(negatives, positives) == pytest.approx(brute_force_auc(negatives, positives), abs=1e-12)


def test_roc_curve_runs_from_origin_to_one_and_its_area_is_the_auc():
    g = torch.Generator().manual_seed(3)
    negatives, positives = torch.randn(300, generator=g), torch.randn(200, generator=g) + 1
    fpr, tpr, thresholds = roc_curve(negatives, positives)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert torch.all(fpr[1:] >= fpr[:-1]) and torch.all(tpr[1:] >= tpr[:-1])
    assert math.isinf(thresholds[0])
    assert float(torch.trapezoid(tpr, fpr)) == pytest.approx(roc_auc(negatives, positives), abs=1e-9)


def test_roc_needs_both_classes():
    with pytest.raises(ValueError, match="at least one negative"):
        roc_auc(torch.tensor([]), torch.tensor([1.0]))


def test_psnr_of_known_mse():
    target = torch.zeros(2, 1, 28, 28)
    estimate = torch.full_like(target, 0.1)  # MSE 0.01 -> 20 dB
    assert torch.allclose(psnr(estimate, target), torch.tensor([20.0, 20.0]))
    with pytest.raises(ValueError, match="same shape"):
        psnr(estimate, target[:1])


class ShiftModel(torch.nn.Module):
    """A stand-in 'VAE' whose reconstruction is a constant image: inpainting converges to it."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def reconstruct(self, x, labels=None):
        return torch.full_like(x, self.value)


def test_inpaint_keeps_known_pixels_and_fills_the_rest_with_the_reconstruction():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 28, 28, generator=g)
    known = torch.ones_like(images)
    known[:, :, 10:18, 10:18] = 0
    out = inpaint(ShiftModel(0.25), images, known, num_iters=3)
    assert torch.equal(out[known.bool()], images[known.bool()])
    assert torch.all(out[~known.bool()] == 0.25)
    iterates = inpaint(ShiftModel(0.25), images, known, num_iters=2, history=True)
    assert len(iterates) == 3
    mean_known = (images * known).flatten(1).sum(1) / known.flatten(1).sum(1)
    assert torch.allclose(iterates[0][:, 0, 12, 12], mean_known)  # init="mean"
    with pytest.raises(ValueError, match="mask shape"):
        inpaint(ShiftModel(0.0), images, known[:1])


def test_inpaint_with_a_real_vae_runs_and_is_deterministic():
    torch.manual_seed(0)
    model = MLPVAE(latent_dim=4)
    images = torch.rand(2, 1, 28, 28)
    known = (torch.rand(2, 1, 28, 28) > 0.5).float()
    a = inpaint(model, images, known, num_iters=4)
    b = inpaint(model, images, known, num_iters=4)
    assert torch.equal(a, b) and a.shape == images.shape and model.training


def test_anomaly_scores_match_their_definitions():
    torch.manual_seed(0)
    model = MLPVAE(latent_dim=4).eval()
    images = torch.rand(5, 1, 28, 28)
    expected = (images - model.reconstruct(images)).pow(2).flatten(1).sum(1)
    assert torch.allclose(reconstruction_error(model, images, batch_size=2), expected, atol=1e-5)
    one = negative_elbo(model, images, generator=torch.Generator().manual_seed(0))
    assert one.shape == (5,) and torch.all(one > 0)  # -ELBO >= -log p(x) > 0 for Bernoulli pixels


def test_image_moments_measure_slant_and_thickness():
    upright = torch.zeros(1, 1, 28, 28)
    upright[0, 0, 4:24, 12:16] = 1.0  # a vertical bar, 4 px wide
    slanted = torch.zeros(1, 1, 28, 28)
    for row in range(4, 24):
        shift = (24 - row) // 3  # the top leans to the right
        slanted[0, 0, row, 8 + shift : 12 + shift] = 1.0
    thin = torch.zeros(1, 1, 28, 28)
    thin[0, 0, 4:24, 13:15] = 1.0
    thick = torch.zeros(1, 1, 28, 28)
    thick[0, 0, 4:24, 11:17] = 1.0
    m = image_moments(torch.cat([upright, slanted, thin, thick]))
    assert abs(float(m["slant"][0])) < 1e-6
    assert float(m["slant"][1]) == pytest.approx(1 / 3, abs=0.05)  # x shifts 1 px per 3 rows up
    assert float(m["thickness"][2]) < float(m["thickness"][0]) < float(m["thickness"][3])
    assert float(m["thickness"][3]) == pytest.approx(6, rel=0.2)
    assert float(m["ink"][0]) == 80.0
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        image_moments(torch.zeros(2, 784))


def test_train_digit_classifier_learns_a_separable_toy_task_and_is_deterministic():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (256,), generator=g)
    images = torch.zeros(256, 1, 28, 28)
    images[labels == 0, :, :, :14] = 1.0  # class 0: left half lit; class 1: right half lit
    images[labels == 1, :, :, 14:] = 1.0
    a = train_digit_classifier(images, labels, steps=30, seed=0, batch_size=32, width=4)
    b = train_digit_classifier(images, labels, steps=30, seed=0, batch_size=32, width=4)
    assert classification_accuracy(a, images, labels) == 1.0
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_roc_curve_points_match_the_threshold_definition():
    g = torch.Generator().manual_seed(4)
    negatives = torch.randint(0, 8, (50,), generator=g).float()
    positives = torch.randint(2, 10, (30,), generator=g).float()
    fpr, tpr, thresholds = roc_curve(negatives, positives)
    for f, t, tau in zip(fpr.tolist(), tpr.tolist(), thresholds.tolist()):
        assert f == pytest.approx((negatives >= tau).double().mean().item())
        assert t == pytest.approx((positives >= tau).double().mean().item())
    assert len(thresholds) == len(torch.unique(torch.cat([negatives, positives]))) + 1
