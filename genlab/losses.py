"""The objectives of the book: GAN losses, the WGAN-GP penalty, the ELBO and the IWAE bound.

GAN losses take *raw* discriminator logits / critic scores of shape ``(B,)`` and
apply ``logsigmoid`` themselves, so ``log D`` and ``log(1 - D)`` never overflow:
with ``D = sigmoid(l)``, ``log D = logsigmoid(l)`` and ``log(1 - D) = logsigmoid(-l)``.

VAE terms are per example, shape ``(B,)``, in nats, summed over pixels and latent
dimensions. Averaging over the batch is the caller's job (``-terms.elbo.mean()``).

See: book/02_gan_math/value_function.ipynb and book/03_vae/elbo.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DISCRIMINATOR_LOSSES",
    "ELBOTerms",
    "GAN_LOSSES",
    "GENERATOR_LOSSES",
    "bernoulli_log_likelihood",
    "discriminator_loss",
    "elbo",
    "gaussian_kl",
    "gaussian_log_likelihood",
    "generator_loss",
    "gradient_penalty",
    "iwae_bound",
]

LOG_2PI = math.log(2.0 * math.pi)

DISCRIMINATOR_LOSSES = ("minimax", "non_saturating", "hinge", "wasserstein")
GENERATOR_LOSSES = ("minimax", "non_saturating", "hinge", "wasserstein")

# Which generator loss goes with which discriminator loss: name -> (discriminator kind, generator kind).
GAN_LOSSES: dict[str, tuple[str, str]] = {
    # Goodfellow et al. (2014) as written: G minimises E log(1 - D(G(z))); saturates early in training.
    "minimax": ("minimax", "minimax"),
    # The practical GAN: same D, but G maximises E log D(G(z)) (strong gradients when D wins).
    "non_saturating": ("minimax", "non_saturating"),
    # Geometric GAN / SAGAN: hinge D, G minimises -E D(G(z)).
    "hinge": ("hinge", "hinge"),
    # WGAN: a 1-Lipschitz critic (use gradient_penalty, weight 10), G minimises -E f(G(z)).
    "wasserstein": ("wasserstein", "wasserstein"),
}


# --------------------------------------------------------------------------- checks


def _check_kind(kind: str, known: tuple[str, ...], what: str) -> None:
    if kind not in known:
        raise ValueError(f"unknown {what} loss kind {kind!r}; expected one of {list(known)}")


def _check_logits(logits: Tensor, name: str) -> None:
    if not isinstance(logits, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dim() != 1 or logits.numel() == 0:
        raise ValueError(
            f"expected {name} of shape (B,) (raw discriminator outputs, one per example), got "
            f"{tuple(logits.shape)}; squeeze a trailing (B, 1) with .view(-1)"
        )
    if not logits.is_floating_point():
        raise ValueError(f"{name} must be floating point logits, got dtype {logits.dtype}")


def _check_pair(a: Tensor, b: Tensor, name_a: str, name_b: str) -> tuple[Tensor, Tensor]:
    """Flatten two per-example tensors to (B, D) after checking they describe the same pixels."""
    if a.dim() < 1 or b.dim() < 1 or a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} differ in batch size")
    flat_a, flat_b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    if flat_a.shape != flat_b.shape:
        raise ValueError(
            f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} do not have the same number of "
            "values per example"
        )
    return flat_a, flat_b


def _check_gaussian(mu: Tensor, logvar: Tensor) -> None:
    if mu.dim() != 2 or mu.shape != logvar.shape:
        raise ValueError(
            f"expected mu and logvar of the same shape (B, latent_dim), got {tuple(mu.shape)} and "
            f"{tuple(logvar.shape)}"
        )


def _standard_normal(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """N(0, I) noise drawn on the generator's device (a CPU generator works for CUDA tensors)."""
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


