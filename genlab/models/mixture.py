"""Gaussian mixture models fitted by maximum likelihood with EM: the book's first generative model.

The model, with K components in D dimensions::

    p(x) = sum_k pi_k N(x; mu_k, Sigma_k),        pi_k >= 0, sum_k pi_k = 1

``covariance="full"`` stores each Sigma_k as a (D, D) matrix; ``covariance="diag"`` stores
only its diagonal (D,), so Sigma_k = diag(var_k). Sampling is *ancestral*: draw a component
k ~ Categorical(pi), then x = mu_k + Sigma_k^{1/2} eps with eps ~ N(0, I).

Expectation-maximisation (Dempster, Laird & Rubin, 1977) alternates

* E-step: responsibilities r_ik = pi_k N(x_i; mu_k, Sigma_k) / p(x_i);
* M-step: N_k = sum_i r_ik, pi_k = N_k / N, mu_k = sum_i r_ik x_i / N_k,
  Sigma_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T / N_k,

and never decreases the log-likelihood. Without a floor the likelihood is unbounded
(a component that collapses onto one point, or onto a pixel that is always 0, has
density -> infinity), so the M-step keeps every variance (every eigenvalue of Sigma_k)
at least ``variance_floor``. Clipping the eigenvalues of the weighted sample covariance
is the *exact* maximiser under that constraint, so EM stays monotone.

All parameters are float64; ``log_prob`` and ``sample`` accept and return float64.

See: book/01_concepts/generative_vs_discriminative.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "COVARIANCE_TYPES",
    "GaussianMixture",
    "em_step",
    "fit_gaussian_mixture",
    "gaussian_mixture_parameter_count",
    "initialise_mixture",
]

COVARIANCE_TYPES = ("full", "diag")
LOG_2PI = math.log(2 * math.pi)


def _check_covariance_type(covariance: str) -> str:
    if covariance not in COVARIANCE_TYPES:
        raise ValueError(f"unknown covariance type {covariance!r}; expected one of {COVARIANCE_TYPES}")
    return covariance


def gaussian_mixture_parameter_count(num_components: int, dim: int, covariance: str = "full") -> int:
    """Free parameters of a K-component mixture in D dimensions.

    (K - 1) mixture weights + K * D means + K * D(D+1)/2 (full, symmetric) or K * D (diag)
    covariance entries. For D = 784 (MNIST pixels) a full covariance alone has 307,720.
    See: book/01_concepts/generative_vs_discriminative.ipynb.
    """
    if num_components < 1 or dim < 1:
        raise ValueError(f"need num_components >= 1 and dim >= 1, got {num_components} and {dim}")
    per_covariance = dim * (dim + 1) // 2 if _check_covariance_type(covariance) == "full" else dim
    return (num_components - 1) + num_components * (dim + per_covariance)


def _as_data(x: Tensor, name: str = "x") -> Tensor:
    x = torch.as_tensor(x)
    if x.dim() != 2:
        raise ValueError(f"expected {name} of shape (N, D), got {tuple(x.shape)}")
    if len(x) == 0:
        raise ValueError(f"{name} is empty")
    x = x.detach().to("cpu", torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


@dataclass(frozen=True)
class GaussianMixture:
    """A mixture of K Gaussians in D dimensions (float64 tensors on the CPU).

    weights: (K,) summing to 1;  means: (K, D);
    covariances: (K, D, D) for ``covariance="full"``, (K, D) variances for ``"diag"``.
    See: book/01_concepts/generative_vs_discriminative.ipynb.
    """

    weights: Tensor
    means: Tensor
    covariances: Tensor
    covariance: str = "full"

    def __post_init__(self) -> None:
        _check_covariance_type(self.covariance)
        k, d = self.means.shape if self.means.dim() == 2 else (None, None)
        if k is None:
            raise ValueError(f"means must have shape (K, D), got {tuple(self.means.shape)}")
        if self.weights.shape != (k,):
            raise ValueError(f"weights must have shape ({k},), got {tuple(self.weights.shape)}")
        expected = (k, d, d) if self.covariance == "full" else (k, d)
        if tuple(self.covariances.shape) != expected:
            raise ValueError(f"{self.covariance} covariances must have shape {expected}, "
                             f"got {tuple(self.covariances.shape)}")
        if (self.weights < 0).any() or abs(float(self.weights.sum()) - 1.0) > 1e-6:
            raise ValueError(f"weights must be non-negative and sum to 1, got sum {float(self.weights.sum()):.6f}")

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def num_parameters(self) -> int:
        """Free parameters; see :func:`gaussian_mixture_parameter_count`."""
        return gaussian_mixture_parameter_count(self.num_components, self.dim, self.covariance)

    def component_log_prob(self, x: Tensor) -> Tensor:
        """log pi_k + log N(x_i; mu_k, Sigma_k) for every point and component: (N, K)."""
        x = _as_data(x)
        if x.shape[1] != self.dim:
            raise ValueError(f"expected points of dimension {self.dim}, got {x.shape[1]}")
        if self.covariance == "diag":
            precision = 1.0 / self.covariances  # (K, D)
            # sum_d (x_d - mu_d)^2 / v_d, expanded so no (N, K, D) tensor is ever built
            mahalanobis = (x.square() @ precision.T - 2 * x @ (self.means * precision).T
                           + (self.means.square() * precision).sum(1))  # (N, K)
            log_det = self.covariances.log().sum(1)  # (K,)
        else:
            cholesky = torch.linalg.cholesky(self.covariances)  # (K, D, D), Sigma_k = L_k L_k^T
            eye = torch.eye(self.dim, dtype=cholesky.dtype).expand_as(cholesky)
            inverse_cholesky = torch.linalg.solve_triangular(cholesky, eye, upper=False)  # (K, D, D), L_k^{-1}
            shift = (inverse_cholesky @ self.means[:, :, None]).transpose(1, 2)  # (K, 1, D)
            whitened = x @ inverse_cholesky.transpose(1, 2) - shift  # (K, N, D): L_k^{-1}(x - mu_k)
            mahalanobis = whitened.square().sum(2).T  # (N, K)
            log_det = 2 * cholesky.diagonal(dim1=1, dim2=2).log().sum(1)  # (K,)
        log_normal = -0.5 * (self.dim * LOG_2PI + log_det + mahalanobis)  # (N, K)
        return self.weights.log() + log_normal

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x_i) for each row of x (N, D): a (N,) float64 tensor, in nats."""
        return torch.logsumexp(self.component_log_prob(x), dim=1)

    def responsibilities(self, x: Tensor) -> Tensor:
        """Posterior component probabilities p(k | x_i) (N, K); rows sum to 1 (the E-step)."""
        return torch.softmax(self.component_log_prob(x), dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None,
               return_components: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Ancestral sampling: k ~ Categorical(pi), then x = mu_k + Sigma_k^{1/2} eps; (n, D).

        With ``return_components=True`` also returns the (n,) component indices.
        """
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        components = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)  # (n, D)
        if self.covariance == "diag":
            x = self.means[components] + self.covariances[components].sqrt() * eps
        else:
            cholesky = torch.linalg.cholesky(self.covariances)[components]  # (n, D, D)
            x = self.means[components] + (cholesky @ eps[:, :, None]).squeeze(2)
        return (x, components) if return_components else x

    @classmethod
    def concatenate(cls, mixtures: Sequence[GaussianMixture], weights: Sequence[float] | Tensor) -> GaussianMixture:
        """The mixture sum_j w_j p_j(x) of mixtures p_j: one mixture with all their components.

        Used to pool class-conditional models p(x | y) into p(x) = sum_y p(y) p(x | y).
        Components of mixture j come in order, so component indices can be mapped back to j.
        """
        weights = torch.as_tensor(weights, dtype=torch.float64)
        if len(mixtures) == 0 or weights.shape != (len(mixtures),):
            raise ValueError(f"need one weight per mixture, got {tuple(weights.shape)} for {len(mixtures)} mixtures")
        kinds = {m.covariance for m in mixtures}
        if len(kinds) != 1 or len({m.dim for m in mixtures}) != 1:
            raise ValueError("all mixtures must have the same covariance type and dimension")
        return cls(weights=torch.cat([w * m.weights for w, m in zip(weights, mixtures)]),
                   means=torch.cat([m.means for m in mixtures]),
                   covariances=torch.cat([m.covariances for m in mixtures]),
                   covariance=kinds.pop())


def _floored_covariances(scatter: Tensor, covariance: str, variance_floor: float) -> Tensor:
    """The constrained ML covariance: eigenvalues (or variances) clipped from below at the floor."""
    if covariance == "diag":
        return scatter.clamp(min=variance_floor)
    symmetric = (scatter + scatter.transpose(1, 2)) / 2
    eigenvalues, eigenvectors = torch.linalg.eigh(symmetric)  # (K, D), (K, D, D)
    return eigenvectors @ torch.diag_embed(eigenvalues.clamp(min=variance_floor)) @ eigenvectors.transpose(1, 2)


def em_step(model: GaussianMixture, x: Tensor, variance_floor: float = 1e-6) -> tuple[GaussianMixture, float]:
    """One EM iteration: returns (the updated mixture, the mean log-likelihood of x under ``model``).

    The returned log-likelihood is that of the model *before* the update (the E-step
    computes it for free), so the sequence over iterations is non-decreasing.
    A component that receives no responsibility keeps its parameters.
    See: book/01_concepts/generative_vs_discriminative.ipynb.
    """
    x = _as_data(x)
    log_joint = model.component_log_prob(x)  # (N, K)
    log_px = torch.logsumexp(log_joint, dim=1, keepdim=True)  # (N, 1)
    resp = (log_joint - log_px).exp()  # (N, K)  E-step
    counts = resp.sum(0)  # (K,)  N_k
    alive = counts > 1e-10
    safe_counts = counts.clamp(min=1e-10)
    means = torch.where(alive[:, None], (resp.T @ x) / safe_counts[:, None], model.means)  # (K, D)
    if model.covariance == "diag":
        scatter = (resp.T @ x.square()) / safe_counts[:, None] - means.square()  # E[x^2] - mu^2, (K, D)
        scatter = scatter.clamp(min=0)
    else:
        second_moment = torch.einsum("nk,ni,nj->kij", resp, x, x) / safe_counts[:, None, None]  # (K, D, D)
        scatter = second_moment - means[:, :, None] * means[:, None, :]  # E[x x^T] - mu mu^T
    covariances = _floored_covariances(scatter, model.covariance, variance_floor)
    shape = (-1,) + (1,) * (covariances.dim() - 1)
    covariances = torch.where(alive.view(shape), covariances, model.covariances)
    updated = GaussianMixture(counts / counts.sum(), means, covariances, model.covariance)
    return updated, float(log_px.mean())


def initialise_mixture(x: Tensor, num_components: int, covariance: str = "full",
                       generator: torch.Generator | None = None, variance_floor: float = 1e-6) -> GaussianMixture:
    """A starting point for EM: k-means++ seeding of the means (Arthur & Vassilvitskii, 2007),
    equal weights, and every covariance equal to the data's overall per-dimension variance
    (at least ``variance_floor``, so EM starts inside the constrained set)."""
    x = _as_data(x)
    _check_covariance_type(covariance)
    n, d = x.shape
    if not 1 <= num_components <= n:
        raise ValueError(f"num_components must be between 1 and the number of points ({n}), got {num_components}")
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    nearest = (x - x[chosen[0]]).square().sum(1)  # (N,) squared distance to the nearest chosen centre
    for _ in range(1, num_components):
        probabilities = nearest / nearest.sum() if nearest.sum() > 0 else torch.full((n,), 1.0 / n, dtype=x.dtype)
        index = int(torch.multinomial(probabilities, 1, generator=generator))
        chosen.append(index)
        nearest = torch.minimum(nearest, (x - x[index]).square().sum(1))
    variances = x.var(0, unbiased=False).clamp(min=variance_floor)  # (D,)
    covariances = (variances.expand(num_components, d).clone() if covariance == "diag"
                   else torch.diag(variances).expand(num_components, d, d).clone())
    weights = torch.full((num_components,), 1.0 / num_components, dtype=torch.float64)
    return GaussianMixture(weights, x[chosen].clone(), covariances, covariance)


def fit_gaussian_mixture(x: Tensor, num_components: int, covariance: str = "full", num_iters: int = 100,
                         tol: float = 1e-6, variance_floor: float = 1e-6,
                         generator: torch.Generator | None = None) -> tuple[GaussianMixture, list[float]]:
    """Maximum-likelihood fit by EM from :func:`initialise_mixture`.

    Stops after ``num_iters`` iterations or when the mean log-likelihood improves by less
    than ``tol`` nats per point. Returns (mixture, history) where ``history[t]`` is the mean
    log-likelihood (nats per point) after t EM steps: ``history[0]`` at the initialisation,
    ``history[-1]`` for the returned mixture. EM guarantees it never decreases.
    See: book/01_concepts/generative_vs_discriminative.ipynb.
    """
    x = _as_data(x)
    if variance_floor <= 0:
        raise ValueError(f"variance_floor must be positive (the likelihood is unbounded without it), "
                         f"got {variance_floor}")
    model = initialise_mixture(x, num_components, covariance, generator, variance_floor)
    history: list[float] = []
    for _ in range(num_iters):
        model, log_likelihood = em_step(model, x, variance_floor)
        history.append(log_likelihood)
        if len(history) >= 2 and history[-1] - history[-2] < tol:
            break
    history.append(float(model.log_prob(x).mean()))
    return model, history
