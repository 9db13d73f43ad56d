"""Gradient estimators: both unbiased on a problem with a known gradient; variances as derived."""

import math

import pytest
import torch

from genlab.estimators import pathwise_gradient, score_function_gradient


def quadratic(c):
    """f(z) = (z - c)^2: E f = (mu - c)^2 + sigma^2, d/dmu = 2 (mu - c), d/dsigma = 2 sigma."""
    return lambda z: (z - c) ** 2


@pytest.mark.parametrize("estimator", ["pathwise", "score", "score_loo"])
def test_unbiased_on_quadratic(estimator):
    generator = torch.Generator().manual_seed(0)
    mu, sigma, c, repeats = 0.7, 0.5, -0.3, 20_000
    if estimator == "pathwise":
        grads = pathwise_gradient(quadratic(c), mu, sigma, 10, repeats, generator=generator)
    else:
        baseline = "leave_one_out" if estimator == "score_loo" else None
        grads = score_function_gradient(quadratic(c), mu, sigma, 10, repeats, baseline=baseline, generator=generator)
    for estimate, truth in [(grads.mu, 2 * (mu - c)), (grads.sigma, 2 * sigma)]:
        assert estimate.shape == (repeats,)
        std_error = estimate.std().item() / math.sqrt(repeats)
        assert abs(estimate.mean().item() - truth) < 4 * std_error + 1e-9


def test_pathwise_variance_matches_closed_form():
    # per sample d/dmu = 2 (z - c) = 2 (mu - c) + 2 sigma eps: variance 4 sigma^2 / n
    generator = torch.Generator().manual_seed(1)
    grads = pathwise_gradient(quadratic(0.0), 1.0, 0.5, 4, 50_000, generator=generator)
    assert grads.mu.var().item() == pytest.approx(4 * 0.25 / 4, rel=0.03)


def test_score_function_matches_autograd_formula():
    # the surrogate's gradient is f(z) (z - mu) / sigma^2 for mu and f(z) ((z-mu)^2/sigma^3 - 1/sigma) for sigma
    mu, sigma = 0.2, 1.5
    grads = score_function_gradient(quadratic(1.0), mu, sigma, 1, 5, generator=torch.Generator().manual_seed(2))
    z = mu + sigma * torch.randn((5, 1, *()), generator=torch.Generator().manual_seed(2))
    f = (z - 1.0) ** 2
    assert torch.allclose(grads.mu, (f * (z - mu) / sigma**2).squeeze(1))
    assert torch.allclose(grads.sigma, (f * ((z - mu) ** 2 / sigma**3 - 1 / sigma)).squeeze(1))


def test_baseline_reduces_variance_far_from_optimum():
    generator = torch.Generator().manual_seed(3)
    plain = score_function_gradient(quadratic(0.0), 3.0, 1.0, 16, 5_000, generator=generator)
    loo = score_function_gradient(quadratic(0.0), 3.0, 1.0, 16, 5_000, baseline="leave_one_out", generator=generator)
    assert loo.mu.var() < 0.5 * plain.mu.var()


def test_vector_parameters_and_shapes():
    mu, sigma = torch.zeros(3), torch.ones(3)
    target = torch.tensor([1.0, -1.0, 0.5])

    def f(z):  # (R, n, 3) -> (R, n)
        return ((z - target) ** 2).sum(dim=-1)

    for estimator in (pathwise_gradient, score_function_gradient):
        grads = estimator(f, mu, sigma, 8, 6, generator=torch.Generator().manual_seed(4))
        assert grads.mu.shape == (6, 3) and grads.sigma.shape == (6, 3)
    exact = pathwise_gradient(f, mu, sigma, 20_000, 1, generator=torch.Generator().manual_seed(5)).mu[0]
    assert torch.allclose(exact, 2 * (mu - target), atol=0.05, rtol=0)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="sigma must be positive"):
        pathwise_gradient(quadratic(0.0), 0.0, -1.0, 4)
    with pytest.raises(ValueError, match="unknown baseline"):
        score_function_gradient(quadratic(0.0), 0.0, 1.0, 4, baseline="mean")
    with pytest.raises(ValueError, match="num_samples >= 2"):
        score_function_gradient(quadratic(0.0), 0.0, 1.0, 1, baseline="leave_one_out")
    with pytest.raises(ValueError, match="one value per sample"):
        pathwise_gradient(lambda z: z.sum(), 0.0, 1.0, 4)
