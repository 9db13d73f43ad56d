"""Normalizing flows built from affine coupling layers (RealNVP; Dinh, Sohl-Dickstein and Bengio, 2017).

Every layer is invertible with a cheap log-determinant and exposes the same two methods:

* ``forward(x) -> (z, logdet)``: data towards the latent, with log |det dz/dx| per example (B,);
* ``inverse(z) -> x``: latent back to data (sampling).

A flow is a stack of layers; its log-determinant is the sum of theirs. ``RealNVP2D`` is the
flow for 2-D points, ``MultiScaleFlow`` the small multi-scale image flow for MNIST (logit,
checkerboard couplings, squeeze to 4x14x14, channel couplings, half the channels factored out,
more couplings). Both have ``log_prob(x)`` and ``sample(n, temperature, generator)``.

See: book/07_diffusion/normalizing_flows.ipynb.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.flows import logit_transform, logit_transform_inverse, standard_normal_log_prob, temperature_noise

__all__ = ["AffineCoupling", "LogitLayer", "MultiScaleFlow", "RealNVP2D", "Squeeze", "checkerboard_mask",
           "channel_mask", "conv_conditioner", "mlp_conditioner"]


def checkerboard_mask(height: int, width: int, parity: int = 0) -> Tensor:
    """(1, 1, H, W) mask, 1 where (i + j) % 2 == parity: the pixels a checkerboard coupling keeps."""
    i, j = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return ((i + j) % 2 == parity).float()[None, None]


def channel_mask(channels: int, first_half: bool = True) -> Tensor:
    """(1, C, 1, 1) mask, 1 on the first (or second) half of the channels."""
    mask = torch.zeros(1, channels, 1, 1)
    half = channels // 2
    if first_half:
        mask[:, :half] = 1
    else:
        mask[:, half:] = 1
    return mask


def mlp_conditioner(dim: int, hidden: int = 128, depth: int = 2) -> nn.Module:
    """An MLP (B, D) -> (B, 2D): the shift and log-scale of a 2-D coupling. Last layer zero: starts at identity."""
    layers: list[nn.Module] = [nn.Linear(dim, hidden), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), nn.ReLU()]
    last = nn.Linear(hidden, 2 * dim)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


def conv_conditioner(channels: int, hidden: int = 32) -> nn.Module:
    """A small CNN (B, C, H, W) -> (B, 2C, H, W): 3x3 conv, ReLU, 1x1 conv, ReLU, 3x3 conv (zero-initialised)."""
    last = nn.Conv2d(hidden, 2 * channels, 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(hidden, hidden, 1), nn.ReLU(), last)


class AffineCoupling(nn.Module):
    """Affine coupling with a fixed binary ``mask`` (1: kept, 0: transformed):

        z = m * x + (1 - m) * (x * exp(s(m * x)) + t(m * x)),
        log |det dz/dx| = sum over the transformed entries of s.

    The kept half passes unchanged and alone decides s and t, so the Jacobian is triangular (after
    a permutation) with diagonal 1 or exp(s): the determinant is a product, and the network
    ``conditioner`` (any shape-preserving net returning 2C channels or 2D features) need not be
    invertible. ``s = scale * tanh(raw)`` bounds the log-scale early in training.
    Shapes: x (B, D) with mask (1, D), or x (B, C, H, W) with mask broadcastable to (1, C, H, W).
    See: book/07_diffusion/normalizing_flows.ipynb.
    """

    def __init__(self, mask: Tensor, conditioner: nn.Module) -> None:
        super().__init__()
        if not torch.all((mask == 0) | (mask == 1)):
            raise ValueError("the coupling mask must hold only 0s and 1s")
        self.register_buffer("mask", mask.float())
        self.conditioner = conditioner
        channels = mask.shape[1]
        self.scale = nn.Parameter(torch.ones((1, channels) + (1,) * (mask.dim() - 2)))  # (1, C[, 1, 1])

    def _shift_log_scale(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        raw_s, t = self.conditioner(kept).chunk(2, dim=1)  # each (B, C, ...) like x
        s = self.scale * torch.tanh(raw_s)
        free = 1 - self.mask
        return s * free, t * free  # zero on the kept entries

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self._shift_log_scale(x * self.mask)
        z = x * torch.exp(s) + t  # kept entries: s = t = 0, unchanged
        return z, s.reshape(len(x), -1).sum(dim=1)  # (B, ...), (B,)

    def inverse(self, z: Tensor) -> Tensor:
        s, t = self._shift_log_scale(z * self.mask)  # the kept half is the same in x and z
        return (z - t) * torch.exp(-s)


class Squeeze(nn.Module):
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 block of pixels becomes 4 channels. A permutation: log-det 0."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"Squeeze needs even height and width, got {tuple(x.shape[-2:])}")
        return F.pixel_unshuffle(x, 2), x.new_zeros(len(x))

    def inverse(self, z: Tensor) -> Tensor:
        return F.pixel_shuffle(z, 2)


class LogitLayer(nn.Module):
    """y in [0, 1] -> logit(alpha + (1 - 2 alpha) y), with its log-det (``genlab.flows.logit_transform``)."""

    def __init__(self, alpha: float = 0.05) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return logit_transform(y, self.alpha)

    def inverse(self, x: Tensor) -> Tensor:
        return logit_transform_inverse(x, self.alpha)


class _FlowBase(nn.Module):
    """log_prob and sample for a flow with ``forward``/``inverse`` and ``event_shape``."""

    event_shape: tuple[int, ...]  # the shape of one x
    latent_shape: tuple[int, ...]  # the shape of one z

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) = log N(f(x); 0, I) + log |det df/dx|: (B, ...) -> (B,)."""
        z, logdet = self(x)
        return standard_normal_log_prob(z) + logdet

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples ``f^{-1}(z)``, z ~ N(0, T^2 I) (``genlab.flows.temperature_noise``)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        device = next(self.parameters()).device
        return self.inverse(temperature_noise((n,) + tuple(self.latent_shape), temperature, generator, device))


