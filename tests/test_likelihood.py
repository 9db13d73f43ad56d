"""Tests for genlab.likelihood: IWAE NLL against closed-form likelihoods, bits/dim, bits/char."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from torch import nn

from genlab.likelihood import bits_per_dim, importance_weighted_nll, language_model_loss


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class LinearGaussianVAE(nn.Module):
    """p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I): log p(x) = log N(x; b, W W^T + s^2 I).

    Orthogonal columns of W make the exact posterior diagonal; ``mean_scale=1, logvar_shift=0``
    encodes it exactly, other values give a deliberately poor q(z|x).
    """

    likelihood = "gaussian"
    num_classes = None

    def __init__(self, n: int = 6, d: int = 2, mean_scale: float = 1.0, logvar_shift: float = 0.0) -> None:
        super().__init__()
        g = _gen(7)
        q, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=torch.float64))
        self.register_buffer("weight", q * torch.linspace(2.0, 1.0, d, dtype=torch.float64))  # (n, d)
        self.register_buffer("bias", torch.randn(n, generator=g, dtype=torch.float64))
        self.decoder_logvar = nn.Parameter(torch.tensor(math.log(0.3), dtype=torch.float64))
        self.latent_dim, self.mean_scale, self.logvar_shift = d, mean_scale, logvar_shift

    def encode(self, x, labels=None):
        s2 = self.decoder_logvar.exp()
        var = 1.0 / (1.0 + (self.weight ** 2).sum(0) / s2)  # (d,)
        mean = ((x - self.bias) @ self.weight) / s2 * var  # (B, d)
        return self.mean_scale * mean, var.log().expand_as(mean) + self.logvar_shift

    def decode(self, z, labels=None):
        return z @ self.weight.T + self.bias

    def log_marginal(self, x):
        cov = self.weight @ self.weight.T + self.decoder_logvar.exp() * torch.eye(len(self.bias),
                                                                                   dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.bias, cov).log_prob(x)

    def sample_x(self, n: int, generator: torch.Generator):
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=torch.float64)
        noise = torch.randn(n, len(self.bias), generator=generator, dtype=torch.float64)
        return self.decode(z) + self.decoder_logvar.exp().sqrt() * noise


def test_bits_per_dim_converts_nats():
    assert bits_per_dim(784 * math.log(2.0), 784) == pytest.approx(1.0)
    assert bits_per_dim(math.log(256.0), 1) == pytest.approx(8.0)
    with pytest.raises(ValueError, match="num_dims"):
        bits_per_dim(1.0, 0)


def test_importance_weighted_nll_is_exact_with_the_true_posterior():
    model = LinearGaussianVAE()
    images = model.sample_x(30, _gen(1))
    expected = -model.log_marginal(images).mean().item()
    for batch_size in (7, 30):
        result = importance_weighted_nll(model, images, num_samples=20, batch_size=batch_size, generator=_gen(2))
        assert result["nats"] == pytest.approx(expected, abs=1e-9)
    assert result["num_samples"] == 20
    assert result["bits_per_dim"] == pytest.approx(expected / (6 * math.log(2.0)))


def test_importance_weighted_nll_bounds_and_mode():
    model = LinearGaussianVAE(mean_scale=0.5, logvar_shift=1.0).train()
    images = model.sample_x(300, _gen(3))
    true_nll = -model.log_marginal(images).mean().item()
    loose = importance_weighted_nll(model, images, num_samples=1, generator=_gen(4))
    tight = importance_weighted_nll(model, images, num_samples=500, generator=_gen(5))
    assert model.training  # the mode is restored
    assert tight["nats"] == pytest.approx(true_nll, abs=0.05)  # the bound closes as k grows
    assert tight["nats"] < loose["nats"] - 0.5  # -L_k is an upper bound that tightens as k grows
    assert loose["nats"] > true_nll + 0.5
    assert tight["elbo_nats"] > true_nll + 0.5  # the one-sample ELBO is the loose bound
    model.eval()
    importance_weighted_nll(model, images[:4], num_samples=2)
    assert not model.training


def test_importance_weighted_nll_rejects_bad_images():
    model = LinearGaussianVAE()
    images = model.sample_x(4, _gen(6))
    images[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        importance_weighted_nll(model, images, num_samples=2)


class FactorisedBernoulli(nn.Module):
    """A 'VAE' whose decoder ignores z (per-pixel probabilities p) and whose q(z|x) is the prior.

    Then every importance weight is p(x|z) p(z) / q(z|x) = p(x), so the IWAE NLL must equal
    -sum_i log Bernoulli(x_i; p_i) exactly, for any k.
    """

    likelihood = "bernoulli"
    num_classes = None
    latent_dim = 2

    def __init__(self, pixel_probs: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", torch.logit(pixel_probs))  # (1, 28, 28)

    def encode(self, x, labels=None):
        zeros = torch.zeros(len(x), self.latent_dim)
        return zeros, zeros

    def decode(self, z, labels=None):
        return self.logits.expand(len(z), 1, 28, 28)


def test_importance_weighted_nll_on_binarized_mnist():
    if not os.environ.get("GENLAB_DATA_DIR"):
        pytest.skip("GENLAB_DATA_DIR is not set: the MNIST test split is not available")
    from genlab.data import DatasetError, binarize, load_mnist

    try:
        data = load_mnist("test", download=False, limit=600)
    except DatasetError as error:
        pytest.skip(f"MNIST test split not available under GENLAB_DATA_DIR: {error}")
    binary = binarize(data.images, generator=_gen(8))  # (600, 1, 28, 28) in {0, 1}
    train, held_out = binary[:500], binary[500:]
    probs = ((train.sum(0) + 1) / (len(train) + 2)).double()  # Laplace-smoothed pixel means
    x, p = held_out.double().numpy().reshape(100, 784), probs.numpy().reshape(784)
    expected = -np.mean(np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=1))  # numpy, independently
    result = importance_weighted_nll(FactorisedBernoulli(probs.float()), held_out, num_samples=3, batch_size=32)
    assert result["nats"] == pytest.approx(expected, rel=1e-5)
    assert result["bits_per_dim"] == pytest.approx(expected / (784 * math.log(2.0)), rel=1e-5)


# --------------------------------------------------------------------------- language models


class UniformModel(nn.Module):
    """Uniform logits over ``vocab`` symbols: exactly log V nats per character."""

    block_size = 16

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.calls: list[tuple[int, int]] = []

    def forward(self, idx):
        self.calls.append(tuple(idx.shape))
        return torch.zeros(*idx.shape, self.vocab)  # (B, T, V)


class BigramModel(nn.Module):
    """logits[b, t] = table[idx[b, t]]: the loss of every transition a -> b is known in advance."""

    block_size = None  # like an RNN: any context length

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(vocab, vocab, generator=_gen(9)))

    def forward(self, idx):
        return self.table[idx]  # (B, T, V)


def test_uniform_model_scores_log_v():
    vocab = 11
    tokens = torch.randint(0, vocab, (1000,), generator=_gen(10))
    model = UniformModel(vocab).train()
    result = language_model_loss(model, tokens, block_size=16, batch_size=8)
    assert result["nats_per_char"] == pytest.approx(math.log(vocab), abs=1e-12)
    assert result["bits_per_char"] == pytest.approx(math.log2(vocab), abs=1e-12)
    assert model.training  # restored
    assert max(t for _, t in model.calls) == 16 and max(b for b, _ in model.calls) == 8


@pytest.mark.parametrize("length,block_size,batch_size", [(200, 8, 4), (201, 8, 3), (57, 10, 32)])
def test_every_transition_is_scored_exactly_once(length, block_size, batch_size):
    vocab = 7
    tokens = torch.randint(0, vocab, (length,), generator=_gen(length))
    model = BigramModel(vocab)
    log_probs = torch.log_softmax(model.table.detach().double(), dim=1)
    expected = -log_probs[tokens[:-1], tokens[1:]].mean().item()  # all N - 1 transitions
    result = language_model_loss(model, tokens, block_size=block_size, batch_size=batch_size)
    assert result["nats_per_char"] == pytest.approx(expected, rel=1e-6)


def test_targets_are_the_next_token():
    # a model that is certain the next id is (id + 1) mod V is nearly perfect on 0, 1, 2, ...
    vocab = 5

    class Successor(nn.Module):
        def forward(self, idx):
            return 50.0 * nn.functional.one_hot((idx + 1) % vocab, vocab).float()

    tokens = torch.arange(100) % vocab
    assert language_model_loss(Successor(), tokens, block_size=9)["nats_per_char"] < 1e-15


def test_language_model_loss_errors():
    model = UniformModel(5)
    with pytest.raises(ValueError, match="exceeds the model's context of 16"):
        language_model_loss(model, torch.zeros(100, dtype=torch.long), block_size=32)
    with pytest.raises(ValueError, match="1-D integer tensor"):
        language_model_loss(model, torch.zeros(4, 25, dtype=torch.long), block_size=8)
    with pytest.raises(ValueError, match="outside|must lie in"):
        language_model_loss(model, torch.full((50,), 9), block_size=8)
