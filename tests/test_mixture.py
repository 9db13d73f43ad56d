import math

import pytest
import torch

from genlab.models.mixture import (
    GaussianMixture,
    em_step,
    fit_gaussian_mixture,
    gaussian_mixture_parameter_count,
    initialise_mixture,
)


def _two_blobs(n: int = 600, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n // 3, 2, generator=g, dtype=torch.float64) * 0.3 + torch.tensor([-2.0, 0.0], dtype=torch.float64)
    b = torch.randn(n - n // 3, 2, generator=g, dtype=torch.float64) @ torch.tensor(
        [[0.5, 0.2], [0.0, 0.3]], dtype=torch.float64) + torch.tensor([2.0, 1.0], dtype=torch.float64)
    return torch.cat([a, b])


def _random_mixture(covariance: str, k: int = 3, d: int = 2, seed: int = 0) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(k, generator=g, dtype=torch.float64) + 0.2
    means = 3 * torch.randn(k, d, generator=g, dtype=torch.float64)
    if covariance == "diag":
        covs = torch.rand(k, d, generator=g, dtype=torch.float64) + 0.1
    else:
        a = torch.randn(k, d, d, generator=g, dtype=torch.float64)
        covs = a @ a.transpose(1, 2) + 0.1 * torch.eye(d, dtype=torch.float64)
    return GaussianMixture(weights / weights.sum(), means, covs, covariance)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_log_prob_matches_torch_distributions(covariance):
    model = _random_mixture(covariance)
    x = torch.randn(50, 2, dtype=torch.float64)
    covs = model.covariances if covariance == "full" else torch.diag_embed(model.covariances)
    reference = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=model.weights),
        torch.distributions.MultivariateNormal(model.means, covariance_matrix=covs),
    ).log_prob(x)
    assert torch.allclose(model.log_prob(x), reference, atol=1e-10)


def test_density_integrates_to_one():
    model = _random_mixture("full")
    xs = torch.linspace(-25, 25, 801, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, xs, indexing="xy")
    density = model.log_prob(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)).exp()
    assert float(density.sum() * (xs[1] - xs[0]) ** 2) == pytest.approx(1.0, abs=1e-3)


def test_responsibilities_are_bayes_rule():
    model = _random_mixture("full")
    x = torch.randn(20, 2, dtype=torch.float64)
    joint = model.component_log_prob(x).exp()  # pi_k N_k(x)
    assert torch.allclose(model.responsibilities(x), joint / joint.sum(1, keepdim=True), atol=1e-12)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_em_never_decreases_the_log_likelihood(covariance):
    x = _two_blobs()
    _, history = fit_gaussian_mixture(x, 5, covariance, num_iters=60, tol=0.0,
                                      generator=torch.Generator().manual_seed(1))
    steps = torch.tensor(history).diff()
    assert (steps >= -1e-9).all(), steps.min()
    assert history[-1] > history[0]


def test_em_is_monotone_in_high_dimension_with_a_binding_floor():
    # pixels that are always 0 make the floor binding, as on MNIST
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(300, 40, generator=g, dtype=torch.float64) > 0.7).double()
    x[:, :10] = 0.0
    _, history = fit_gaussian_mixture(x, 4, "diag", num_iters=30, tol=0.0, variance_floor=0.05,
                                      generator=torch.Generator().manual_seed(0))
    assert (torch.tensor(history).diff() >= -1e-9).all()


def test_em_recovers_well_separated_components():
    x = _two_blobs(3000)
    model, _ = fit_gaussian_mixture(x, 2, "full", num_iters=200, generator=torch.Generator().manual_seed(0))
    order = model.means[:, 0].argsort()
    assert torch.allclose(model.means[order], torch.tensor([[-2.0, 0.0], [2.0, 1.0]], dtype=torch.float64), atol=0.05)
    assert torch.allclose(model.weights[order], torch.tensor([1 / 3, 2 / 3], dtype=torch.float64), atol=0.01)
    true_cov = torch.tensor([[0.5, 0.2], [0.0, 0.3]], dtype=torch.float64)
    assert torch.allclose(model.covariances[order][1], true_cov.T @ true_cov, atol=0.03)


