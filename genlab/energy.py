"""Energy-based models: Langevin dynamics, a replay buffer and the contrastive-divergence loss.

An energy-based model (EBM) is a scalar function E(x); it defines the density
p(x) = exp(-E(x)) / Z with the normaliser Z = integral of exp(-E(x)) dx, which is never computed.
Low energy means high probability. Training needs samples of the model (the gradient of log Z is
an expectation under p), and sampling needs only the score grad_x log p(x) = -grad_x E(x), which
Langevin dynamics uses:

* :func:`langevin_sample`: the unadjusted Langevin algorithm on an energy;
* :func:`decoupled_langevin_parameters`: Du and Mordatch's separate gradient step and noise as
  ``(step_size, noise_scale)``;
* :class:`ReplayBuffer`: the persistent chains of Du and Mordatch (2019), fresh noise for a few;
* :func:`contrastive_divergence_loss`: E(real) - E(fake) plus the energy-magnitude regulariser;
* :func:`energy_grid`: an energy (and its normalised density) on a 2-D grid, for plots and checks.

The exact score of a Gaussian mixture (the 2-D toys) is :func:`genlab.diffusion.mixture_score`.
See: book/07_diffusion/energy_models.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["ReplayBuffer", "contrastive_divergence_loss", "decoupled_langevin_parameters", "energy_grid",
           "langevin_sample"]

EnergyFn = Callable[[Tensor], Tensor]  # x (B, *shape) -> energies (B,)


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    where = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=where, dtype=like.dtype).to(like.device)


def _check_clamp(clamp: tuple[float, float] | None) -> None:
    if clamp is not None and not (len(clamp) == 2 and clamp[0] < clamp[1]):
        raise ValueError(f"clamp must be None or (low, high) with low < high, got {clamp}")


def langevin_sample(energy_fn: EnergyFn, x0: Tensor, steps: int, step_size: float, noise_scale: float = 1.0,
                    clamp: tuple[float, float] | None = None, generator: torch.Generator | None = None,
                    grad_clip: float | None = None) -> Tensor:
    """Run ``steps`` steps of Langevin dynamics on ``energy_fn`` from ``x0`` (B, ...); returns x_K (detached).

    The update (the unadjusted Langevin algorithm), with step size eps = ``step_size`` and
    z ~ N(0, I) fresh at every step::

        x <- x - (eps / 2) grad_x E(x) + noise_scale * sqrt(eps) * z

    With ``noise_scale = 1`` this is the Euler-Maruyama discretisation of the diffusion
    dx = -(1/2) grad E dt + dW, whose stationary law is p(x) proportional to exp(-E(x)); the bias
    vanishes as eps -> 0 (and a Metropolis correction would remove it). ``noise_scale`` s != 1
    samples exp(-E(x) / s^2), the model at temperature s^2: the step is the same as
    Langevin on E / s^2 with step s^2 eps.

    Du and Mordatch (2019) write the step with a separate gradient step lambda and noise standard
    deviation sigma, x <- x - lambda grad E + sigma z (they use lambda = 10, sigma = 0.005 on
    images); that is ``step_size = 2 lambda``, ``noise_scale = sigma / sqrt(2 lambda)``
    (:func:`decoupled_langevin_parameters`), a very cold chain that behaves like noisy gradient
    descent on E. ``clamp``: (low, high) applied after every step (images: (-1, 1));
    ``grad_clip``: clip each example's gradient to this norm (a common stabiliser; None: off).
    ``energy_fn(x)`` returns (B,) energies; gradients flow to x only (the model's parameters get
    none), and the call works inside ``torch.no_grad()``. Seeded by ``generator``.
    See: book/07_diffusion/energy_models.ipynb.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if step_size <= 0 or noise_scale < 0:
        raise ValueError(f"need step_size > 0 and noise_scale >= 0, got {step_size} and {noise_scale}; "
                         "for Du and Mordatch's (lambda, sigma) use decoupled_langevin_parameters")
    if grad_clip is not None and grad_clip <= 0:
        raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip}")
    _check_clamp(clamp)
    x = x0.detach().clone()
    noise_std = noise_scale * math.sqrt(step_size)
    with torch.enable_grad():
        for _ in range(steps):
            x.requires_grad_(True)
            energy = energy_fn(x)  # (B,)
            if energy.shape != x.shape[:1]:
                raise ValueError(f"energy_fn must return one energy per example, shape ({len(x)},); "
                                 f"got {tuple(energy.shape)}")
            (grad,) = torch.autograd.grad(energy.sum(), x)  # (B, ...)
            if grad_clip is not None:
                norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
                grad = grad * (grad_clip / norms).clamp(max=1.0)
            x = x.detach() - 0.5 * step_size * grad
            if noise_std > 0:
                x = x + noise_std * _randn(tuple(x.shape), generator, x)
            if clamp is not None:
                x = x.clamp(*clamp)
    return x.detach()


