"""Tests for genlab.gan_theory: divergences on a grid, the optimal discriminator, the 1-D GAN."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genlab.gan_theory import (
    AffineGenerator1d,
    Discriminator1d,
    fit_discriminator,
    gan_value,
    gaussian_grid,
    gaussian_js,
    js_divergence,
    kl_divergence,
    mixture_log_pdf,
    normal_log_pdf,
    optimal_discriminator,
    optimal_discriminator_logit,
    train_gan_1d,
    trapezoid,
)
from genlab.losses import discriminator_loss, generator_loss

LOG4 = math.log(4.0)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster and deterministic
    yield
    torch.set_num_threads(threads)


def grid() -> np.ndarray:
    return np.linspace(-15.0, 15.0, 30_001)


def test_normal_and_mixture_integrate_to_one():
    x = grid()
    assert trapezoid(np.exp(normal_log_pdf(x, 1.0, 0.3)), x) == pytest.approx(1.0, abs=1e-9)
    log_mix = mixture_log_pdf(x, [-2.0, 2.0], [0.5, 1.0], [0.3, 0.7])
    assert trapezoid(np.exp(log_mix), x) == pytest.approx(1.0, abs=1e-9)
    # the mixture is the weighted sum of its parts
    direct = 0.3 * np.exp(normal_log_pdf(x, -2.0, 0.5)) + 0.7 * np.exp(normal_log_pdf(x, 2.0, 1.0))
    np.testing.assert_allclose(np.exp(log_mix), direct, rtol=1e-12, atol=1e-300)


def test_kl_matches_the_gaussian_closed_form():
    x = grid()
    m1, s1, m2, s2 = 0.5, 0.8, -1.0, 1.5
    closed = math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    assert kl_divergence(normal_log_pdf(x, m1, s1), normal_log_pdf(x, m2, s2), x) == pytest.approx(closed, abs=1e-8)


def test_js_properties():
    x = grid()
    p, q = normal_log_pdf(x, 0.0, 1.0), normal_log_pdf(x, 1.5, 0.7)
    js = js_divergence(p, q, x)
    assert js == pytest.approx(js_divergence(q, p, x), abs=1e-12)  # symmetric
    assert 0.0 < js < math.log(2.0)
    assert js_divergence(p, p, x) == pytest.approx(0.0, abs=1e-12)
    # JS = KL(p || m)/2 + KL(q || m)/2 with the mixture m computed independently
    log_m = np.log(0.5 * np.exp(p) + 0.5 * np.exp(q))
    assert js == pytest.approx(0.5 * kl_divergence(p, log_m, x) + 0.5 * kl_divergence(q, log_m, x), abs=1e-8)
    # far-apart densities: JS -> log 2
    assert gaussian_js(0.0, 1.0, 40.0, 1.0) == pytest.approx(math.log(2.0), abs=1e-9)


def test_gaussian_js_resolves_very_narrow_densities():
    x = gaussian_grid([0.0, 3.0], [1.0, 1e-4])
    assert trapezoid(np.exp(normal_log_pdf(x, 3.0, 1e-4)), x) == pytest.approx(1.0, abs=1e-6)
    assert gaussian_js(0.0, 1.0, 0.0, 1e-4) == pytest.approx(gaussian_js(0.0, 1e-4, 0.0, 1.0), abs=1e-9)
    # agrees with a brute-force uniform grid fine enough for a width of 0.01
    fine = np.linspace(-15.0, 15.0, 600_001)
    brute = js_divergence(normal_log_pdf(fine, 0.0, 1.0), normal_log_pdf(fine, 0.5, 0.01), fine)
    assert gaussian_js(0.0, 1.0, 0.5, 0.01) == pytest.approx(brute, abs=1e-7)


def test_value_at_the_optimal_discriminator_is_minus_log4_plus_twice_js():
    x = grid()
    log_data = mixture_log_pdf(x, [-2.0, 2.0], [0.6, 0.6])
    log_g = normal_log_pdf(x, 0.5, 1.2)
    value = gan_value(log_data, log_g, optimal_discriminator_logit(log_data, log_g), x)
    assert value == pytest.approx(-LOG4 + 2 * js_divergence(log_data, log_g, x), abs=1e-8)
    # p_g = p_data: D* = 1/2 everywhere and V = -log 4
    np.testing.assert_allclose(optimal_discriminator(log_data, log_data), 0.5)
    assert gan_value(log_data, log_data, np.zeros_like(x), x) == pytest.approx(-LOG4, abs=1e-9)


def test_optimal_discriminator_beats_perturbed_discriminators():
    x = grid()
    log_data, log_g = normal_log_pdf(x, 0.0, 1.0), normal_log_pdf(x, 1.0, 0.5)
    best_logit = optimal_discriminator_logit(log_data, log_g)
    best = gan_value(log_data, log_g, best_logit, x)
    rng = np.random.default_rng(0)
    for _ in range(5):
        bump = rng.normal() * np.exp(-((x - rng.normal()) ** 2))  # a smooth perturbation of the logit
        assert gan_value(log_data, log_g, best_logit + bump, x) < best
    # D* is the sigmoid of its logit, and stays in [0, 1] in the far tails (no 0 / 0)
    d_star = optimal_discriminator(log_data, log_g)
    assert np.isfinite(d_star).all() and (d_star >= 0).all() and (d_star <= 1).all()
    np.testing.assert_allclose(d_star, np.exp(log_data) / (np.exp(log_data) + np.exp(log_g)), atol=1e-12)


def test_densities_must_fit_on_the_grid():
    x = np.linspace(-1.0, 1.0, 101)
    with pytest.raises(ValueError, match="mass"):
        js_divergence(normal_log_pdf(x), normal_log_pdf(x), x)
    with pytest.raises(ValueError, match="increasing"):
        trapezoid(np.ones(3), np.array([0.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        kl_divergence(normal_log_pdf(x), normal_log_pdf(x)[:-1], x)
    with pytest.raises(ValueError, match="positive"):
        normal_log_pdf(x, 0.0, 0.0)


def test_models_shapes_and_errors():
    gen = AffineGenerator1d(mean=2.0, std=0.5)
    samples = gen.sample(10_000, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (10_000, 1)
    assert samples.mean().item() == pytest.approx(2.0, abs=0.02)
    assert samples.std().item() == pytest.approx(0.5, abs=0.02)
    disc = Discriminator1d(hidden=8)
    assert disc(samples[:5]).shape == (5,)
    with pytest.raises(ValueError, match=r"\(B, 1\)"):
        disc(torch.zeros(5))
    with pytest.raises(ValueError, match=r"\(B, 1\)"):
        gen(torch.zeros(5, 2))


def _sampler(mean: float, std: float):
    return lambda n, g: mean + std * torch.randn(n, 1, generator=g)


@pytest.mark.slow
def test_fitted_discriminator_approaches_the_optimal_one():
    torch.manual_seed(0)
    disc = Discriminator1d(hidden=32)
    fit_discriminator(disc, _sampler(0.0, 1.0), _sampler(1.5, 1.0), steps=300, batch_size=128,
                      generator=torch.Generator().manual_seed(0))
    x = np.linspace(-2.0, 3.5, 23)
    with torch.no_grad():
        learned = torch.sigmoid(disc(torch.tensor(x, dtype=torch.float32)[:, None])).numpy()
    exact = optimal_discriminator(normal_log_pdf(x, 0.0, 1.0), normal_log_pdf(x, 1.5, 1.0))
    assert np.abs(learned - exact).max() < 0.1


@pytest.mark.slow
def test_train_gan_1d_moves_the_generator_towards_the_data():
    torch.manual_seed(0)
    gen, disc = AffineGenerator1d(mean=-1.0, std=1.0), Discriminator1d(hidden=16)
    history = train_gan_1d(gen, disc, _sampler(2.0, 0.5), steps=300,
                           d_objective=discriminator_loss,
                           g_objective=lambda real, fake: generator_loss(fake, "non_saturating"),
                           batch_size=128, lr_d=5e-3, lr_g=5e-3, generator=torch.Generator().manual_seed(0))
    assert len(history["mean"]) == 301 and len(history["d_fake"]) == 300
    assert history["mean"][0] == pytest.approx(-1.0)
    assert gaussian_js(2.0, 0.5, history["mean"][-1], history["std"][-1]) < gaussian_js(2.0, 0.5, -1.0, 1.0) - 0.2


def test_train_gan_1d_updates_only_the_player_whose_turn_it_is():
    """A generator objective must not change the discriminator, and vice versa."""
    gen, disc = AffineGenerator1d(), Discriminator1d(hidden=4)
    before = [p.detach().clone() for p in disc.parameters()]
    history = train_gan_1d(gen, disc, _sampler(0.0, 1.0), steps=3,
                           d_objective=lambda r, f: 0.0 * r.sum(),  # the discriminator stays put
                           g_objective=lambda r, f: generator_loss(f, "non_saturating"),
                           d_optimizer="sgd", g_optimizer="sgd", lr_g=0.1,
                           generator=torch.Generator().manual_seed(0))
    for p, q in zip(before, disc.parameters()):
        torch.testing.assert_close(p, q)
    assert history["mean"][-1] != history["mean"][0]
    with pytest.raises(ValueError, match="optimizer"):
        train_gan_1d(gen, disc, _sampler(0.0, 1.0), steps=1, d_objective=discriminator_loss,
                     g_objective=discriminator_loss, g_optimizer="rmsprop")