def test_one_component_em_is_the_closed_form_mle():
    x = _two_blobs()
    model = initialise_mixture(x, 1, "full", generator=torch.Generator().manual_seed(0))
    model, _ = em_step(model, x, variance_floor=1e-12)
    centred = x - x.mean(0)
    assert torch.allclose(model.means[0], x.mean(0))
    assert torch.allclose(model.covariances[0], centred.T @ centred / len(x), atol=1e-10)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_variance_floor_holds(covariance):
    x = torch.zeros(50, 3, dtype=torch.float64)
    x[:25, 0] = 1.0  # dimensions 1 and 2 are constant: the unconstrained MLE variance is 0
    model, history = fit_gaussian_mixture(x, 2, covariance, num_iters=20, variance_floor=0.01,
                                          generator=torch.Generator().manual_seed(0))
    variances = model.covariances if covariance == "diag" else torch.linalg.eigvalsh(model.covariances)
    assert variances.min() >= 0.01 - 1e-12
    assert all(math.isfinite(h) for h in history)


def test_sampling_is_seeded_and_matches_moments():
    model = _random_mixture("full")
    a = model.sample(200_000, generator=torch.Generator().manual_seed(3))
    b = model.sample(200_000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    mean = (model.weights[:, None] * model.means).sum(0)
    outer = model.means[:, :, None] * model.means[:, None, :]  # (K, D, D)
    second = (model.weights[:, None, None] * (model.covariances + outer)).sum(0)
    covariance = second - mean[:, None] * mean[None, :]
    assert torch.allclose(a.mean(0), mean, atol=0.05)
    assert torch.allclose(torch.cov(a.T), covariance, rtol=0.03, atol=0.05)


def test_sample_components_follow_the_weights():
    model = _random_mixture("diag")
    _, components = model.sample(100_000, generator=torch.Generator().manual_seed(0), return_components=True)
    frequencies = torch.bincount(components, minlength=3).double() / 100_000
    assert torch.allclose(frequencies, model.weights, atol=0.01)


def test_concatenate_is_the_weighted_sum_of_densities():
    a, b = _random_mixture("diag", seed=1), _random_mixture("diag", k=2, seed=2)
    pooled = GaussianMixture.concatenate([a, b], [0.25, 0.75])
    x = torch.randn(30, 2, dtype=torch.float64)
    expected = torch.logaddexp(math.log(0.25) + a.log_prob(x), math.log(0.75) + b.log_prob(x))
    assert pooled.num_components == 5
    assert torch.allclose(pooled.log_prob(x), expected, atol=1e-12)


def test_parameter_count():
    assert gaussian_mixture_parameter_count(1, 2, "full") == 5  # 2 means + 3 covariance entries
    assert gaussian_mixture_parameter_count(3, 2, "diag") == 2 + 3 * 4
    assert gaussian_mixture_parameter_count(10, 784, "full") == 9 + 10 * (784 + 784 * 785 // 2)
    assert _random_mixture("full").num_parameters == gaussian_mixture_parameter_count(3, 2, "full")


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="covariance type"):
        gaussian_mixture_parameter_count(2, 2, "spherical")
    with pytest.raises(ValueError, match="shape \\(N, D\\)"):
        fit_gaussian_mixture(torch.zeros(10), 2)
    with pytest.raises(ValueError, match="between 1 and the number of points"):
        fit_gaussian_mixture(torch.zeros(3, 2), 5)
    with pytest.raises(ValueError, match="unbounded"):
        fit_gaussian_mixture(torch.zeros(3, 2), 1, variance_floor=0.0)
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture(torch.tensor([0.5, 0.6]), torch.zeros(2, 2), torch.ones(2, 2), "diag")
    with pytest.raises(ValueError, match="dimension 2"):
        _random_mixture("diag").log_prob(torch.zeros(4, 3))
