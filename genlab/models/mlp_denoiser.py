"""A small time-conditioned MLP for diffusion and flow matching on 2-D data.

The network maps (x, t) to a vector of the same size as x: the predicted noise eps (DDPM) or the
velocity v (flow matching). The time enters through a sinusoidal embedding (Vaswani et al., 2017;
Ho et al., 2020) followed by a small MLP, added to every residual block. An optional label
embedding with one extra "null" class (index ``num_classes``) serves classifier-free guidance.

See: book/07_diffusion/diffusion_2d.ipynb.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["MLPDenoiser", "sinusoidal_embedding"]


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal features of a float time t (B,): [sin(t w_j), cos(t w_j)], w_j = max_period^(-j / (dim/2)).

    Returns (B, dim). Times of order 1..1000 (DDPM steps, or 1000 s for flow matching) are expected.
    See: book/07_diffusion/diffusion_2d.ipynb.
    """
    if dim % 2 != 0 or dim < 2:
        raise ValueError(f"the embedding dimension must be even and >= 2, got {dim}")
    if t.dim() != 1:
        raise ValueError(f"expected times of shape (B,), got {tuple(t.shape)}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)  # (B, dim)


class _Block(nn.Module):
    """h + MLP(h + time): a residual block that receives the time (and label) embedding."""

    def __init__(self, hidden_dim: int) -> None:
        super().__init__()
        self.condition = nn.Linear(hidden_dim, hidden_dim)
        self.net = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, hidden_dim), nn.SiLU(),
                                 nn.Linear(hidden_dim, hidden_dim))

    def forward(self, h: Tensor, embedding: Tensor) -> Tensor:
        return h + self.net(h + self.condition(embedding))  # (B, hidden_dim)


class MLPDenoiser(nn.Module):
    """eps_theta(x, t) or v_theta(x, t) for vectors: x (B, data_dim), t float (B,) -> (B, data_dim).

    ``model(x, t, labels=None)`` follows the Part 7 convention: t is the DDPM step as a float, or
    1000 * s for flow matching; labels (B,) in 0..num_classes, where num_classes is the null label.
    See: book/07_diffusion/diffusion_2d.ipynb.
    """

    def __init__(self, data_dim: int = 2, hidden_dim: int = 128, num_blocks: int = 3, time_dim: int = 64,
                 num_classes: int | None = None, num_frequencies: int = 0) -> None:
        super().__init__()
        if min(data_dim, hidden_dim, num_blocks, time_dim) < 1 or num_frequencies < 0:
            raise ValueError("data_dim, hidden_dim, num_blocks and time_dim must be positive, num_frequencies >= 0")
        self.data_dim, self.time_dim, self.num_classes = data_dim, time_dim, num_classes
        self.num_frequencies = num_frequencies
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))
        self.label_embedding = nn.Embedding(num_classes + 1, hidden_dim) if num_classes else None
        self.input = nn.Linear(data_dim * (1 + 2 * num_frequencies), hidden_dim)
        self.blocks = nn.ModuleList(_Block(hidden_dim) for _ in range(num_blocks))
        self.output = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, data_dim))

    def features(self, x: Tensor) -> Tensor:
        """x and, with ``num_frequencies = F``, sin / cos(2^j pi x) for j < F: (B, data_dim (1 + 2F)).

        Sinusoids of x make sharp, local functions of the position (a score that turns around
        within 0.01 of a mode) easy for an MLP to represent (Tancik et al., 2020).
        """
        if not self.num_frequencies:
            return x
        scales = math.pi * 2.0 ** torch.arange(self.num_frequencies, device=x.device, dtype=x.dtype)  # (F,)
        angles = (x[:, :, None] * scales).flatten(1)  # (B, data_dim * F)
        return torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=1)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.data_dim:
            raise ValueError(f"expected x of shape (B, {self.data_dim}), got {tuple(x.shape)}")
        t = t.reshape(-1).expand(len(x)) if t.numel() == 1 else t
        embedding = self.time_mlp(sinusoidal_embedding(t, self.time_dim))  # (B, hidden_dim)
        if labels is not None:
            if self.label_embedding is None:
                raise ValueError("this MLPDenoiser has no labels: build it with num_classes=K")
            embedding = embedding + self.label_embedding(labels)
        elif self.label_embedding is not None:  # unconditional call of a conditional model: the null label
            null = torch.full((len(x),), self.num_classes, dtype=torch.long, device=x.device)
            embedding = embedding + self.label_embedding(null)
        h = self.input(self.features(x))  # (B, hidden_dim)
        for block in self.blocks:
            h = block(h, embedding)
        return self.output(h)  # (B, data_dim)
