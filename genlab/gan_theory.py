"""The GAN theory of Part 2, made computable: 1-D densities on a grid, divergences, 1-D GANs.

Densities are handled as *log* densities on an increasing 1-D grid ``x`` and integrated with
the trapezoid rule, so that nothing overflows in the tails (``log D* = log p_data -
log(p_data + p_g)`` is evaluated with ``logaddexp``). The divergences are in nats.

The 1-D GAN pieces are deliberately tiny: :class:`AffineGenerator1d` can represent any
Gaussian exactly (so "how far is p_g from p_data" has a closed-form answer), and
:class:`Discriminator1d` is a small MLP returning raw logits of shape ``(B,)``, the
convention of ``genlab.losses``. :func:`train_gan_1d` alternates one step of each player on
objectives *you* pass in, which is how the book tests what goes wrong when a player
descends the wrong objective.

See: book/02_gan_math/optimal_discriminator.ipynb, value_function.ipynb and generator_gradient.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from genlab.losses import discriminator_loss

__all__ = [
    "AffineGenerator1d",
    "Discriminator1d",
    "fit_discriminator",
    "gan_value",
    "gaussian_grid",
    "gaussian_js",
    "js_divergence",
    "kl_divergence",
    "mixture_log_pdf",
    "normal_log_pdf",
    "optimal_discriminator",
    "optimal_discriminator_logit",
    "train_gan_1d",
    "trapezoid",
]

Sampler = Callable[[int, "torch.Generator | None"], Tensor]
Objective = Callable[[Tensor, Tensor], Tensor]

# --------------------------------------------------------------------------- densities on a grid


def _check_grid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or len(x) < 3 or not (np.diff(x) > 0).all():
        raise ValueError("x must be a 1-D increasing grid of at least 3 points")
    return x


def _check_same_shape(x: np.ndarray, **arrays: np.ndarray) -> list[np.ndarray]:
    out = []
    for name, array in arrays.items():
        array = np.asarray(array, dtype=np.float64)
        if array.shape != x.shape:
            raise ValueError(f"{name} has shape {array.shape} but the grid x has shape {x.shape}")
        out.append(array)
    return out


def trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """``int y dx`` by the trapezoid rule on the grid ``x`` (works on NumPy 1 and 2).

    See: book/02_gan_math/optimal_discriminator.ipynb.
    """
    x = _check_grid(x)
    (y,) = _check_same_shape(x, y=y)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)


def normal_log_pdf(x: np.ndarray, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """``log N(x; mean, std^2) = -(x - mean)^2 / (2 std^2) - log std - log(2 pi) / 2``.

    See: book/02_gan_math/optimal_discriminator.ipynb.
    """
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    x = np.asarray(x, dtype=np.float64)
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def mixture_log_pdf(
    x: np.ndarray, means: Sequence[float], stds: Sequence[float], weights: Sequence[float] | None = None
) -> np.ndarray:
    """``log sum_k w_k N(x; mean_k, std_k^2)`` (log-sum-exp, no underflow); equal weights by default.

    See: book/02_gan_math/optimal_discriminator.ipynb.
    """
    means, stds = list(means), list(stds)
    if not means or len(means) != len(stds):
        raise ValueError(f"need as many means as stds (at least one), got {len(means)} and {len(stds)}")
    w = np.full(len(means), 1.0 / len(means)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(means),) or (w <= 0).any() or abs(w.sum() - 1.0) > 1e-9:
        raise ValueError(f"weights must be {len(means)} positive numbers summing to 1, got {weights}")
    parts = np.stack([math.log(wk) + normal_log_pdf(x, m, s) for wk, m, s in zip(w, means, stds)])
    return np.logaddexp.reduce(parts, axis=0)


def _densities(log_p: np.ndarray, log_q: np.ndarray, x: np.ndarray, names: tuple[str, str]):
    x = _check_grid(x)
    log_p, log_q = _check_same_shape(x, **{names[0]: log_p, names[1]: log_q})
    p, q = np.exp(log_p), np.exp(log_q)
    for name, density in zip(names, (p, q)):
        mass = trapezoid(density, x)
        if abs(mass - 1.0) > 1e-4:
            raise ValueError(f"the grid holds {mass:.6f} of {name}'s mass (not 1); widen or refine the grid")
    return x, log_p, log_q, p, q


def kl_divergence(log_p: np.ndarray, log_q: np.ndarray, x: np.ndarray) -> float:
    """``KL(p || q) = int p(x) (log p(x) - log q(x)) dx`` in nats, from log densities on the grid ``x``.

    Raises if either density has not (almost exactly) unit mass on the grid.
    See: book/02_gan_math/optimal_discriminator.ipynb.
    """
    x, log_p, log_q, p, _ = _densities(log_p, log_q, x, ("p", "q"))
    return trapezoid(p * (log_p - log_q), x)


def js_divergence(log_p: np.ndarray, log_q: np.ndarray, x: np.ndarray) -> float:
    """Jensen-Shannon divergence ``KL(p || m) / 2 + KL(q || m) / 2``, ``m = (p + q) / 2``, in nats.

    Symmetric, 0 iff ``p = q``, at most ``log 2`` (disjoint supports).
    See: book/02_gan_math/optimal_discriminator.ipynb.
    """
    x, log_p, log_q, p, q = _densities(log_p, log_q, x, ("p", "q"))
    log_m = np.logaddexp(log_p, log_q) - math.log(2.0)
    return 0.5 * trapezoid(p * (log_p - log_m), x) + 0.5 * trapezoid(q * (log_q - log_m), x)


def gaussian_grid(means: Sequence[float], stds: Sequence[float], points: int = 4001, width: float = 12.0) -> np.ndarray:
    """An increasing grid that resolves every Gaussian ``N(mean_k, std_k^2)`` however narrow.

    The union of ``points`` evenly spaced points over ``mean_k +- width * std_k`` for each k, and
    ``points`` more across the whole span, so both a wide and a very narrow density integrate to 1.
    See: book/02_gan_math/value_function.ipynb.
    """
    means, stds = [float(m) for m in means], [float(s) for s in stds]
    if not means or len(means) != len(stds) or min(stds) <= 0:
        raise ValueError(f"need matching means and positive stds, got {means} and {stds}")
    low = min(m - width * s for m, s in zip(means, stds))
    high = max(m + width * s for m, s in zip(means, stds))
    parts = [np.linspace(low, high, points)]
    parts += [np.linspace(m - width * s, m + width * s, points) for m, s in zip(means, stds)]
    return np.unique(np.concatenate(parts))


def gaussian_js(mean_p: float, std_p: float, mean_q: float, std_q: float) -> float:
    """``JS(N(mean_p, std_p^2) || N(mean_q, std_q^2))`` in nats, by quadrature on :func:`gaussian_grid`.

    (There is no closed form for the JS divergence of two Gaussians.)
    See: book/02_gan_math/value_function.ipynb.
    """
    x = gaussian_grid([mean_p, mean_q], [std_p, std_q])
    return js_divergence(normal_log_pdf(x, mean_p, std_p), normal_log_pdf(x, mean_q, std_q), x)


def optimal_discriminator_logit(log_p_data: np.ndarray, log_p_g: np.ndarray) -> np.ndarray:
    """The logit of ``D*``: ``log D* - log(1 - D*) = log p_data(x) - log p_g(x)``.

    See: book/02_gan_math/optimal_discriminator.ipynb.
    """
    return np.asarray(log_p_data, dtype=np.float64) - np.asarray(log_p_g, dtype=np.float64)


def optimal_discriminator(log_p_data: np.ndarray, log_p_g: np.ndarray) -> np.ndarray:
    """``D*(x) = p_data(x) / (p_data(x) + p_g(x))``, the discriminator that maximises ``V(D, G)``.

    Computed as ``sigmoid(log p_data - log p_g)``, exact even where both densities underflow.
    See: book/02_gan_math/optimal_discriminator.ipynb.
    """
    logit = optimal_discriminator_logit(log_p_data, log_p_g)
    return np.exp(-np.logaddexp(0.0, -logit))


def gan_value(log_p_data: np.ndarray, log_p_g: np.ndarray, d_logit: np.ndarray, x: np.ndarray) -> float:
    """``V(D, G) = int p_data log D + p_g log(1 - D) dx`` for ``D = sigmoid(d_logit)`` given on the grid.

    ``log D = -log(1 + e^{-l})`` and ``log(1 - D) = -log(1 + e^{l})`` are evaluated stably.
    With ``d_logit = optimal_discriminator_logit(...)`` this is ``-log 4 + 2 JS(p_data || p_g)``.
    See: book/02_gan_math/optimal_discriminator.ipynb.
    """
    x, _, _, p_data, p_g = _densities(log_p_data, log_p_g, x, ("p_data", "p_g"))
    (logit,) = _check_same_shape(x, d_logit=d_logit)
    return trapezoid(p_data * -np.logaddexp(0.0, -logit) + p_g * -np.logaddexp(0.0, logit), x)


# --------------------------------------------------------------------------- 1-D models


class AffineGenerator1d(nn.Module):
    """``G(z) = mean + std * z`` with ``z ~ N(0, 1)``: its samples follow exactly ``N(mean, std^2)``.

    Parameters ``mean`` and ``log_std`` (so the width stays positive). ``forward`` maps
    ``(B, 1) -> (B, 1)``. See: book/02_gan_math/generator_gradient.ipynb.
    """

    latent_dim = 1

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        if not std > 0:
            raise ValueError(f"std must be positive, got {std}")
        self.mean = nn.Parameter(torch.tensor(float(mean)))
        self.log_std = nn.Parameter(torch.tensor(math.log(std)))

    @property
    def std(self) -> Tensor:
        return self.log_std.exp()

    def forward(self, z: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != 1:
            raise ValueError(f"AffineGenerator1d: expected z of shape (B, 1), got {tuple(z.shape)}")
        return self.mean + self.std * z  # (B, 1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples, shape ``(n, 1)`` (gradients flow to ``mean`` and ``log_std``)."""
        z = torch.randn(n, 1, generator=generator).to(self.mean.device)
        return self(z)


