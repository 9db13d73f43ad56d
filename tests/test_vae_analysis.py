"""Tests for genlab.vae_analysis: the ELBO split and the active-unit count."""

import pytest
import torch

from genlab.losses import elbo
from genlab.models.vae import MLPVAE
from genlab.vae_analysis import active_units, elbo_summary


def _images(n=64, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_elbo_summary_terms_add_up_and_match_losses_elbo():
    torch.manual_seed(0)
    model = MLPVAE(latent_dim=4, hidden=32)
    x = _images()
    summary = elbo_summary(model, x, batch_size=20, generator=torch.Generator().manual_seed(1))
    assert summary["neg_elbo"] == pytest.approx(summary["distortion"] + summary["rate"], rel=1e-6)
    terms = elbo(model.eval(), x, generator=torch.Generator().manual_seed(1))  # one batch, same noise
    assert summary["rate"] == pytest.approx(terms.kl.mean().item(), rel=1e-5)
    assert summary["rate"] >= 0


def test_elbo_summary_restores_training_mode_and_rejects_bad_input():
    model = MLPVAE(latent_dim=2, hidden=16)
    model.train()
    elbo_summary(model, _images(8))
    assert model.training
    with pytest.raises(ValueError, match="labels"):
        elbo_summary(model, _images(8), labels=torch.zeros(3, dtype=torch.long))


class _Encoder(torch.nn.Module):
    """A fake VAE whose posterior mean is [x_mean * 10, 0, 0.05 * x_mean]: one active unit."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def encode(self, x, labels=None):
        m = x.flatten(1).mean(dim=1, keepdim=True)  # (B, 1)
        mu = torch.cat([10 * m, torch.zeros_like(m), 0.05 * m], dim=1)
        return mu, torch.zeros_like(mu)


def test_active_units_counts_dimensions_whose_mean_moves():
    x = torch.rand(200, 1, 1, 1, generator=torch.Generator().manual_seed(0)).expand(200, 1, 28, 28)
    result = active_units(_Encoder(), x)
    assert result["num_latent"] == 3
    assert result["count"] == 1  # dim 0 varies a lot; dim 1 is constant; dim 2 varies below 0.01
    assert result["variances"][1] == 0
    expected = (10 * x.flatten(1).mean(1)).double().var(unbiased=False)
    assert result["variances"][0].item() == pytest.approx(expected.item(), rel=1e-5)
    assert active_units(_Encoder(), x, threshold=0.0)["count"] == 2
