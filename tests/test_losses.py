"""Tests for genlab.losses: identities of the GAN value function, WGAN-GP, KL, likelihoods, ELBO, IWAE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab.losses import (
    DISCRIMINATOR_LOSSES,
    GAN_LOSSES,
    GENERATOR_LOSSES,
    ELBOTerms,
    bernoulli_log_likelihood,
    discriminator_loss,
    elbo,
    gaussian_kl,
    gaussian_log_likelihood,
    generator_loss,
    gradient_penalty,
    iwae_bound,
)

# --------------------------------------------------------------------------- tiny models


class LinearGaussianVAE(nn.Module):
    """p(z) = N(0, I_d), p(x|z) = N(W z + b, s^2 I_n), so p(x) = N(b, W W^T + s^2 I) in closed form.

    W has orthogonal columns, so the exact posterior N(m(x), S) has a diagonal S and a
    diagonal-Gaussian encoder can represent it: ``mean_scale=1, logvar_shift=0`` is exact,
    anything else is a deliberately wrong q(z|x). With ``num_classes`` the decoder mean is
    shifted by a per-class offset (and the encoder uses the matching exact posterior).
    """

    likelihood = "gaussian"

    def __init__(self, n: int = 5, d: int = 2, noise_var: float = 0.5, mean_scale: float = 1.0,
                 logvar_shift: float = 0.0, num_classes: int | None = None) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1234)
        q, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=torch.float64))
        self.register_buffer("weight", q * torch.linspace(2.0, 1.0, d, dtype=torch.float64))  # (n, d)
        self.register_buffer("bias", torch.randn(n, generator=g, dtype=torch.float64))  # (n,)
        self.register_buffer("class_offset", 3.0 * torch.randn(num_classes or 1, n, generator=g,
                                                               dtype=torch.float64))
        self.decoder_logvar = nn.Parameter(torch.tensor(math.log(noise_var), dtype=torch.float64))
        self.latent_dim, self.num_classes = d, num_classes
        self.mean_scale, self.logvar_shift = mean_scale, logvar_shift

    def _offset(self, labels: torch.Tensor | None) -> torch.Tensor:
        if self.num_classes is None:
            return self.bias
        return self.bias + self.class_offset[labels]  # (B, n)

    def encode(self, x, labels=None):
        s2 = self.decoder_logvar.exp()
        var = 1.0 / (1.0 + (self.weight ** 2).sum(0) / s2)  # (d,) exact posterior variance
        mean = ((x - self._offset(labels)) @ self.weight) / s2 * var  # (B, d)
        return self.mean_scale * mean, var.log().expand_as(mean) + self.logvar_shift

    def decode(self, z, labels=None):
        return z @ self.weight.T + self._offset(labels)  # (B, n)

    def log_marginal(self, x, labels=None):
        cov = self.weight @ self.weight.T + self.decoder_logvar.exp() * torch.eye(len(self.bias),
                                                                                   dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self._offset(labels), cov).log_prob(x)

    def sample_x(self, n: int, generator: torch.Generator, labels=None):
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=torch.float64)
        noise = torch.randn(n, len(self.bias), generator=generator, dtype=torch.float64)
        return self.decode(z, labels) + self.decoder_logvar.exp().sqrt() * noise


class TinyBernoulliVAE(nn.Module):
    """A linear Bernoulli VAE on (B, 1, 4, 4) images: enough to exercise the ELBO plumbing."""

    likelihood = "bernoulli"
    num_classes = None

    def __init__(self, latent_dim: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.latent_dim = latent_dim
        self.encoder = nn.Linear(16, 2 * latent_dim)
        self.decoder = nn.Linear(latent_dim, 16)

    def encode(self, x, labels=None):
        mu, logvar = self.encoder(x.reshape(len(x), -1)).chunk(2, dim=1)  # (B, D) each
        return mu, logvar

    def decode(self, z, labels=None):
        return self.decoder(z).view(-1, 1, 4, 4)  # Bernoulli logits


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- GAN losses


def test_minimax_discriminator_loss_is_log4_at_one_half():
    half = torch.zeros(7)  # logit 0 <=> D = 1/2
    for kind in ("minimax", "non_saturating"):
        assert discriminator_loss(half, torch.zeros(5), kind).item() == pytest.approx(math.log(4.0), abs=1e-6)


def test_optimal_discriminator_gives_jensen_shannon():
    # discrete toy on 5 points; probabilities in twentieths so a batch of 20 is the exact expectation
    p_data = np.array([8, 6, 3, 2, 1]) / 20
    p_g = np.array([1, 2, 3, 6, 8]) / 20
    optimal_logit = np.log(p_data / p_g)  # logit of D* = p_data / (p_data + p_g)
    real = torch.tensor(np.repeat(optimal_logit, (p_data * 20).round().astype(int)))
    fake = torch.tensor(np.repeat(optimal_logit, (p_g * 20).round().astype(int)))
    m = 0.5 * (p_data + p_g)
    js = 0.5 * np.sum(p_data * np.log(p_data / m)) + 0.5 * np.sum(p_g * np.log(p_g / m))
    value = -discriminator_loss(real, fake, "minimax").item()
    assert value == pytest.approx(-math.log(4.0) + 2.0 * js, abs=1e-9)
    # D* is the minimiser: moving the logits in either direction increases the loss
    for delta in (-0.3, 0.3):
        assert discriminator_loss(real + delta, fake + delta).item() > -value


def test_generator_gradients_saturate_only_for_minimax():
    logits = torch.full((4,), -8.0, requires_grad=True)  # D(G(z)) = sigmoid(-8) ~ 3e-4: D wins
    (grad_minimax,) = torch.autograd.grad(generator_loss(logits, "minimax"), logits)
    (grad_ns,) = torch.autograd.grad(generator_loss(logits, "non_saturating"), logits)
    d = torch.sigmoid(torch.tensor(-8.0))
    # analytic: d/dl log(1 - sigmoid(l)) = -sigmoid(l);  d/dl -log sigmoid(l) = -(1 - sigmoid(l))
    torch.testing.assert_close(grad_minimax, torch.full((4,), -d / 4))
    torch.testing.assert_close(grad_ns, torch.full((4,), -(1 - d) / 4))
    assert grad_ns.abs().min() > 1000 * grad_minimax.abs().max()  # both push the logit up


def test_losses_are_finite_for_extreme_logits():
    extreme = torch.tensor([-200.0, 200.0])
    for kind in DISCRIMINATOR_LOSSES:
        assert torch.isfinite(discriminator_loss(extreme, extreme, kind))
    for kind in GENERATOR_LOSSES:
        assert torch.isfinite(generator_loss(extreme, kind))
    # -log sigmoid(-200) = 200 exactly up to rounding, not inf
    assert generator_loss(torch.tensor([-200.0]), "non_saturating").item() == pytest.approx(200.0)


@pytest.mark.parametrize("kind", ["minimax", "hinge", "wasserstein"])
def test_critic_scoring_real_higher_has_lower_loss(kind):
    real, fake = torch.tensor([1.5, 0.5, 2.0]), torch.tensor([-1.0, -0.5, 0.0])
    assert discriminator_loss(real, fake, kind) < discriminator_loss(fake, real, kind)


def test_hinge_and_wasserstein_values():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0, 1.0])
    # hinge: mean(relu(1 - [2, .5])) + mean(relu(1 + [-3, 0, 1])) = 0.25 + 1.0
    assert discriminator_loss(real, fake, "hinge").item() == pytest.approx(0.25 + 1.0)
    assert discriminator_loss(real, fake, "wasserstein").item() == pytest.approx(-2 / 3 - 1.25)
    for kind in ("hinge", "wasserstein"):
        assert generator_loss(fake, kind).item() == pytest.approx(2 / 3)


def test_gan_loss_table_pairs_known_kinds():
    assert GAN_LOSSES["non_saturating"] == ("minimax", "non_saturating")
    for d_kind, g_kind in GAN_LOSSES.values():
        discriminator_loss(torch.zeros(2), torch.zeros(2), d_kind)
        generator_loss(torch.zeros(2), g_kind)


def test_gan_loss_errors_are_clear():
    with pytest.raises(ValueError, match="unknown discriminator loss kind 'lsgan'.*hinge"):
        discriminator_loss(torch.zeros(3), torch.zeros(3), "lsgan")
    with pytest.raises(ValueError, match="unknown generator loss kind"):
        generator_loss(torch.zeros(3), "saturating")
    with pytest.raises(ValueError, match=r"shape \(B,\).*\(3, 1\)"):
        discriminator_loss(torch.zeros(3, 1), torch.zeros(3))
    with pytest.raises(ValueError, match=r"fake_logits of shape \(B,\)"):
        generator_loss(torch.zeros(3, 1))


# --------------------------------------------------------------------------- gradient penalty


class LinearCritic(nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.linear = nn.Linear(weight.numel(), 1)
        with torch.no_grad():
            self.linear.weight.copy_(weight.view(1, -1))
        self.seen_labels = None

    def forward(self, x, labels=None):
        self.seen_labels = labels
        return self.linear(x.reshape(len(x), -1)).view(-1)  # (B,)


def test_gradient_penalty_of_linear_critics():
    real, fake = torch.rand(6, 1, 4, 4), torch.rand(6, 1, 4, 4)
    w = torch.randn(16)
    unit = LinearCritic(w / w.norm())
    assert gradient_penalty(unit, real, fake).item() < 1e-10
    critic = LinearCritic(2.5 * w / w.norm())
    penalty = gradient_penalty(critic, real, fake, generator=_gen(0))
    assert penalty.item() == pytest.approx((2.5 - 1.0) ** 2, rel=1e-5)
    # it trains the critic: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    penalty.backward()
    expected = 2 * (2.5 - 1.0) * w / w.norm()
    torch.testing.assert_close(critic.linear.weight.grad.view(-1), expected, rtol=1e-4, atol=1e-5)


def test_gradient_penalty_interpolates_with_one_uniform_eps_per_example():
    # f(x) = ||x||^2 / 2 has grad x; with fake = 0 and ||real|| = 1 the norm is eps ~ U(0, 1),
    # so the penalty is E (eps - 1)^2 = 1/3 (a per-pixel eps would give about (sqrt(1/3) - 1)^2 = 0.18)
    def critic(x):
        return 0.5 * x.pow(2).flatten(1).sum(1)

    real = torch.full((20_000, 1, 4, 4), 0.25)  # each example has norm 1
    penalty = gradient_penalty(critic, real, torch.zeros_like(real), generator=_gen(1))
    assert penalty.item() == pytest.approx(1 / 3, abs=0.01)
    again = gradient_penalty(critic, real, torch.zeros_like(real), generator=_gen(1))
    assert again.item() == penalty.item()  # deterministic under a seed


def test_gradient_penalty_passes_labels_and_checks_shapes():
    critic = LinearCritic(torch.randn(16))
    labels = torch.arange(4)
    gradient_penalty(critic, torch.rand(4, 1, 4, 4), torch.rand(4, 1, 4, 4), labels=labels)
    assert critic.seen_labels is labels
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(critic, torch.rand(4, 1, 4, 4), torch.rand(3, 1, 4, 4))


# --------------------------------------------------------------------------- KL and likelihoods


def test_gaussian_kl_closed_form():
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    kl = gaussian_kl(mu, logvar)
    assert kl.shape == (4,)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    reference = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl, reference)
    # Monte Carlo: E_q [log q(z) - log p(z)] with 200k samples
    z = q.sample((200_000,))  # (S, 4, 3)
    monte_carlo = (q.log_prob(z) - torch.distributions.Normal(0.0, 1.0).log_prob(z)).sum(-1).mean(0)
    torch.testing.assert_close(kl, monte_carlo, rtol=0.02, atol=0.01)
    assert gaussian_kl(torch.zeros(2, 5), torch.zeros(2, 5)).abs().max().item() == 0.0
    with pytest.raises(ValueError, match="same shape"):
        gaussian_kl(torch.zeros(2, 5), torch.zeros(2, 4))


def test_bernoulli_log_likelihood_matches_bce():
    logits, x = torch.randn(3, 1, 28, 28), torch.rand(3, 1, 28, 28)
    reference = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), reference)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x.view(3, 784)), reference)  # flattened x
    with pytest.raises(ValueError, match=r"x in \[0, 1\].*to_unit_range"):
        bernoulli_log_likelihood(logits, 2 * x - 1)
    with pytest.raises(ValueError, match="same number of values"):
        bernoulli_log_likelihood(logits, torch.rand(3, 1, 14, 14))


def test_gaussian_log_likelihood_matches_normal_log_prob():
    mean, x = torch.rand(3, 1, 28, 28), torch.rand(3, 784)
    logvar = torch.tensor(-1.3)  # a scalar decoder_logvar
    normal = torch.distributions.Normal(mean.view(3, 784), (0.5 * logvar).exp())
    torch.testing.assert_close(gaussian_log_likelihood(mean, logvar, x), normal.log_prob(x).sum(1))
    per_pixel = torch.randn(3, 1, 28, 28)
    normal = torch.distributions.Normal(mean.view(3, 784), (0.5 * per_pixel.view(3, 784)).exp())
    torch.testing.assert_close(gaussian_log_likelihood(mean, per_pixel, x), normal.log_prob(x).sum(1))
    with pytest.raises(ValueError, match="does not broadcast"):
        gaussian_log_likelihood(mean, torch.zeros(5), x)


# --------------------------------------------------------------------------- ELBO


def test_elbo_terms_and_determinism():
    model, x = TinyBernoulliVAE(), torch.rand(8, 1, 4, 4)
    terms = elbo(model, x, generator=_gen(3))
    assert isinstance(terms, ELBOTerms) and terms.elbo.shape == terms.kl.shape == (8,)
    torch.testing.assert_close(terms.elbo, terms.reconstruction - terms.kl)
    mu, logvar = model.encode(x)
    torch.testing.assert_close(terms.kl, gaussian_kl(mu, logvar))
    same = elbo(model, x, generator=_gen(3))
    assert torch.equal(same.elbo, terms.elbo)
    beta4 = elbo(model, x, beta=4.0, generator=_gen(3))
    torch.testing.assert_close(beta4.elbo, terms.reconstruction - 4.0 * terms.kl)
    # the reparameterised sample lets gradients reach the encoder through the reconstruction term
    (-terms.reconstruction.mean()).backward()
    assert model.encoder.weight.grad.abs().sum() > 0


def test_free_bits_floor_the_objective_but_not_the_reported_kl():
    model, x = TinyBernoulliVAE(), torch.rand(8, 1, 4, 4)
    mu, logvar = model.encode(x)
    kl_per_dim = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)  # (B, D), written out independently
    floor = kl_per_dim.median().item()  # so the floor is active for some dimensions and not others
    plain = elbo(model, x, generator=_gen(5))
    floored = elbo(model, x, free_bits=floor, generator=_gen(5))
    torch.testing.assert_close(floored.kl, plain.kl)
    torch.testing.assert_close(floored.reconstruction, plain.reconstruction)
    torch.testing.assert_close(floored.elbo, plain.reconstruction - kl_per_dim.clamp(min=floor).sum(1))
    assert (floored.elbo <= plain.elbo).all() and (floored.elbo < plain.elbo).any()
    with pytest.raises(ValueError, match="free_bits must be >= 0"):
        elbo(model, x, free_bits=-1.0)


def test_gaussian_elbo_matches_closed_form():
    # for the linear-Gaussian model: E_q log p(x|z) = log N(x; W mu + b, s^2) - tr(W^T W diag(var)) / (2 s^2)
    model = LinearGaussianVAE(mean_scale=0.5, logvar_shift=1.0)
    x = model.sample_x(2000, _gen(10))
    with torch.no_grad():
        mu, logvar = model.encode(x)
        s2 = model.decoder_logvar.exp()
        expected_recon = (gaussian_log_likelihood(model.decode(mu), model.decoder_logvar, x)
                          - 0.5 * ((model.weight ** 2).sum(0) * logvar.exp()).sum(1) / s2)
        exact = expected_recon - gaussian_kl(mu, logvar)
        for estimate in (elbo(model, x, generator=_gen(11)).elbo, iwae_bound(model, x, 1, generator=_gen(12))):
            diff = estimate - exact  # zero-mean noise if the estimator is unbiased
            assert diff.mean().abs() < 4 * diff.std() / math.sqrt(len(diff))
        assert (exact <= model.log_marginal(x) + 1e-9).all()  # the ELBO is a lower bound


def test_elbo_rejects_unknown_likelihood():
    model = TinyBernoulliVAE()
    model.likelihood = "poisson"
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        elbo(model, torch.rand(2, 1, 4, 4))


# --------------------------------------------------------------------------- IWAE


def test_iwae_is_exact_with_the_true_posterior():
    model = LinearGaussianVAE()
    x = model.sample_x(50, _gen(20))
    with torch.no_grad():
        log_px = model.log_marginal(x)
        for k in (1, 7):
            torch.testing.assert_close(iwae_bound(model, x, k, generator=_gen(k)), log_px)


def test_iwae_tightens_with_k_towards_log_px():
    model = LinearGaussianVAE(mean_scale=0.5, logvar_shift=1.0)  # a poor q(z|x)
    x = model.sample_x(1000, _gen(30))
    with torch.no_grad():
        log_px = model.log_marginal(x).mean().item()
        bounds = [iwae_bound(model, x, k, generator=_gen(31 + k)).mean().item() for k in (1, 10, 100)]
        large_k = iwae_bound(model, x, 1000, generator=_gen(40)).mean().item()
    assert bounds[0] < bounds[1] < bounds[2] <= log_px
    assert bounds[0] < log_px - 1.0  # the wrong q really is loose at k = 1
    assert large_k == pytest.approx(log_px, abs=0.02)


def test_iwae_chunks_keep_labels_aligned():
    # exact posterior per class: any misaligned label in a chunk would move the bound off log p(x|y)
    model = LinearGaussianVAE(num_classes=4)
    labels = torch.tensor([0, 1, 2, 3, 2])
    x = model.sample_x(5, _gen(50), labels)
    with torch.no_grad():
        chunked = iwae_bound(model, x, 10, labels=labels, generator=_gen(51), rows_per_chunk=12)  # 2 per chunk
        torch.testing.assert_close(chunked, model.log_marginal(x, labels))
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        iwae_bound(model, x, 0, labels=labels)