# --------------------------------------------------------------------------- GAN losses


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, kind: str = "minimax") -> Tensor:
    """The loss the discriminator (or critic) *minimises*, a scalar.

    With ``D = sigmoid(logit)``:

    * ``"minimax"`` (= ``"non_saturating"``, the D side is the same):
      ``-[E_x log D(x) + E_z log(1 - D(G(z)))]``, binary cross-entropy with real = 1, fake = 0.
      It equals ``log 4`` when ``D = 1/2`` everywhere, and at the optimal
      ``D* = p_data / (p_data + p_g)`` it equals ``log 4 - 2 JS(p_data || p_g)``.
    * ``"hinge"``: ``E relu(1 - f(x)) + E relu(1 + f(G(z)))``.
    * ``"wasserstein"``: ``E f(G(z)) - E f(x)`` (the critic maximises ``E f(x) - E f(G(z))``,
      an estimate of the Wasserstein-1 distance when ``f`` is 1-Lipschitz).

    Both inputs are ``(B,)`` raw outputs; the two batches may differ in size (each expectation
    is its own mean). See ``GAN_LOSSES`` for the matching generator loss.
    See: book/02_gan_math/value_function.ipynb (hinge and Wasserstein: wasserstein.ipynb).
    """
    _check_kind(kind, DISCRIMINATOR_LOSSES, "discriminator")
    _check_logits(real_logits, "real_logits")
    _check_logits(fake_logits, "fake_logits")
    if kind in ("minimax", "non_saturating"):
        return -(F.logsigmoid(real_logits).mean() + F.logsigmoid(-fake_logits).mean())
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    return fake_logits.mean() - real_logits.mean()  # wasserstein


def generator_loss(fake_logits: Tensor, kind: str = "non_saturating") -> Tensor:
    """The loss the generator *minimises*, a scalar, from the discriminator's logits on fakes.

    * ``"minimax"``: ``E_z log(1 - D(G(z)))``, the value function's own term. Its gradient
      ``d/dl log(1 - sigmoid(l)) = -sigmoid(l)`` vanishes when D confidently rejects
      the fakes (``D(G(z)) -> 0``), i.e. at the start of training.
    * ``"non_saturating"``: ``-E_z log D(G(z))``; gradient ``-(1 - sigmoid(l))``, close to
      ``-1`` exactly when the fakes are bad. Same fixed point, much better early signal.
    * ``"hinge"`` and ``"wasserstein"``: ``-E_z f(G(z))``.

    See: book/02_gan_math/generator_gradient.ipynb (Wasserstein: wasserstein.ipynb).
    """
    _check_kind(kind, GENERATOR_LOSSES, "generator")
    _check_logits(fake_logits, "fake_logits")
    if kind == "minimax":
        return F.logsigmoid(-fake_logits).mean()
    if kind == "non_saturating":
        return -F.logsigmoid(fake_logits).mean()
    return -fake_logits.mean()  # hinge, wasserstein


def gradient_penalty(
    critic: Callable[..., Tensor],
    real: Tensor,
    fake: Tensor,
    labels: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP penalty ``E_x_hat (||grad_x_hat f(x_hat)||_2 - 1)^2``, a scalar (Gulrajani et al. 2017).

    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U(0, 1)`` per example, so
    ``x_hat`` lies on the segments between real and generated samples, where the optimal
    critic has gradient norm 1. The gradient is taken with ``create_graph=True`` so the
    penalty trains the critic: add ``10 * gradient_penalty(...)`` to the critic loss.
    ``real`` and ``fake`` are detached (the penalty only constrains the critic).
    ``labels`` are passed to a conditional critic as ``critic(x_hat, labels)``.
    See: book/02_gan_math/wasserstein.ipynb.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} must have the same shape")
    if real.dim() < 2:
        raise ValueError(f"expected a batch of samples (B, ...), got shape {tuple(real.shape)}")
    batch = real.shape[0]
    eps = torch.rand(batch, generator=generator, dtype=real.dtype,
                     device=generator.device if generator is not None else real.device).to(real.device)
    eps = eps.view(batch, *([1] * (real.dim() - 1)))  # (B, 1, 1, 1) for images
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat) if labels is None else critic(x_hat, labels)
    _check_logits(scores, "critic scores")
    if scores.shape[0] != batch:
        raise ValueError(f"the critic returned {scores.shape[0]} scores for {batch} inputs")
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    # sqrt(sum g^2 + tiny): the norm's gradient stays finite where the input gradient is 0
    grad_norm = torch.sqrt(grad.reshape(batch, -1).pow(2).sum(dim=1) + 1e-12)  # (B,)
    return (grad_norm - 1.0).pow(2).mean()


# --------------------------------------------------------------------------- VAE terms


