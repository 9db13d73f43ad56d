import math

import pytest
import torch

from genlab.data import grid25, ring8
from genlab.diffusion import (
    NoiseSchedule,
    classifier_free_guidance,
    ddim_sample,
    ddim_step,
    ddim_timesteps,
    ddpm_sample,
    ddpm_step,
    diffusion_loss,
    diffusion_vlb,
    mixture_denoiser,
    mixture_from_toy,
    mixture_score,
    noised_mixture,
    to_model_range,
    vlb_bits_per_dim,
)
from genlab.metrics import mode_coverage
from genlab.models import MLPDenoiser
from genlab.models.mixture import GaussianMixture

D64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: one thread, restored afterwards


def _log_prob(mixture: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """log density by torch.distributions (differentiable in x)."""
    covs = mixture.covariances if mixture.covariance == "full" else torch.diag_embed(mixture.covariances)
    return torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(mixture.weights),
        torch.distributions.MultivariateNormal(mixture.means, covs)).log_prob(x)


def _gaussian_data() -> GaussianMixture:
    """A correlated 2-D Gaussian (one-component mixture) with mean (1, -0.5)."""
    cov = torch.tensor([[0.5, 0.3], [0.3, 0.4]], dtype=D64)
    return GaussianMixture(torch.ones(1, dtype=D64), torch.tensor([[1.0, -0.5]], dtype=D64), cov[None], "full")


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.double()
    return x.mean(0), torch.cov(x.T)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_tables(kind):
    s = NoiseSchedule(1000, kind)
    assert s.betas.shape == (1001,) and s.betas.dtype == D64
    assert s.betas[0] == 0 and s.alpha_bars[0] == 1
    assert (s.alpha_bars[1:] < s.alpha_bars[:-1]).all()  # strictly decreasing
    assert float(s.alpha_bars[-1]) < 1e-4
    assert torch.allclose(s.alpha_bars, torch.cumprod(1 - s.betas, 0))
    if kind == "linear":
        assert math.isclose(float(s.betas[1]), 1e-4) and math.isclose(float(s.betas[-1]), 0.02)
        assert math.isclose(float(s.alpha_bars[-1]), 4.0358e-5, rel_tol=1e-3)  # Ho et al.'s T = 1000 schedule


def test_closed_form_marginal_matches_running_the_chain():
    s = NoiseSchedule(200, "linear", 1e-3, 0.05)
    x0 = torch.tensor([[1.5, -2.0]], dtype=D64)
    # exact moment recursion: mean_t = sqrt(alpha_t) mean_{t-1}, var_t = alpha_t var_{t-1} + beta_t
    mean, var = x0.clone(), torch.zeros(1, 1, dtype=D64)
    for t in range(1, 201):
        mean, var = s.alphas[t].sqrt() * mean, s.alphas[t] * var + s.betas[t]
        closed_mean, closed_var = s.q_mean_var(x0, torch.tensor([t]))
        assert torch.allclose(mean, closed_mean, atol=1e-12) and torch.allclose(var, closed_var, atol=1e-12)
    # and by sampling: 20,000 chains run step by step against q_sample in one draw
    g = torch.Generator().manual_seed(0)
    x = x0.expand(20_000, 2).clone()
    for t in range(1, 61):
        x = s.alphas[t].sqrt() * x + s.betas[t].sqrt() * torch.randn(x.shape, generator=g, dtype=D64)
    m, v = s.q_mean_var(x0, 60)
    assert torch.allclose(x.mean(0), m[0], atol=0.02)
    assert torch.allclose(x.var(0), v.expand(1, 2)[0], rtol=0.03)
    noise = torch.randn(20_000, 2, generator=g, dtype=D64)
    one_draw = s.q_sample(x0.expand(20_000, 2), torch.full((20_000,), 60), noise)
    assert torch.allclose(one_draw.var(0), x.var(0), rtol=0.05)


def test_posterior_matches_gaussian_conditioning():
    s = NoiseSchedule(100, "cosine")
    x0 = torch.tensor([[0.7, -1.2, 0.1]], dtype=D64)
    for t in (1, 2, 10, 50, 100):
        ab_prev, alpha = s.alpha_bars[t - 1], s.alphas[t]
        # joint of (x_{t-1}, x_t) given x0, one coordinate at a time
        m1, c11 = ab_prev.sqrt() * x0, 1 - ab_prev
        m2, c12, c22 = alpha.sqrt() * m1, alpha.sqrt() * c11, alpha * c11 + s.betas[t]
        x_t = torch.tensor([[0.3, 0.9, -2.0]], dtype=D64)
        mean, var = s.posterior(x_t, x0, t)
        assert torch.allclose(mean, m1 + c12 / c22 * (x_t - m2), atol=1e-12)
        assert torch.allclose(var.flatten(), (c11 - c12**2 / c22).reshape(1), atol=1e-12)
        assert torch.allclose(var.flatten(), s.posterior_variances[t].reshape(1))


