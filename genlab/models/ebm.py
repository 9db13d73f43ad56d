"""Energy networks: a scalar E(x) for 2-D points and for 28x28 images.

An energy network is an ordinary classifier-shaped network with one output and no constraint
at all: any E(x) defines p(x) proportional to exp(-E(x)) as long as exp(-E) is integrable
(on images in [-1, 1], a bounded box, it always is). Two choices matter in practice:

* smooth activations (Swish/SiLU, x * sigmoid(x)): Langevin dynamics follows grad_x E, and a
  ReLU network's input gradient is piecewise constant, a rough field to follow;
* optionally spectral normalisation of every layer (Miyato et al., 2018), which bounds how fast
  E can change with x; Du and Mordatch (2019) use it to keep training stable.

See: book/07_diffusion/energy_models.ipynb.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["ConvEnergy", "MLPEnergy"]


def _maybe_sn(layer: nn.Module, spectral_norm: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer


class MLPEnergy(nn.Module):
    """E(x) for vectors: x (B, data_dim) -> energies (B,). An MLP with SiLU activations.

    ``input_shape`` = (data_dim,) tells a task the shape of its samples. ``num_frequencies`` F > 0
    feeds sin / cos(2^j pi x), j < F, beside x (as ``MLPDenoiser`` does): an energy with wells
    0.01 wide is then easy to represent.
    See: book/07_diffusion/energy_models.ipynb.
    """

    def __init__(self, data_dim: int = 2, hidden_dim: int = 128, num_layers: int = 3,
                 spectral_norm: bool = False, num_frequencies: int = 0) -> None:
        super().__init__()
        if data_dim < 1 or hidden_dim < 1 or num_layers < 1 or num_frequencies < 0:
            raise ValueError(f"need data_dim, hidden_dim, num_layers >= 1 and num_frequencies >= 0; got {data_dim}, "
                             f"{hidden_dim}, {num_layers}, {num_frequencies}")
        self.input_shape = (data_dim,)
        self.num_frequencies = num_frequencies
        layers: list[nn.Module] = []
        width = data_dim * (1 + 2 * num_frequencies)
        for _ in range(num_layers):
            layers += [_maybe_sn(nn.Linear(width, hidden_dim), spectral_norm), nn.SiLU()]
            width = hidden_dim
        layers.append(_maybe_sn(nn.Linear(width, 1), spectral_norm))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.input_shape[0]:
            raise ValueError(f"MLPEnergy expects x of shape (B, {self.input_shape[0]}), got {tuple(x.shape)}")
        if self.num_frequencies:
            scales = math.pi * 2.0 ** torch.arange(self.num_frequencies, device=x.device, dtype=x.dtype)  # (F,)
            angles = (x[:, :, None] * scales).flatten(1)  # (B, data_dim * F)
            x = torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=1)  # (B, data_dim (1 + 2F))
        return self.net(x).squeeze(1)  # (B,)


class ConvEnergy(nn.Module):
    """E(x) for images: x (B, 1, 28, 28) in [-1, 1] -> energies (B,).

    Four strided 3x3 convolutions with SiLU (28 -> 14 -> 7 -> 4 -> 2), then a linear layer on the
    flattened 2x2 maps; ``channels`` sets the widths (default (16, 32, 64, 64): about 70k
    parameters, the scale of the UvA tutorial's CNN). Small on purpose: every training step of an
    EBM runs K Langevin steps, each a forward and a backward pass.
    See: book/07_diffusion/energy_models.ipynb.
    """

    def __init__(self, channels: tuple[int, int, int, int] = (16, 32, 64, 64), in_channels: int = 1,
                 image_size: int = 28, spectral_norm: bool = False) -> None:
        super().__init__()
        if len(channels) != 4 or min(channels) < 1:
            raise ValueError(f"channels must be four positive widths, got {channels}")
        if image_size != 28:
            raise ValueError(f"ConvEnergy is built for 28x28 images, got image_size={image_size}")
        self.input_shape = (in_channels, image_size, image_size)
        c1, c2, c3, c4 = channels
        self.features = nn.Sequential(
            _maybe_sn(nn.Conv2d(in_channels, c1, 3, stride=2, padding=1), spectral_norm), nn.SiLU(),  # (B, c1, 14, 14)
            _maybe_sn(nn.Conv2d(c1, c2, 3, stride=2, padding=1), spectral_norm), nn.SiLU(),  # (B, c2, 7, 7)
            _maybe_sn(nn.Conv2d(c2, c3, 3, stride=2, padding=1), spectral_norm), nn.SiLU(),  # (B, c3, 4, 4)
            _maybe_sn(nn.Conv2d(c3, c4, 3, stride=2, padding=1), spectral_norm), nn.SiLU(),  # (B, c4, 2, 2)
        )
        self.head = nn.Sequential(
            _maybe_sn(nn.Linear(c4 * 4, c4), spectral_norm), nn.SiLU(),
            _maybe_sn(nn.Linear(c4, 1), spectral_norm),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"ConvEnergy expects x of shape (B, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")
        h = self.features(x)  # (B, c4, 2, 2)
        return self.head(h.flatten(1)).squeeze(1)  # (B,)
