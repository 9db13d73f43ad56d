"""Held-out diagnostics of a trained VAE: the ELBO's two terms, and the active latent units.

* :func:`elbo_summary` - the mean one-sample ELBO on held-out images, split into its two
  terms: *distortion* ``D = -E_q log p(x|z)`` and *rate* ``R = KL(q(z|x) || p(z))``
  (Alemi et al., 2018), so ``-ELBO = D + R`` in nats per image.
* :func:`active_units` - Burda, Grosse & Salakhutdinov (2016): latent dimension ``u`` is
  *active* when ``A_u = Cov_x(E_{q(z|x)}[z_u]) > 0.01``, i.e. when the posterior mean of
  ``z_u`` moves with the input. A collapsed dimension has ``q(z_u|x) = p(z_u)`` for every
  ``x``, so its mean is constant and ``A_u = 0``.

Both run in eval mode without gradients and restore the model's mode.
See: book/03_vae/mnist_vae.ipynb, book/03_vae/beta_vae.ipynb.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genlab.losses import elbo
from genlab.runtime import eval_mode

__all__ = ["active_units", "elbo_summary"]


def _batches(images: Tensor, labels: Tensor | None, batch_size: int, device: torch.device):
    if images.dim() < 2 or len(images) == 0:
        raise ValueError(f"expected a non-empty batch of images (N, ...), got shape {tuple(images.shape)}")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        y = None if labels is None else labels[start:start + batch_size].to(device)
        yield x, y


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def elbo_summary(model: Any, images: Tensor, labels: Tensor | None = None, batch_size: int = 500,
                 generator: torch.Generator | None = None) -> dict[str, float]:
    """Mean ``-ELBO``, distortion and rate (nats per image) of ``model`` on ``images``.

    One reparameterised sample per image (``genlab.losses.elbo`` with ``beta = 1``), drawn
    from ``generator``. Returns ``dict(neg_elbo, distortion, rate)`` with
    ``neg_elbo = distortion + rate`` (up to floating-point rounding).
    See: book/03_vae/mnist_vae.ipynb.
    """
    totals = torch.zeros(3, dtype=torch.float64)
    with eval_mode(model):
        with torch.no_grad():
            for x, y in _batches(images, labels, batch_size, _device(model)):
                terms = elbo(model, x, labels=y, generator=generator)  # each (B,)
                totals += torch.stack([-terms.elbo.sum(), -terms.reconstruction.sum(),
                                       terms.kl.sum()]).double().cpu()
    neg_elbo, distortion, rate = (totals / len(images)).tolist()
    return {"neg_elbo": neg_elbo, "distortion": distortion, "rate": rate}


def active_units(model: Any, images: Tensor, labels: Tensor | None = None, threshold: float = 0.01,
                 batch_size: int = 500) -> dict[str, Any]:
    """Count the latent dimensions whose posterior mean varies across inputs (Burda et al., 2016).

    ``A_u = Var_x(mu_u(x))`` over ``images`` (the population variance of the encoder's mean);
    unit ``u`` is active when ``A_u > threshold`` (0.01 in the paper).
    Returns ``dict(count, num_latent, variances)`` with ``variances`` a (latent_dim,) tensor.
    See: book/03_vae/beta_vae.ipynb.
    """
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    means = []
    with eval_mode(model):
        with torch.no_grad():
            for x, y in _batches(images, labels, batch_size, _device(model)):
                mu, _ = model.encode(x, labels=y)  # (B, latent_dim)
                means.append(mu.double().cpu())
    variances = torch.cat(means).var(dim=0, unbiased=False)  # (latent_dim,)
    return {"count": int((variances > threshold).sum()), "num_latent": len(variances),
            "variances": variances.float()}