class RealNVP2D(_FlowBase):
    """RealNVP for 2-D points: ``num_layers`` affine couplings with alternating masks (1, 0) and (0, 1),
    each with an MLP conditioner, after a fixed scaling ``x / data_scale`` (log-det ``-2 log data_scale``).

    x (B, 2) -> z (B, 2). See: book/07_diffusion/normalizing_flows.ipynb.
    """

    def __init__(self, num_layers: int = 8, hidden: int = 128, depth: int = 2, data_scale: float = 1.0) -> None:
        super().__init__()
        if num_layers < 2 or data_scale <= 0:
            raise ValueError(f"need num_layers >= 2 (two masks) and data_scale > 0, got {num_layers}, {data_scale}")
        self.event_shape = self.latent_shape = (2,)
        self.data_scale = data_scale
        masks = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
        self.layers = nn.ModuleList(AffineCoupling(masks[i % 2], mlp_conditioner(2, hidden, depth))
                                    for i in range(num_layers))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() != 2 or x.shape[1] != 2:
            raise ValueError(f"RealNVP2D expects points of shape (B, 2), got {tuple(x.shape)}")
        z = x / self.data_scale
        logdet = x.new_full((len(x),), -2 * math.log(self.data_scale))
        for layer in self.layers:
            z, ld = layer(z)
            logdet = logdet + ld
        return z, logdet

    def inverse(self, z: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z * self.data_scale


class MultiScaleFlow(_FlowBase):
    """A small multi-scale coupling flow for 1x28x28 images y in [0, 1] (dequantized pixels):

        logit -> checkerboard couplings on 1x28x28 -> squeeze to 4x14x14 -> channel couplings
        -> factor out 2 of the 4 channels (straight to the N(0, I) base) -> couplings on 2x14x14.

    ``z`` has the shape (B, 4, 14, 14): the 2 factored-out channels, then the 2 processed further.
    Factoring out halves the work of the later layers (RealNVP's multi-scale architecture).
    See: book/07_diffusion/normalizing_flows.ipynb.
    """

    def __init__(self, hidden: int = 32, num_checker: int = 3, num_channel: int = 3, num_final: int = 4,
                 image_size: int = 28, alpha: float = 0.05) -> None:
        super().__init__()
        if image_size % 2 or min(num_checker, num_channel, num_final) < 1:
            raise ValueError(f"need an even image_size and at least one coupling per stage, got {image_size}, "
                             f"{num_checker}, {num_channel}, {num_final}")
        size, half = image_size, image_size // 2
        self.image_size, self.in_channels = image_size, 1
        self.event_shape = (1, image_size, image_size)
        self.latent_shape = (4, half, half)
        self.logit = LogitLayer(alpha)
        self.stage1 = nn.ModuleList(AffineCoupling(checkerboard_mask(size, size, i % 2), conv_conditioner(1, hidden))
                                    for i in range(num_checker))  # on (B, 1, 28, 28)
        self.squeeze = Squeeze()
        self.stage2 = nn.ModuleList(AffineCoupling(channel_mask(4, i % 2 == 0), conv_conditioner(4, hidden))
                                    for i in range(num_channel))  # on (B, 4, 14, 14)
        final = []
        for i in range(num_final):  # on (B, 2, 14, 14): checkerboard and channel masks in turn
            mask = checkerboard_mask(half, half, (i // 2) % 2) if i % 2 == 0 else channel_mask(2, (i // 2) % 2 == 0)
            final.append(AffineCoupling(mask, conv_conditioner(2, hidden)))
        self.stage3 = nn.ModuleList(final)

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        if y.shape[1:] != torch.Size(self.event_shape):
            raise ValueError(f"MultiScaleFlow expects images (B, {', '.join(map(str, self.event_shape))}), "
                             f"got {tuple(y.shape)}")
        h, logdet = self.logit(y)  # (B, 1, 28, 28)
        for layer in self.stage1:
            h, ld = layer(h)
            logdet = logdet + ld
        h, _ = self.squeeze(h)  # (B, 4, 14, 14)
        for layer in self.stage2:
            h, ld = layer(h)
            logdet = logdet + ld
        factored, h = h[:, :2], h[:, 2:]  # (B, 2, 14, 14) each: the first half leaves the flow here
        for layer in self.stage3:
            h, ld = layer(h)
            logdet = logdet + ld
        return torch.cat([factored, h], dim=1), logdet  # (B, 4, 14, 14), (B,)

    def inverse(self, z: Tensor) -> Tensor:
        factored, h = z[:, :2], z[:, 2:]
        for layer in reversed(self.stage3):
            h = layer.inverse(h)
        h = torch.cat([factored, h], dim=1)  # (B, 4, 14, 14)
        for layer in reversed(self.stage2):
            h = layer.inverse(h)
        h = self.squeeze.inverse(h)  # (B, 1, 28, 28)
        for layer in reversed(self.stage1):
            h = layer.inverse(h)
        return self.logit.inverse(h)
