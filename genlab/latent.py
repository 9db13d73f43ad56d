"""Latent diffusion at CPU scale: encode a dataset once, model its latents, decode samples.

Latent diffusion (Rombach et al., 2022; the idea behind Stable Diffusion) splits image
generation in two: an autoencoder compresses images x to latents z = E(x) and decodes them back,
x ~ D(z); a diffusion or flow-matching model then learns the distribution of the latents, which
are far fewer numbers than pixels. Sampling draws a latent from that model and decodes it.

This module holds the small reusable pieces: :func:`encode_dataset` (posterior means of a VAE,
or the codes of any ``encode``), :class:`LatentScaler` (per-dimension standardisation, so the
latent model sees unit-scale data like the N(0, I) noise it starts from), and
:func:`sample_latent_flow` (integrate a latent velocity field, un-scale, decode).

See: book/07_diffusion/latent_diffusion.ipynb.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["LatentScaler", "encode_dataset", "sample_latent_flow"]


@torch.no_grad()
def encode_dataset(autoencoder: nn.Module, images: Tensor, batch_size: int = 500) -> Tensor:
    """Latent codes of ``images`` (N, 1, 28, 28) in [0, 1]: (N, latent_dim), computed once.

    ``autoencoder.encode(x)`` may return a tensor (a deterministic autoencoder) or a tuple whose
    first entry is the code (a VAE's ``(mu, logvar)``: the posterior mean mu is used, no sampling).
    Runs in eval mode, without gradients, in batches of ``batch_size``.
    See: book/07_diffusion/latent_diffusion.ipynb.
    """
    if not hasattr(autoencoder, "encode"):
        raise TypeError(f"{type(autoencoder).__name__} has no encode(x) method: pass an autoencoder or VAE")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if images.numel() and (float(images.min()) < 0 or float(images.max()) > 1):
        raise ValueError("images must lie in [0, 1] (genlab.data's ImageData.images); convert with "
                         "genlab.data.to_unit_range first")
    was_training = autoencoder.training
    autoencoder.eval()
    try:
        codes = []
        for start in range(0, len(images), batch_size):
            out = autoencoder.encode(images[start:start + batch_size])
            codes.append(out[0] if isinstance(out, tuple) else out)  # (b, latent_dim)
    finally:
        autoencoder.train(was_training)
    return torch.cat(codes)  # (N, latent_dim)


@dataclass
class LatentScaler:
    """z -> (z - mean) / std per latent dimension, and back. Fit on the training latents.

    Stable Diffusion rescales its latents by one scalar (0.18215) for the same purpose: the
    latent model's noise is N(0, I), so data of unit scale keeps the noise and the signal
    comparable at every time. See: book/07_diffusion/latent_diffusion.ipynb.
    """

    mean: Tensor  # (latent_dim,)
    std: Tensor  # (latent_dim,)

    @classmethod
    def fit(cls, latents: Tensor, eps: float = 1e-6) -> LatentScaler:
        """Per-dimension mean and standard deviation of ``latents`` (N, latent_dim), N >= 2."""
        if latents.dim() != 2 or len(latents) < 2:
            raise ValueError(f"need latents of shape (N >= 2, latent_dim), got {tuple(latents.shape)}")
        return cls(latents.mean(0), latents.std(0).clamp_min(eps))

    def transform(self, latents: Tensor) -> Tensor:
        """Standardise: (N, latent_dim) -> (N, latent_dim)."""
        self._check(latents)
        return (latents - self.mean) / self.std

    def inverse(self, scaled: Tensor) -> Tensor:
        """Undo :meth:`transform`: (N, latent_dim) -> (N, latent_dim)."""
        self._check(scaled)
        return scaled * self.std + self.mean

    def _check(self, z: Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != len(self.mean):
            raise ValueError(f"expected latents of shape (N, {len(self.mean)}), got {tuple(z.shape)}")


@torch.no_grad()
def sample_latent_flow(velocity_fn: Callable[[Tensor, Tensor], Tensor], decode: Callable[[Tensor], Tensor],
                       scaler: LatentScaler, n: int, steps: int = 20, sampler: str = "euler",
                       generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Draw ``n`` latents by integrating ``velocity_fn(z, s)`` (s in [0, 1], the Part 7 convention)
    from N(0, I) at s = 0 to s = 1, un-scale them with ``scaler`` and decode them.

    ``sampler``: ``"euler"`` (``steps`` evaluations) or ``"heun"`` (2 * steps - 1 evaluations),
    as in :mod:`genlab.flow_matching`. Returns ``(images, latents)``: ``decode`` of the
    un-scaled latents, (n, latent_dim). See: book/07_diffusion/latent_diffusion.ipynb.
    """
    from genlab.flow_matching import euler_sample, heun_sample

    if sampler not in ("euler", "heun"):
        raise ValueError(f"unknown sampler {sampler!r}; expected 'euler' or 'heun'")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    integrate = euler_sample if sampler == "euler" else heun_sample
    scaled = integrate(velocity_fn, (n, len(scaler.mean)), num_steps=steps, generator=generator)  # (n, d)
    latents = scaler.inverse(scaled)  # (n, latent_dim)
    return decode(latents), latents