class ELBOTerms(NamedTuple):
    """Per-example ELBO pieces, each ``(B,)`` in nats: ``elbo = reconstruction - beta * KL_objective``.

    ``kl`` is always the true ``KL(q(z|x) || p(z))``; with free bits the KL inside
    ``elbo`` is floored per latent dimension. See: book/03_vae/elbo.ipynb.
    """

    elbo: Tensor
    reconstruction: Tensor
    kl: Tensor


def _gaussian_kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)  # (B, D)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` per example, shape ``(B,)``, in nats.

    Closed form: ``1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)``; zero iff
    ``mu = 0`` and ``sigma = 1``.
    See: book/03_vae/elbo.ipynb.
    """
    _check_gaussian(mu, logvar)
    return _gaussian_kl_per_dim(mu, logvar).sum(dim=1)


def bernoulli_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """Bernoulli ``log p(x | z) = sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)]``, shape ``(B,)``.

    ``p = sigmoid(logits)``, the decoder's per-pixel probabilities.

    Computed as ``-BCEWithLogits`` (stable for any logit). ``x`` must be in [0, 1]; it is a
    proper log-probability for binary ``x`` (see ``genlab.data.binarize``). ``logits`` and
    ``x`` may be ``(B, 1, 28, 28)`` or ``(B, 784)``: both are flattened per example.
    See: book/03_vae/elbo.ipynb.
    """
    flat_logits, flat_x = _check_pair(logits, x, "logits", "x")
    # checked on CPU only: on a GPU the check would force a device sync every training step
    if flat_x.device.type == "cpu" and flat_x.numel():
        low, high = torch.aminmax(flat_x)  # one pass over the batch
        if low < 0 or high > 1:
            raise ValueError(
                f"a Bernoulli likelihood needs x in [0, 1], got values in [{low.item():.3g}, "
                f"{high.item():.3g}]; map tanh-range images with genlab.data.to_unit_range"
            )
    return -F.binary_cross_entropy_with_logits(flat_logits, flat_x, reduction="none").sum(dim=1)


def gaussian_log_likelihood(mean: Tensor, logvar: Tensor | float, x: Tensor) -> Tensor:
    """``log N(x; mean, diag(exp(logvar)))`` summed over dimensions, shape ``(B,)``.

    ``-1/2 sum_i [log 2 pi + logvar_i + (x_i - mean_i)^2 / exp(logvar_i)]``.
    ``logvar`` may be a scalar (a VAE's learned ``decoder_logvar``) or broadcast to ``mean``.
    See: book/03_vae/likelihood.ipynb.
    """
    logvar = torch.as_tensor(logvar, dtype=mean.dtype, device=mean.device)
    try:
        logvar = torch.broadcast_to(logvar, mean.shape)
    except RuntimeError as error:
        raise ValueError(
            f"logvar of shape {tuple(logvar.shape)} does not broadcast to mean {tuple(mean.shape)}"
        ) from error
    flat_mean, flat_x = _check_pair(mean, x, "mean", "x")
    flat_logvar = logvar.reshape(flat_mean.shape)
    return -0.5 * (LOG_2PI + flat_logvar + (flat_x - flat_mean).pow(2) * torch.exp(-flat_logvar)).sum(dim=1)


def _log_likelihood(model: Any, decoded: Tensor, x: Tensor) -> Tensor:
    """log p(x | z) for the model's likelihood, (B,)."""
    kind = getattr(model, "likelihood", None)
    if kind == "bernoulli":
        return bernoulli_log_likelihood(decoded, x)
    if kind == "gaussian":
        return gaussian_log_likelihood(decoded, model.decoder_logvar, x)
    raise ValueError(
        f"unknown likelihood {kind!r} on {type(model).__name__}; expected 'bernoulli' or 'gaussian'"
    )


def _encode(model: Any, x: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
    mu, logvar = model.encode(x, labels=labels)
    _check_gaussian(mu, logvar)
    if mu.shape[0] != x.shape[0]:
        raise ValueError(f"encode returned {mu.shape[0]} posteriors for a batch of {x.shape[0]}")
    return mu, logvar


def elbo(
    model: Any,
    x: Tensor,
    labels: Tensor | None = None,
    beta: float = 1.0,
    free_bits: float = 0.0,
    generator: torch.Generator | None = None,
) -> ELBOTerms:
    """One-sample ELBO per example: ``E_q log p(x|z) - beta * KL(q(z|x) || p(z))``, in nats.

    ``q(z|x) = N(mu, diag(exp(logvar)))`` from ``model.encode``; one reparameterised
    ``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``, decoded by ``model.decode``;
    ``log p(x|z)`` by ``model.likelihood``; the KL in closed form (:func:`gaussian_kl`).
    ``beta = 1`` is the true ELBO (a lower bound on ``log p(x)``); ``beta != 1`` is the beta-VAE.

    Free bits (Kingma et al. 2016): the KL inside ``elbo`` is ``sum_j max(KL_j, free_bits)``
    per example and latent dimension, so no dimension is pushed below ``free_bits`` nats
    (the paper floors the minibatch average of ``KL_j``; flooring per example is the stricter
    variant). The returned ``kl`` is the true KL. Train by minimising ``-terms.elbo.mean()``.
    See: book/03_vae/elbo.ipynb (beta and free bits: beta_vae.ipynb).
    """
    if beta < 0 or free_bits < 0:
        raise ValueError(f"beta and free_bits must be >= 0, got beta={beta}, free_bits={free_bits}")
    mu, logvar = _encode(model, x, labels)  # (B, D) each
    z = mu + torch.exp(0.5 * logvar) * _standard_normal(tuple(mu.shape), mu, generator)
    reconstruction = _log_likelihood(model, model.decode(z, labels=labels), x)  # (B,)
    kl_per_dim = _gaussian_kl_per_dim(mu, logvar)  # (B, D)
    kl = kl_per_dim.sum(dim=1)
    kl_objective = kl_per_dim.clamp(min=free_bits).sum(dim=1) if free_bits > 0 else kl
    return ELBOTerms(reconstruction - beta * kl_objective, reconstruction, kl)


def iwae_bound(
    model: Any,
    x: Tensor,
    num_samples: int,
    labels: Tensor | None = None,
    generator: torch.Generator | None = None,
    rows_per_chunk: int = 10_000,
) -> Tensor:
    """Importance-weighted bound ``L_k = log (1/k) sum_i p(x, z_i) / q(z_i|x)``, shape ``(B,)``.

    ``z_1 ... z_k ~ q(z|x)`` independently (Burda et al. 2016).

    ``log w_i = log p(x|z_i) + log N(z_i; 0, I) - log N(z_i; mu, diag sigma^2)``, combined with
    ``logsumexp(log w) - log k``. ``E L_1`` is the ELBO, ``E L_k`` grows with ``k`` and tends to
    ``log p(x)`` (Burda et al. 2016); if ``q`` is the exact posterior every ``w_i = p(x)``.
    The ``B * k`` decoder calls are made in chunks of at most ``rows_per_chunk`` rows.
    See: book/03_vae/likelihood.ipynb.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    mu, logvar = _encode(model, x, labels)  # (B, D)
    batch, latent_dim = mu.shape
    std = torch.exp(0.5 * logvar)
    chunk = max(1, min(num_samples, rows_per_chunk // batch))
    log_weights = []
    for start in range(0, num_samples, chunk):
        c = min(chunk, num_samples - start)
        eps = _standard_normal((c, batch, latent_dim), mu, generator)  # (c, B, D)
        z = mu + std * eps  # (c, B, D)
        log_prior = -0.5 * (z.pow(2) + LOG_2PI).sum(dim=2)  # (c, B)
        log_posterior = -0.5 * (eps.pow(2) + LOG_2PI + logvar).sum(dim=2)  # (c, B)
        rep_labels = None if labels is None else labels.repeat(c)  # row r*B + b has labels[b]
        decoded = model.decode(z.reshape(c * batch, latent_dim), labels=rep_labels)
        rep_x = x.unsqueeze(0).expand(c, *x.shape).reshape(c * batch, *x.shape[1:])
        log_lik = _log_likelihood(model, decoded, rep_x).view(c, batch)  # (c, B)
        log_weights.append(log_lik + log_prior - log_posterior)
    log_w = torch.cat(log_weights, dim=0)  # (k, B)
    return torch.logsumexp(log_w, dim=0) - math.log(num_samples)
