import math

import pytest
import torch

from genlab.data import ring8
from genlab.diffusion import mixture_denoiser, mixture_from_toy
from genlab.flow_matching import euler_sample, flow_matching_loss, heun_sample, interpolate
from genlab.metrics import mode_coverage
from genlab.models import MLPDenoiser
from genlab.models.mixture import GaussianMixture

D64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: one thread, restored afterwards


def _gaussian_data() -> GaussianMixture:
    cov = torch.tensor([[0.5, 0.3], [0.3, 0.4]], dtype=D64)
    return GaussianMixture(torch.ones(1, dtype=D64), torch.tensor([[1.0, -0.5]], dtype=D64), cov[None], "full")


def test_interpolation_endpoints():
    noise, x1 = torch.randn(3, 2), torch.randn(3, 2)
    assert torch.equal(interpolate(noise, x1, torch.zeros(3)), noise)
    assert torch.equal(interpolate(noise, x1, torch.ones(3)), x1)
    assert torch.allclose(interpolate(noise, x1, torch.full((3,), 0.25)), 0.75 * noise + 0.25 * x1)


def test_exact_velocity_matches_monte_carlo_conditional_mean():
    """v(x, s) = E[x1 - x0 | x_s = x]: check by binning joint samples near a point."""
    data = _gaussian_data()
    velocity = mixture_denoiser(data, kind="velocity")
    g = torch.Generator().manual_seed(0)
    s = 0.6
    x1 = data.sample(400_000, generator=g)
    x0 = torch.randn(400_000, 2, generator=g, dtype=D64)
    xs = (1 - s) * x0 + s * x1
    point = torch.tensor([0.5, -0.2], dtype=D64)
    near = (xs - point).norm(dim=1) < 0.05
    mc = (x1 - x0)[near].mean(0)
    exact = velocity(point[None], torch.tensor([s], dtype=D64))[0]
    assert near.sum() > 1000
    assert torch.allclose(mc, exact, atol=0.06)


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_exact_velocity_reproduces_gaussian_data(sampler):
    data = _gaussian_data()
    velocity = mixture_denoiser(data, kind="velocity")
    g = torch.Generator().manual_seed(0)
    run = euler_sample if sampler == "euler" else heun_sample
    x = run(velocity, (4_000, 2), num_steps=50 if sampler == "euler" else 25, generator=g)
    assert torch.allclose(x.double().mean(0), data.means[0], atol=0.05)
    assert torch.allclose(torch.cov(x.double().T), data.covariances[0], atol=0.05)


def test_heun_is_second_order():
    """Same starting noise: the error against a fine solution falls ~4x per halving of h for Heun, ~2x for Euler."""
    velocity = mixture_denoiser(_gaussian_data(), kind="velocity")
    noise = torch.randn(200, 2, generator=torch.Generator().manual_seed(1), dtype=D64)
    reference = heun_sample(velocity, (200, 2), num_steps=400, noise=noise, final_euler=False)

    def error(run, n, **kwargs):
        return float((run(velocity, (200, 2), num_steps=n, noise=noise, **kwargs) - reference).norm(dim=1).mean())

    euler_ratio = error(euler_sample, 10) / error(euler_sample, 20)
    heun_ratio = error(heun_sample, 10, final_euler=False) / error(heun_sample, 20, final_euler=False)
    assert 1.6 < euler_ratio < 2.5 and 3.0 < heun_ratio < 5.0
    assert error(heun_sample, 10, final_euler=False) < error(euler_sample, 20)  # 20 evaluations each


def test_exact_velocity_covers_the_ring():
    toy = ring8()
    velocity = mixture_denoiser(mixture_from_toy(toy), kind="velocity")
    for run in (euler_sample, heun_sample):
        x = run(velocity, (2_500, 2), num_steps=25, generator=torch.Generator().manual_seed(0))
        result = mode_coverage(x, toy)
        assert result["modes_covered"] == 8 and result["high_quality_fraction"] > 0.97
    # a final trapezoid step averages in v(x', 1) and loses most of the final jump onto the modes
    x = heun_sample(velocity, (2_500, 2), num_steps=25, final_euler=False, generator=torch.Generator().manual_seed(0))
    assert mode_coverage(x, toy)["high_quality_fraction"] < 0.8


def test_loss_shapes_gradients_and_determinism():
    model = MLPDenoiser(hidden_dim=16, num_blocks=1, time_dim=8)

    def velocity_fn(x, s):
        return model(x, s * 1000)

    x1 = torch.randn(32, 2)
    a = flow_matching_loss(velocity_fn, x1, generator=torch.Generator().manual_seed(0))
    b = flow_matching_loss(velocity_fn, x1, generator=torch.Generator().manual_seed(0))
    assert a.shape == () and torch.equal(a, b)
    a.backward()
    assert all(p.grad is not None for p in model.parameters())
    # the loss of the exact velocity is the irreducible variance, below any other's
    data = _gaussian_data()
    exact = mixture_denoiser(data, kind="velocity")
    x1 = data.sample(20_000, generator=torch.Generator().manual_seed(2))
    best = flow_matching_loss(exact, x1, generator=torch.Generator().manual_seed(3))
    worse = flow_matching_loss(lambda x, s: 0.9 * exact(x, s), x1, generator=torch.Generator().manual_seed(3))
    assert float(best) < float(worse)
    for run in (euler_sample, heun_sample):
        p = run(velocity_fn, (4, 2), num_steps=3, generator=torch.Generator().manual_seed(5))
        q = run(velocity_fn, (4, 2), num_steps=3, generator=torch.Generator().manual_seed(5))
        assert p.shape == (4, 2) and torch.equal(p, q)


def test_network_evaluations_are_as_documented():
    calls = []

    def velocity_fn(x, s):
        calls.append(float(s[0]))
        return torch.zeros_like(x)

    euler_sample(velocity_fn, (2, 2), num_steps=5)
    assert len(calls) == 5 and calls[0] == 0.0 and math.isclose(calls[-1], 0.8, rel_tol=1e-6)
    calls.clear()
    heun_sample(velocity_fn, (2, 2), num_steps=5)
    assert len(calls) == 9 and math.isclose(calls[-1], 0.8, rel_tol=1e-6)  # the last step is Euler's
    calls.clear()
    heun_sample(velocity_fn, (2, 2), num_steps=5, final_euler=False)
    assert len(calls) == 10 and math.isclose(calls[-1], 1.0, rel_tol=1e-6)


def test_clear_errors():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate(torch.zeros(2, 2), torch.zeros(2, 2), torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="one time s per example"):
        interpolate(torch.zeros(2, 2), torch.zeros(2, 2), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="num_steps"):
        euler_sample(lambda x, s: x, (2, 2), num_steps=0)