def test_mixture_score_is_the_gradient_of_the_noised_log_density():
    mixture = mixture_from_toy(ring8())
    x = torch.randn(50, 2, dtype=D64)
    for ab in (1.0, 0.5, 0.01):
        noised = noised_mixture(mixture, math.sqrt(ab), 1 - ab)
        x_req = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(_log_prob(noised, x_req).sum(), x_req)
        assert torch.allclose(mixture_score(mixture, x, ab), grad, atol=1e-8)
    full = _gaussian_data()
    x_req = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_log_prob(noised_mixture(full, 0.8, 0.36), x_req).sum(), x_req)
    assert torch.allclose(mixture_score(full, x, 0.64), grad, atol=1e-10)


def test_exact_eps_is_the_posterior_mean_of_the_noise():
    """E[eps | x_t] by self-normalised importance weights over the mixture's components, vs the closed form."""
    s = NoiseSchedule(100, "linear", 1e-3, 0.1)
    data = _gaussian_data()
    eps_fn = mixture_denoiser(data, s)
    t = 30
    ab = float(s.alpha_bars[t])
    x_t = torch.tensor([[0.4, 0.2]], dtype=D64)
    # Gaussian conditioning of eps on x_t = sqrt(ab) x0 + sqrt(1-ab) eps
    cov_x = ab * data.covariances[0] + (1 - ab) * torch.eye(2, dtype=D64)
    expected = math.sqrt(1 - ab) * torch.linalg.solve(cov_x, (x_t - math.sqrt(ab) * data.means)[0])
    assert torch.allclose(eps_fn(x_t, torch.tensor([float(t)])), expected[None], atol=1e-12)


@pytest.mark.parametrize("sampler", ["ddpm", "ddpm_posterior", "ddim", "ddim_eta1"])
def test_exact_denoiser_reproduces_gaussian_data(sampler):
    data = _gaussian_data()
    s = NoiseSchedule(1000, "linear")
    eps_fn = mixture_denoiser(data, s)
    g = torch.Generator().manual_seed(0)
    shape = (4_000, 2)
    if sampler.startswith("ddpm"):
        x = ddpm_sample(eps_fn, s, shape, generator=g, variance="posterior" if "posterior" in sampler else "beta")
    else:
        # eta = 1 is stochastic: it needs small steps (all T) to keep the variance, like DDPM
        steps, eta = (1000, 1.0) if "eta1" in sampler else (50, 0.0)
        x = ddim_sample(eps_fn, s, shape, num_steps=steps, eta=eta, generator=g)
    mean, cov = _moments(x)
    assert torch.allclose(mean, data.means[0], atol=0.05)
    assert torch.allclose(cov, data.covariances[0], atol=0.05)


def test_exact_denoiser_covers_every_grid_mode():
    toy = grid25()
    s = NoiseSchedule(1000, "linear")
    x = ddim_sample(mixture_denoiser(mixture_from_toy(toy), s), s, (2_500, 2), num_steps=100,
                    generator=torch.Generator().manual_seed(0))
    result = mode_coverage(x, toy)
    assert result["modes_covered"] == 25 and result["high_quality_fraction"] > 0.97


def test_ddim_with_eta_one_is_the_ddpm_posterior_step():
    s = NoiseSchedule(50, "cosine")
    g = torch.Generator().manual_seed(1)
    x_t, eps, noise = (torch.randn(8, 3, generator=g, dtype=D64) for _ in range(3))
    for t in (2, 10, 50):
        ddim = ddim_step(s, x_t, eps, t, t - 1, eta=1.0, noise=noise)
        ddpm = ddpm_step(s, x_t, eps, t, noise, variance="posterior")
        assert torch.allclose(ddim, ddpm, atol=1e-10)
    # the same step with eta = 0 removes the noise term and keeps the mean's direction
    assert not torch.allclose(ddim_step(s, x_t, eps, 10, 9, eta=0.0), ddpm_step(s, x_t, eps, 10, noise, "posterior"))
    # at t = 1, eta = 1 adds no noise (tilde beta_1 = 0): both return the predicted x_0
    assert torch.allclose(ddim_step(s, x_t, eps, 1, 0, eta=1.0, noise=noise), ddpm_step(s, x_t, eps, 1, noise))


def test_ddim_timesteps():
    s = NoiseSchedule(1000)
    assert ddim_timesteps(s, 4) == [1000, 750, 500, 250, 0]
    assert ddim_timesteps(s, 1000) == list(range(1000, -1, -1))
    with pytest.raises(ValueError, match="num_steps"):
        ddim_timesteps(s, 1001)


