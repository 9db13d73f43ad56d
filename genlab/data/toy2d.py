"""2-D toy distributions for the GAN chapters, with their modes exposed.

The ring and the grid follow the PacGAN protocol (Lin et al., 2018): a sample
counts as *high quality* when it lies within 3 standard deviations of its
nearest mode, and a mode is *covered* when enough high-quality samples land on it
(see :func:`genlab.metrics.mode_coverage`).

See: book/02_gan_math/mode_collapse.ipynb.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ToyDistribution", "grid25", "ring8", "spiral", "toy_distribution", "two_moons"]


@dataclass(frozen=True)
class ToyDistribution:
    """A 2-D distribution you can sample from.

    modes: (K, 2) mode centres for mixtures (``None`` for manifold-shaped data);
    sigma: the standard deviation of each mixture component (or the noise level).
    """

    name: str
    modes: Tensor | None
    sigma: float
    kind: str  # "mixture" | "moons" | "spiral"

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` points, shape (n, 2)."""
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        if self.kind == "mixture":
            index = torch.randint(len(self.modes), (n,), generator=generator)
            return self.modes[index] + self.sigma * torch.randn(n, 2, generator=generator)
        if self.kind == "moons":
            t = math.pi * torch.rand(n, generator=generator)
            upper = torch.rand(n, generator=generator) < 0.5
            x = torch.where(upper, torch.cos(t), 1.0 - torch.cos(t))
            y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
            return torch.stack([x, y], dim=1) + self.sigma * torch.randn(n, 2, generator=generator)
        if self.kind == "spiral":
            t = 3 * math.pi * torch.sqrt(torch.rand(n, generator=generator))  # uniform along area
            r = t / (3 * math.pi) * 2.0
            points = torch.stack([r * torch.cos(t), r * torch.sin(t)], dim=1)
            return points + self.sigma * torch.randn(n, 2, generator=generator)
        raise ValueError(f"unknown kind {self.kind!r}")


def ring8(radius: float = 1.0, sigma: float = 0.01) -> ToyDistribution:
    """Eight Gaussians evenly spaced on a circle (PacGAN 2-D ring: radius 1, sigma 0.01)."""
    angles = torch.arange(8) * (2 * math.pi / 8)
    modes = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return ToyDistribution("ring8", modes, sigma, "mixture")


def grid25(spacing: float = 2.0, sigma: float = 0.05) -> ToyDistribution:
    """25 Gaussians on the grid {-4,-2,0,2,4}^2 (PacGAN 2-D grid: sigma 0.05)."""
    axis = spacing * torch.arange(-2, 3, dtype=torch.float32)
    modes = torch.cartesian_prod(axis, axis)
    return ToyDistribution("grid25", modes, sigma, "mixture")


def two_moons(noise: float = 0.05) -> ToyDistribution:
    """Two interleaving half circles (as scikit-learn's ``make_moons``)."""
    return ToyDistribution("two_moons", None, noise, "moons")


def spiral(noise: float = 0.05) -> ToyDistribution:
    """A one-armed spiral of radius 2 with Gaussian noise."""
    return ToyDistribution("spiral", None, noise, "spiral")


_TOYS = {"ring8": ring8, "grid25": grid25, "two_moons": two_moons, "spiral": spiral}


def toy_distribution(name: str) -> ToyDistribution:
    """Look a toy distribution up by name: ``ring8``, ``grid25``, ``two_moons``, ``spiral``."""
    if name not in _TOYS:
        raise ValueError(f"unknown toy distribution {name!r}; known: {sorted(_TOYS)}")
    return _TOYS[name]()
