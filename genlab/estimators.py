"""Monte Carlo gradient estimators for ``d/d(mu, sigma) E_{z ~ N(mu, sigma^2)}[f(z)]``.

Two unbiased estimators of the gradient of an expectation with respect to the parameters
of the distribution the expectation is taken under:

* **pathwise** (reparameterisation): write ``z = mu + sigma * eps`` with ``eps ~ N(0, I)``
  and differentiate ``f(z)`` through the sample, ``grad = E_eps[grad_(mu, sigma) f(mu + sigma * eps)]``.
  Needs a differentiable ``f``; used by VAEs (Kingma & Welling 2014; Rezende et al. 2014).
* **score function** (REINFORCE, likelihood ratio): ``grad = E_z[f(z) grad log N(z; mu, sigma)]``
  (Williams 1992; Glynn 1990). Needs only values of ``f``; an optional leave-one-out
  baseline ``b_i = mean_{j != i} f(z_j)`` reduces its variance without adding bias.

Both functions return ``num_repeats`` independent estimates at once, so their spread can
be measured. See: book/03_vae/reparameterisation.ipynb.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor
from torch.distributions import Normal

__all__ = ["BASELINES", "GradientEstimate", "pathwise_gradient", "score_function_gradient"]

BASELINES = (None, "leave_one_out")


class GradientEstimate(NamedTuple):
    """Independent gradient estimates, each ``(num_repeats, *mu.shape)``."""

    mu: Tensor
    sigma: Tensor


def _parameters(mu: Tensor | float, sigma: Tensor | float, num_samples: int, num_repeats: int,
                min_samples: int = 1) -> tuple[Tensor, Tensor]:
    mu = torch.as_tensor(mu, dtype=torch.get_default_dtype())
    sigma = torch.as_tensor(sigma, dtype=mu.dtype, device=mu.device)
    if mu.shape != sigma.shape:
        raise ValueError(f"mu and sigma must have the same shape, got {tuple(mu.shape)} and {tuple(sigma.shape)}")
    if not bool((sigma > 0).all()):
        raise ValueError("sigma must be positive")
    if num_samples < min_samples or num_repeats < 1:
        raise ValueError(f"need num_samples >= {min_samples} and num_repeats >= 1, got {num_samples} and {num_repeats}")
    return mu, sigma


def _expand(mu: Tensor, sigma: Tensor, num_repeats: int) -> tuple[Tensor, Tensor]:
    """One leaf copy of (mu, sigma) per repeat, ``(R, 1, *shape)``, so each repeat gets its own gradient."""
    shape = (num_repeats, 1, *mu.shape)
    return (mu.detach().expand(shape).clone().requires_grad_(True),
            sigma.detach().expand(shape).clone().requires_grad_(True))


def _values(f: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
    values = f(z)
    if values.shape != z.shape[:2]:
        raise ValueError(f"f must map z of shape {tuple(z.shape)} to one value per sample, shape "
                         f"{tuple(z.shape[:2])}; got {tuple(values.shape)}")
    return values


def pathwise_gradient(f: Callable[[Tensor], Tensor], mu: Tensor | float, sigma: Tensor | float, num_samples: int,
                      num_repeats: int = 1, generator: torch.Generator | None = None) -> GradientEstimate:
    """Reparameterisation estimate: ``(1/n) sum_i grad_(mu, sigma) f(mu + sigma * eps_i)``.

    ``f`` receives ``z`` of shape ``(num_repeats, num_samples, *mu.shape)`` and returns one value
    per sample, ``(num_repeats, num_samples)`` (for scalar ``mu`` an elementwise ``f`` does).
    Per sample ``d/dmu = f'(z)`` and ``d/dsigma = f'(z) * eps``.
    See: book/03_vae/reparameterisation.ipynb.
    """
    mu, sigma = _parameters(mu, sigma, num_samples, num_repeats)
    mu_leaf, sigma_leaf = _expand(mu, sigma, num_repeats)
    eps = torch.randn((num_repeats, num_samples, *mu.shape), generator=generator, dtype=mu.dtype)
    z = mu_leaf + sigma_leaf * eps.to(mu.device)  # (R, n, *shape), differentiable in (mu, sigma)
    estimate = _values(f, z).mean(dim=1).sum()  # repeats are independent: the sum separates them
    grad_mu, grad_sigma = torch.autograd.grad(estimate, (mu_leaf, sigma_leaf))
    return GradientEstimate(grad_mu.squeeze(1), grad_sigma.squeeze(1))


def score_function_gradient(f: Callable[[Tensor], Tensor], mu: Tensor | float, sigma: Tensor | float,
                            num_samples: int, num_repeats: int = 1, baseline: str | None = None,
                            generator: torch.Generator | None = None) -> GradientEstimate:
    """Score-function (REINFORCE) estimate: ``(1/n) sum_i (f(z_i) - b_i) grad log N(z_i; mu, sigma)``.

    ``z_i ~ N(mu, sigma^2)`` are *not* differentiated through; only ``log N(z_i; mu, sigma)`` is,
    via the surrogate ``mean((f(z) - b).detach() * log_prob(z))``. ``baseline=None`` uses ``b = 0``;
    ``"leave_one_out"`` uses ``b_i = mean_{j != i} f(z_j)`` (needs ``num_samples >= 2``), which
    does not depend on ``z_i`` and so keeps the estimate unbiased. Shapes as in
    :func:`pathwise_gradient`. See: book/03_vae/reparameterisation.ipynb.
    """
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; expected one of {list(BASELINES)}")
    mu, sigma = _parameters(mu, sigma, num_samples, num_repeats, min_samples=2 if baseline else 1)
    mu_leaf, sigma_leaf = _expand(mu, sigma, num_repeats)
    eps = torch.randn((num_repeats, num_samples, *mu.shape), generator=generator, dtype=mu.dtype)
    z = (mu + sigma * eps.to(mu.device)).detach()  # (R, n, *shape): no gradient through the sample
    with torch.no_grad():
        values = _values(f, z)  # (R, n)
        if baseline == "leave_one_out":
            values = values - (values.sum(dim=1, keepdim=True) - values) / (num_samples - 1)
    log_prob = Normal(mu_leaf, sigma_leaf).log_prob(z).reshape(num_repeats, num_samples, -1).sum(dim=2)  # (R, n)
    surrogate = (values * log_prob).mean(dim=1).sum()
    grad_mu, grad_sigma = torch.autograd.grad(surrogate, (mu_leaf, sigma_leaf))
    return GradientEstimate(grad_mu.squeeze(1), grad_sigma.squeeze(1))