def test_guidance_weight_zero_is_the_conditional_model():
    cond, uncond = torch.randn(4, 2), torch.randn(4, 2)
    assert torch.equal(classifier_free_guidance(cond, uncond, 0.0), cond)
    assert torch.allclose(classifier_free_guidance(cond, uncond, 2.0), 3 * cond - 2 * uncond)
    with pytest.raises(ValueError, match="shapes"):
        classifier_free_guidance(cond, uncond[:2], 1.0)


def _standard_normal_eps(schedule):
    """The exact eps for data N(0, I): E[eps | x_t] = sqrt(1 - alpha_bar_t) x_t."""
    return lambda x, t: (1 - schedule.alpha_bars[t.long()]).sqrt().to(x.dtype)[:, None] * x


def test_vlb_is_exact_when_the_reverse_model_is_exact():
    """Data N(0, I) is stationary under the forward chain, so q(x_{t-1} | x_t) = N(sqrt(alpha_t) x_t, beta_t):
    the eps model above with sigma_t^2 = beta_t *is* the true reverse process, the decoder is exact, and
    the bound equals -log N(x_0; 0, I) for every x_0 (in expectation over the noise)."""
    s = NoiseSchedule(20, "linear", 0.01, 0.3)
    x0 = torch.tensor([[0.3, -1.1, 2.0]], dtype=D64)
    true_nll = float(0.5 * (x0.pow(2).sum() + 3 * math.log(2 * math.pi)))
    g = torch.Generator().manual_seed(0)
    vlb = diffusion_vlb(_standard_normal_eps(s), s, x0.expand(20_000, 3), generator=g)
    assert vlb.shape == (20_000,)
    stderr = float(vlb.std()) / math.sqrt(len(vlb))
    assert abs(float(vlb.mean()) - true_nll) < 4 * stderr + 1e-3
    sampled = diffusion_vlb(_standard_normal_eps(s), s, x0.expand(20_000, 3), num_terms=5, generator=g)
    assert abs(float(sampled.mean()) - true_nll) < 4 * float(sampled.std()) / math.sqrt(20_000) + 1e-3
    # any other model is worse on average over the data (cross-entropy >= entropy)
    data = torch.randn(20_000, 3, generator=g, dtype=D64)
    entropy = 1.5 * (1 + math.log(2 * math.pi))
    exact = diffusion_vlb(_standard_normal_eps(s), s, data, generator=g).mean()
    posterior = diffusion_vlb(_standard_normal_eps(s), s, data, variance="posterior", generator=g).mean()
    wrong = diffusion_vlb(lambda x, t: 0.8 * _standard_normal_eps(s)(x, t), s, data, generator=g).mean()
    assert abs(float(exact) - entropy) < 0.03
    assert float(posterior) > entropy + 0.05 and float(wrong) > entropy + 0.05


def test_bits_per_dim_units():
    s = NoiseSchedule(10, "linear", 0.05, 0.5)
    x0 = torch.zeros(2_000, 4, dtype=D64)
    g = torch.Generator().manual_seed(0)
    nats = float(diffusion_vlb(_standard_normal_eps(s), s, x0, generator=torch.Generator().manual_seed(0)).mean())
    raw = vlb_bits_per_dim(_standard_normal_eps(s), s, x0, bins=None, generator=g)
    assert math.isclose(raw, nats / (4 * math.log(2)), rel_tol=1e-12)
    dequantized = vlb_bits_per_dim(_standard_normal_eps(s), s, x0, bins=256, generator=torch.Generator().manual_seed(0))
    assert math.isclose(dequantized, raw + 7.0, rel_tol=1e-12)  # log2(256 / 2) bits per dimension


def test_loss_and_samplers_shapes_and_seeded_determinism():
    s = NoiseSchedule(20)
    model = MLPDenoiser(data_dim=2, hidden_dim=16, num_blocks=1, time_dim=8)
    x0 = torch.randn(32, 2)
    loss_a = diffusion_loss(model, s, x0, generator=torch.Generator().manual_seed(3))
    loss_b = diffusion_loss(model, s, x0, generator=torch.Generator().manual_seed(3))
    assert loss_a.shape == () and torch.equal(loss_a, loss_b)
    loss_a.backward()
    assert all(p.grad is not None for p in model.parameters())
    for sample in (lambda g: ddpm_sample(model, s, (5, 2), generator=g),
                   lambda g: ddim_sample(model, s, (5, 2), num_steps=4, eta=0.5, generator=g)):
        a, b = sample(torch.Generator().manual_seed(7)), sample(torch.Generator().manual_seed(7))
        assert a.shape == (5, 2) and torch.equal(a, b)
    x, trajectory = ddpm_sample(model, s, (3, 2), generator=torch.Generator().manual_seed(0), return_trajectory=True)
    assert len(trajectory) == 21 and torch.equal(trajectory[-1], x)
    images = torch.rand(4, 1, 6, 6)
    x_t = s.q_sample(images, torch.tensor([1, 5, 10, 20]), torch.randn(4, 1, 6, 6))
    assert x_t.shape == (4, 1, 6, 6)
    eps_image = lambda x, t: torch.zeros_like(x)  # noqa: E731
    assert ddim_sample(eps_image, s, (2, 1, 6, 6), num_steps=3).shape == (2, 1, 6, 6)