class Discriminator1d(nn.Module):
    """A small MLP on the real line: ``depth`` x [Linear -> LeakyReLU(0.2)] -> Linear(1).

    ``(B, 1) -> (B,)`` raw logits (no sigmoid): ``D(x) = sigmoid(logit)``.
    See: book/02_gan_math/optimal_discriminator.ipynb.
    """

    def __init__(self, hidden: int = 32, depth: int = 2) -> None:
        super().__init__()
        if hidden < 1 or depth < 1:
            raise ValueError(f"hidden and depth must be positive, got hidden={hidden}, depth={depth}")
        layers: list[nn.Module] = []
        width = 1
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != 1:
            raise ValueError(f"Discriminator1d: expected points of shape (B, 1), got {tuple(x.shape)}")
        return self.net(x).squeeze(1)  # (B,)


def _optimizer(kind: str, params, lr: float) -> torch.optim.Optimizer:
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"unknown optimizer {kind!r}; expected 'adam' or 'sgd'")


def fit_discriminator(
    discriminator: nn.Module,
    sample_real: Sampler,
    sample_fake: Sampler,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-2,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Train ``discriminator`` by Adam on ``genlab.losses.discriminator_loss`` (binary cross-entropy).

    Each step draws fresh batches ``sample_real(batch_size, generator)`` and
    ``sample_fake(batch_size, generator)`` (both ``(B, 1)``, treated as constants). Returns
    the loss per step. With enough capacity and steps the result approaches
    ``D* = p_data / (p_data + p_g)`` and the loss approaches ``log 4 - 2 JS(p_data || p_g)``.
    See: book/02_gan_math/optimal_discriminator.ipynb.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    optimizer = _optimizer("adam", discriminator.parameters(), lr)
    losses = []
    for _ in range(steps):
        real = sample_real(batch_size, generator).detach()
        fake = sample_fake(batch_size, generator).detach()
        loss = discriminator_loss(discriminator(real), discriminator(fake))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def train_gan_1d(
    generator_net: AffineGenerator1d,
    discriminator_net: nn.Module,
    sample_real: Sampler,
    steps: int,
    d_objective: Objective,
    g_objective: Objective,
    *,
    batch_size: int = 256,
    lr_d: float = 1e-2,
    lr_g: float = 1e-2,
    d_optimizer: str = "adam",
    g_optimizer: str = "adam",
    generator: torch.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Alternate one discriminator step and one generator step, each *descending* its own objective.

    ``d_objective(real_logits, fake_logits)`` and ``g_objective(real_logits, fake_logits)`` are
    scalars that the discriminator and the generator *minimise* (``(B,)`` raw logits in).
    The standard GAN is ``d_objective = discriminator_loss`` (= ``-V``) and ``g_objective =
    generator_loss(fake)``; passing other objectives shows what a wrong direction does.
    In the discriminator's step the fakes are detached; in the generator's step only the
    generator's parameters are updated (gradients also reach the discriminator's, but
    they are discarded).

    Returns arrays of length ``steps + 1`` (index ``t`` = after ``t`` steps): ``mean`` and
    ``std`` of the generator, and of length ``steps``: ``d_objective``, ``g_objective``,
    ``d_real`` / ``d_fake`` (mean ``sigmoid(logit)`` before the step) and ``grad_mean``
    (the generator's gradient with respect to its ``mean``).
    See: book/02_gan_math/value_function.ipynb and generator_gradient.ipynb.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    opt_d = _optimizer(d_optimizer, discriminator_net.parameters(), lr_d)
    opt_g = _optimizer(g_optimizer, generator_net.parameters(), lr_g)
    history: dict[str, list[float]] = {k: [] for k in ("d_objective", "g_objective", "d_real", "d_fake", "grad_mean")}
    means, stds = [generator_net.mean.item()], [generator_net.std.item()]
    for _ in range(steps):
        real = sample_real(batch_size, generator).detach()  # (B, 1)
        fake = generator_net.sample(batch_size, generator)  # (B, 1)
        real_logits, fake_logits = discriminator_net(real), discriminator_net(fake.detach())
        loss_d = d_objective(real_logits, fake_logits)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        history["d_objective"].append(loss_d.item())
        history["d_real"].append(torch.sigmoid(real_logits).mean().item())
        history["d_fake"].append(torch.sigmoid(fake_logits).mean().item())

        fake = generator_net.sample(batch_size, generator)
        loss_g = g_objective(discriminator_net(real), discriminator_net(fake))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        history["grad_mean"].append(generator_net.mean.grad.item())
        opt_g.step()
        discriminator_net.zero_grad(set_to_none=True)  # discard what the generator's loss left there
        history["g_objective"].append(loss_g.item())
        means.append(generator_net.mean.item())
        stds.append(generator_net.std.item())
    out = {k: np.asarray(v) for k, v in history.items()}
    out["mean"], out["std"] = np.asarray(means), np.asarray(stds)
    return out