def decoupled_langevin_parameters(grad_step: float, noise_std: float) -> tuple[float, float]:
    """Du and Mordatch's x <- x - lambda grad E + sigma z as ``(step_size, noise_scale)`` of
    :func:`langevin_sample`: (2 lambda, sigma / sqrt(2 lambda)). The chain samples
    exp(-E / T) at temperature T = sigma^2 / (2 lambda) (lambda = 10, sigma = 0.005: T = 1.25e-6).
    See: book/07_diffusion/energy_models.ipynb.
    """
    if grad_step <= 0 or noise_std < 0:
        raise ValueError(f"need grad_step (lambda) > 0 and noise_std (sigma) >= 0, got {grad_step}, {noise_std}")
    return 2 * grad_step, noise_std / math.sqrt(2 * grad_step)


def contrastive_divergence_loss(energy_real: Tensor, energy_fake: Tensor, alpha: float = 0.1) -> Tensor:
    """The contrastive-divergence loss with Du and Mordatch's energy regulariser (a scalar).

    mean(E(x_real)) - mean(E(x_fake)) + alpha * mean(E(x_real)^2 + E(x_fake)^2).
    Its gradient in the parameters is the maximum-likelihood gradient of the negative
    log-likelihood, grad E(real) - E_p[grad E], with the model expectation replaced by the fake
    samples (Langevin chains; detach them first). Minimising it pushes the energy of data down and
    that of samples up; the regulariser keeps both near 0, so the energies cannot drift without
    bound (the loss is unchanged by E -> E + c). See: book/07_diffusion/energy_models.ipynb.
    """
    if alpha < 0:
        raise ValueError(f"alpha (the regulariser's weight) must be >= 0, got {alpha}")
    if energy_real.dim() != 1 or energy_fake.dim() != 1:
        raise ValueError(f"expected energies of shape (B,), got {tuple(energy_real.shape)} and "
                         f"{tuple(energy_fake.shape)}")
    contrast = energy_real.mean() - energy_fake.mean()
    return contrast + alpha * (energy_real.pow(2).mean() + energy_fake.pow(2).mean())


