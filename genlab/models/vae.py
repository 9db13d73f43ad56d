"""Variational autoencoders for 28x28 images: the classic MLP VAE and a small convolutional one.

The model (Kingma & Welling, 2014)::

    prior      p(z) = N(0, I)
    encoder    q(z | x) = N(mu(x), diag(exp(logvar(x))))
    decoder    p(x | z) = Bernoulli(sigmoid(logits(z)))          likelihood="bernoulli"
               p(x | z) = N(mean(z), exp(decoder_logvar) I)      likelihood="gaussian"

Contract (what ``genlab.losses.elbo`` and ``iwae_bound`` rely on)
    ``encode(x, labels=None) -> (mu, logvar)``, each (B, latent_dim);
    ``decode(z, labels=None) -> (B, 1, 28, 28)``: Bernoulli *logits*, or the Gaussian *mean*
    in [0, 1] (a sigmoid) with the learned scalar ``decoder_logvar`` parameter;
    ``forward(x, labels=None, generator=None) -> VAEOutput(decoded, mu, logvar, z)``;
    ``reconstruct`` and ``sample`` return images in [0, 1].

Conditional VAEs (``num_classes=K``, Sohn et al., 2015) concatenate the one-hot label to the
encoder's input (features) and to ``z``; they require labels, unconditional ones refuse them.

See: book/03_vae/mnist_vae.ipynb, book/03_vae/beta_vae.ipynb,
book/05_applications/style_transfer.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.models.gan import (
    IMAGE_SHAPE,
    _check_num_classes,
    _check_widths,
    append_one_hot,
    prior_draw,
    standard_normal,
)

__all__ = ["LIKELIHOODS", "ConvVAE", "MLPVAE", "VAEBase", "VAEOutput", "reparameterise"]

LIKELIHOODS = ("bernoulli", "gaussian")
# MNIST's pixel variance is about 0.095 (std 0.3081): start sigma^2 there, so the first steps
# are dominated neither by a huge Gaussian variance (-> posterior collapse) nor by a tiny one.
DEFAULT_DECODER_LOGVAR = math.log(0.1)


class VAEOutput(NamedTuple):
    """What :meth:`VAEBase.forward` returns. See: book/03_vae/mnist_vae.ipynb."""

    decoded: Tensor  # (B, 1, 28, 28): Bernoulli logits, or the Gaussian mean in [0, 1]
    mu: Tensor  # (B, latent_dim)
    logvar: Tensor  # (B, latent_dim)
    z: Tensor  # (B, latent_dim), the reparameterised sample


def reparameterise(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw ``z ~ N(mu, exp(logvar))`` as a differentiable function of (mu, logvar).

    ``z = mu + exp(0.5 * logvar) * eps`` with ``eps ~ N(0, I)`` from ``generator``, so
    ``dz/dmu = 1`` and ``dz/dlogvar = 0.5 * exp(0.5 * logvar) * eps``: the randomness is moved
    out of the path of the gradient. See: book/03_vae/reparameterisation.ipynb.
    """
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    eps = standard_normal(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
    return mu + torch.exp(0.5 * logvar) * eps


class VAEBase(nn.Module):
    """Shared VAE machinery: attributes, reparameterised ``forward``, ``reconstruct``, ``sample``.

    Subclasses implement ``encode(x, labels)`` and ``decode(z, labels)``.
    See: book/03_vae/mnist_vae.ipynb.
    """

    def __init__(self, latent_dim: int, likelihood: str, num_classes: int | None,
                 decoder_logvar_init: float = DEFAULT_DECODER_LOGVAR) -> None:
        super().__init__()
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {LIKELIHOODS}")
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.num_classes = _check_num_classes(num_classes)
        if likelihood == "gaussian":  # log sigma^2 of p(x|z), one scalar learned with the rest
            self.decoder_logvar = nn.Parameter(torch.tensor(float(decoder_logvar_init)))
        else:
            self.register_parameter("decoder_logvar", None)

    # -- subclasses -----------------------------------------------------------------------
    def encode(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------
    def _with_label(self, inputs: Tensor, labels: Tensor | None) -> Tensor:
        return append_one_hot(inputs, labels, self.num_classes, type(self).__name__)

    def _check_latent(self, z: Tensor) -> None:
        if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"{type(self).__name__}: expected z of shape (B, {self.latent_dim}), "
                             f"got {tuple(getattr(z, 'shape', ()))}")

    def _decoder_output(self, out: Tensor) -> Tensor:
        """Raw decoder output -> logits (bernoulli) or the mean in [0, 1] (gaussian)."""
        return torch.sigmoid(out) if self.likelihood == "gaussian" else out

    def to_images(self, decoded: Tensor) -> Tensor:
        """Decoder output -> images in [0, 1]: ``sigmoid(logits)`` (Bernoulli mean) or the Gaussian mean."""
        return torch.sigmoid(decoded) if self.likelihood == "bernoulli" else decoded

    def forward(self, x: Tensor, labels: Tensor | None = None,
                generator: torch.Generator | None = None) -> VAEOutput:
        """Encode, draw ``z`` by :func:`reparameterise` (from ``generator``), decode."""
        mu, logvar = self.encode(x, labels)  # (B, latent_dim) each
        z = reparameterise(mu, logvar, generator)  # (B, latent_dim)
        return VAEOutput(self.decode(z, labels), mu, logvar, z)

    def reconstruct(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Decode the posterior mean ``mu(x)`` (no sampling): images in [0, 1], (B, 1, 28, 28).

        Gradients flow; wrap display code in ``torch.no_grad()``. See: book/03_vae/mnist_vae.ipynb.
        """
        mu, _ = self.encode(x, labels)
        return self.to_images(self.decode(mu, labels))

    def sample(self, n: int, labels: Tensor | int | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """Decode ``n`` draws ``z ~ N(0, I)``: the decoder's *mean* images in [0, 1], (n, 1, 28, 28).

        Means, not pixel samples: ``sigmoid(logits)`` for Bernoulli, the mean for Gaussian.
        ``labels`` (conditional models): one int for all samples, or n of them (list or tensor).
        See: book/03_vae/mnist_vae.ipynb.
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        z, labels = prior_draw(self, n, labels, generator)
        return self.to_images(self.decode(z, labels))


def _as_image_batch(x: Tensor, owner: str, accept_flat: bool = True) -> Tensor:
    """Accept (B, 1, 28, 28) or (B, 784); return (B, 1, 28, 28) or raise naming the shape."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner}: expected a tensor of images, got {type(x).__name__}")
    if x.ndim == 4 and tuple(x.shape[1:]) == IMAGE_SHAPE:
        return x
    if accept_flat and x.ndim == 2 and x.shape[1] == 28 * 28:
        return x.view(-1, *IMAGE_SHAPE)
    raise ValueError(f"{owner}: expected images of shape (B, 1, 28, 28) or (B, 784), got {tuple(x.shape)}")


class MLPVAE(VAEBase):
    """The classic MLP VAE (the PyTorch example): 784 -> 400 -> (mu, logvar) of 20; 20 -> 400 -> 784.

    ReLU hidden layers; accepts images (B, 1, 28, 28) or flat (B, 784).
    See: book/03_vae/mnist_vae.ipynb.
    """

    def __init__(self, input_dim: int = 784, hidden: int = 400, latent_dim: int = 20,
                 likelihood: str = "bernoulli", num_classes: int | None = None,
                 decoder_logvar_init: float = DEFAULT_DECODER_LOGVAR) -> None:
        if input_dim != 28 * 28:
            raise ValueError(f"MLPVAE models 28x28 images: input_dim must be 784, got {input_dim}")
        if hidden < 1:
            raise ValueError(f"hidden must be positive, got {hidden}")
        super().__init__(latent_dim, likelihood, num_classes, decoder_logvar_init)
        extra = num_classes or 0
        self.enc_hidden = nn.Linear(input_dim + extra, hidden)
        self.enc_mu = nn.Linear(hidden, latent_dim)
        self.enc_logvar = nn.Linear(hidden, latent_dim)
        self.dec_hidden = nn.Linear(latent_dim + extra, hidden)
        self.dec_out = nn.Linear(hidden, input_dim)

    def encode(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = _as_image_batch(x, type(self).__name__).flatten(1)  # (B, 784)
        h = F.relu(self.enc_hidden(self._with_label(x, labels)))  # (B, 400)
        return self.enc_mu(h), self.enc_logvar(h)  # (B, 20) each

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        self._check_latent(z)
        h = F.relu(self.dec_hidden(self._with_label(z, labels)))  # (B, 400)
        return self._decoder_output(self.dec_out(h).view(-1, *IMAGE_SHAPE))  # (B, 1, 28, 28)


class ConvVAE(VAEBase):
    """Convolutional VAE: Conv 28 -> 14 -> 7, linear heads; the decoder mirrors with ConvTranspose2d.

    Encoder ``(B,1,28,28) -> (B,32,14,14) -> (B,64,7,7) -> (mu, logvar)``; decoder
    ``z -> (B,64,7,7) -> (B,32,14,14) -> (B,1,28,28)``. Kernel 4, stride 2, padding 1 halves
    (Conv) or doubles (ConvTranspose) the side. Accepts (B, 1, 28, 28) or (B, 784).
    See: book/03_vae/beta_vae.ipynb.
    """

    def __init__(self, latent_dim: int = 16, channels: Sequence[int] = (32, 64),
                 likelihood: str = "bernoulli", num_classes: int | None = None,
                 decoder_logvar_init: float = DEFAULT_DECODER_LOGVAR) -> None:
        super().__init__(latent_dim, likelihood, num_classes, decoder_logvar_init)
        self.channels = c1, c2 = _check_widths(channels, "channels", length=2)
        features = c2 * 7 * 7
        extra = num_classes or 0
        self.down1 = nn.Conv2d(1, c1, kernel_size=4, stride=2, padding=1)  # 28 -> 14
        self.down2 = nn.Conv2d(c1, c2, kernel_size=4, stride=2, padding=1)  # 14 -> 7
        self.enc_mu = nn.Linear(features + extra, latent_dim)
        self.enc_logvar = nn.Linear(features + extra, latent_dim)
        self.dec_project = nn.Linear(latent_dim + extra, features)
        self.up1 = nn.ConvTranspose2d(c2, c1, kernel_size=4, stride=2, padding=1)  # 7 -> 14
        self.up2 = nn.ConvTranspose2d(c1, 1, kernel_size=4, stride=2, padding=1)  # 14 -> 28

    def encode(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = _as_image_batch(x, type(self).__name__)  # (B, 1, 28, 28)
        h = F.relu(self.down1(x))  # (B, 32, 14, 14)
        h = F.relu(self.down2(h)).flatten(1)  # (B, 64*7*7)
        h = self._with_label(h, labels)  # (B, 3136 [+ K])
        return self.enc_mu(h), self.enc_logvar(h)  # (B, latent_dim) each

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        self._check_latent(z)
        h = F.relu(self.dec_project(self._with_label(z, labels)))  # (B, 3136)
        h = h.view(-1, self.channels[1], 7, 7)  # (B, 64, 7, 7)
        h = F.relu(self.up1(h))  # (B, 32, 14, 14)
        return self._decoder_output(self.up2(h))  # (B, 1, 28, 28)