def test_mlp_denoiser_conditioning_and_checkpoint_round_trip(tmp_path):
    model = MLPDenoiser(num_classes=3, hidden_dim=16, num_blocks=2, time_dim=8)
    x, t = torch.randn(4, 2), torch.tensor([1.0, 10.0, 100.0, 999.0])
    null = model(x, t, torch.full((4,), 3))
    assert torch.equal(model(x, t), null)  # no labels = the null label
    assert not torch.allclose(model(x, t, torch.zeros(4, dtype=torch.long)), null)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    copy = MLPDenoiser(num_classes=3, hidden_dim=16, num_blocks=2, time_dim=8)
    copy.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    assert torch.equal(copy(x, t), model(x, t))
    with pytest.raises(ValueError, match="num_classes"):
        MLPDenoiser()(x, t, torch.zeros(4, dtype=torch.long))
    fourier = MLPDenoiser(hidden_dim=16, num_frequencies=3)
    features = fourier.features(torch.tensor([[0.25, 0.5]]))
    assert features.shape == (1, 2 * (1 + 2 * 3)) and fourier(x, t).shape == (4, 2)
    # the first sine features are sin(pi x), sin(2 pi x), sin(4 pi x) of the first coordinate
    assert torch.allclose(features[0, 2:5], torch.sin(torch.pi * torch.tensor([0.25, 0.5, 1.0])), atol=1e-6)


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown schedule"):
        NoiseSchedule(10, "quadratic")
    s = NoiseSchedule(10)
    x0 = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"\[0, 10\]"):
        s.q_sample(x0, torch.tensor([3, 11]), torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"\[0, 10\]"):
        s.q_mean_var(x0, torch.tensor([-1, 2]))
    with pytest.raises(ValueError, match=r"\[1, 10\]"):
        s.posterior(x0, x0, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integers"):
        s.q_mean_var(x0, torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="one timestep per example"):
        s.q_mean_var(x0, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"x \* 2 - 1|0-255"):
        to_model_range(torch.full((1, 1, 2, 2), 255.0))
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        to_model_range(torch.tensor([-1.0, 1.0]))
    assert torch.equal(to_model_range(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([-1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="variance"):
        ddpm_sample(lambda x, t: x, s, (2, 2), variance="learned")
    with pytest.raises(ValueError, match="not a Gaussian mixture"):
        from genlab.data import two_moons
        mixture_from_toy(two_moons())


def test_sampled_bound_keeps_the_small_t_terms_exact():
    """num_terms samples only t > exact_terms: the estimate's spread comes from the large-t terms alone,
    and with every term exact (exact_terms = T) it equals the full sum for the same noise."""
    s = NoiseSchedule(30, "linear", 0.01, 0.3)
    x0 = torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=D64)
    eps = lambda x, t: 0.7 * _standard_normal_eps(s)(x, t)  # noqa: E731  (an imperfect model)
    full = diffusion_vlb(eps, s, x0, generator=torch.Generator().manual_seed(2))
    all_exact = diffusion_vlb(eps, s, x0, num_terms=3, exact_terms=30, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(all_exact, full)
    estimates = torch.stack([diffusion_vlb(eps, s, x0, num_terms=3, exact_terms=5,
                                           generator=torch.Generator().manual_seed(k)) for k in range(200)])
    no_exact = torch.stack([diffusion_vlb(eps, s, x0, num_terms=3, exact_terms=0,
                                          generator=torch.Generator().manual_seed(k)) for k in range(200)])
    fulls = torch.stack([diffusion_vlb(eps, s, x0, generator=torch.Generator().manual_seed(1000 + k))
                         for k in range(200)])  # the full sum is itself an average over one x_t draw per term
    spread = math.hypot(float(estimates.mean(1).std()), float(fulls.mean(1).std())) / math.sqrt(200)
    assert abs(float(estimates.mean() - fulls.mean())) < 4 * spread  # unbiased
    assert float(estimates.std(0).mean()) < float(no_exact.std(0).mean())  # the small t carry the variance
    with pytest.raises(ValueError, match="exact_terms"):
        diffusion_vlb(eps, s, x0, num_terms=3, exact_terms=-1)