class ReplayBuffer(nn.Module):
    """Persistent Langevin chains (Du and Mordatch, 2019): a fixed-capacity store of past samples.

    :meth:`sample` draws a batch of chain starts: each example is, with probability ``reinit``,
    fresh noise, otherwise a uniformly chosen stored sample (all fresh while the buffer is empty).
    :meth:`push` stores the chains' end points, overwriting the oldest once ``capacity`` is
    reached (first in, first out). Fresh noise: ``noise="uniform"`` in [-noise_scale, noise_scale]
    (images in [-1, 1]: noise_scale 1) or ``"normal"`` with standard deviation ``noise_scale``.

    A module whose state (the stored samples, their count and the write position) is in
    ``state_dict``: keep it in a task's ``models`` and a checkpoint saves and restores it, so a
    resumed run continues the same chains. See: book/07_diffusion/energy_models.ipynb.
    """

    def __init__(self, capacity: int, shape: tuple[int, ...], reinit: float = 0.05, noise: str = "uniform",
                 noise_scale: float = 1.0) -> None:
        super().__init__()
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if not 0.0 <= reinit <= 1.0:
            raise ValueError(f"reinit (the fraction of chains restarted from noise) must be in [0, 1], got {reinit}")
        if noise not in ("uniform", "normal") or noise_scale <= 0:
            raise ValueError(f"noise must be 'uniform' or 'normal' and noise_scale > 0, got {noise!r}, {noise_scale}")
        self.capacity, self.shape, self.reinit = capacity, tuple(shape), reinit
        self.noise, self.noise_scale = noise, noise_scale
        self.register_buffer("samples", torch.zeros(capacity, *self.shape))  # (capacity, *shape)
        self.register_buffer("count", torch.zeros((), dtype=torch.long))  # how many slots are filled
        self.register_buffer("position", torch.zeros((), dtype=torch.long))  # the next slot to write

    def __len__(self) -> int:
        return int(self.count)

    def fresh(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` chain starts drawn from the noise distribution, (n, *shape)."""
        shape = (n, *self.shape)
        like = self.samples
        if self.noise == "normal":
            return self.noise_scale * _randn(shape, generator, like)
        where = generator.device if generator is not None else like.device
        uniform = torch.rand(shape, generator=generator, device=where, dtype=like.dtype).to(like.device)
        return self.noise_scale * (2 * uniform - 1)

    def sample(self, n: int, generator: torch.Generator | None = None, reinit: float | None = None) -> Tensor:
        """``n`` chain starts (n, *shape): a fraction ``reinit`` (default: the buffer's) of fresh noise,
        on average, the rest stored samples chosen uniformly with replacement."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        reinit = self.reinit if reinit is None else reinit
        if not 0.0 <= reinit <= 1.0:
            raise ValueError(f"reinit must be in [0, 1], got {reinit}")
        where = generator.device if generator is not None else self.samples.device
        starts = self.fresh(n, generator)
        count = len(self)
        if count == 0:
            return starts
        use_fresh = torch.rand(n, generator=generator, device=where).to(self.samples.device) < reinit  # (n,)
        index = torch.randint(count, (n,), generator=generator, device=where).to(self.samples.device)
        stored = self.samples[index]  # (n, *shape)
        return torch.where(use_fresh.view(-1, *[1] * len(self.shape)), starts, stored)

    @torch.no_grad()
    def push(self, x: Tensor) -> None:
        """Store ``x`` (B, *shape), overwriting the oldest samples when full."""
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"expected samples of shape (B, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}")
        total = len(x)
        x = x.detach()[-self.capacity:].to(self.samples)  # more than the capacity: only the last ones survive
        first = int(self.position) + total - len(x)  # as if all had been written in turn
        slots = (first + torch.arange(len(x), device=self.samples.device)) % self.capacity
        self.samples[slots] = x
        self.position.fill_((int(self.position) + total) % self.capacity)
        self.count.fill_(min(self.capacity, int(self.count) + total))


@torch.no_grad()
def energy_grid(energy_fn: EnergyFn, limit: float = 1.5, size: int = 200) -> dict[str, Tensor]:
    """A 2-D energy on the grid [-limit, limit]^2 of size x size points.

    Returns dict(xs (size,), energy (size, size), density (size, size), log_z (scalar)): the
    energies at (x = xs[j], y = xs[i]) in row i, column j (for ``imshow`` with
    ``origin="lower"``), the normalised density exp(-E) / Z with Z approximated by the sum over the
    grid times the cell area (a Riemann sum: accurate when the grid resolves the density and
    holds almost all its mass), and log Z. See: book/07_diffusion/energy_models.ipynb.
    """
    if limit <= 0 or size < 2:
        raise ValueError(f"need limit > 0 and size >= 2, got {limit} and {size}")
    xs = torch.linspace(-limit, limit, size)
    yy, xx = torch.meshgrid(xs, xs, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)  # (size^2, 2): x varies fastest
    energy = energy_fn(points).double().reshape(size, size)
    cell = float((xs[1] - xs[0]) ** 2)
    log_z = torch.logsumexp(-energy.flatten(), dim=0) + math.log(cell)
    return {"xs": xs, "energy": energy, "density": (-energy - log_z).exp(), "log_z": log_z}
