"""Normalizing flows: the change-of-variables formula and the pieces every flow needs.

A normalizing flow is an invertible map ``f`` from data ``x`` to a latent ``z = f(x)`` with a
simple density (here the standard normal). The density of ``x`` is exact:

    log p(x) = log N(f(x); 0, I) + log |det df/dx|.

This module holds the mathematics, independent of any network: the base log-density, the
log-determinant by autograd or finite differences (to check a layer's closed form), uniform
dequantization of 8-bit pixels with its bits per dimension, the logit pre-processing with its
log-determinant, and sampling at a temperature. The layers are in ``genlab.models.flow``.

See: book/07_diffusion/normalizing_flows.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from genlab.runtime import eval_mode

__all__ = ["autograd_log_det", "dequantize", "dequantized_bits_per_dim", "flow_log_prob", "logit_transform",
           "logit_transform_inverse", "numerical_log_det", "standard_normal_log_prob", "temperature_noise",
           "bits_per_dim_8bit"]

LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) per example, summed over every dimension but the first: (B, ...) -> (B,).

    ``-0.5 * sum(z**2) - 0.5 * D * log(2 pi)`` with ``D`` the values per example.
    See: book/07_diffusion/normalizing_flows.ipynb.
    """
    if z.dim() < 2:
        raise ValueError(f"expected a batch (B, ...), got shape {tuple(z.shape)}; add a batch dimension")
    flat = z.reshape(len(z), -1)  # (B, D)
    return -0.5 * flat.pow(2).sum(dim=1) - 0.5 * flat.shape[1] * LOG_2PI


def flow_log_prob(flow: nn.Module, x: Tensor) -> Tensor:
    """log p(x) = log N(z; 0, I) + log |det dz/dx| for a flow ``flow(x) -> (z, logdet)``: (B, ...) -> (B,).

    See: book/07_diffusion/normalizing_flows.ipynb.
    """
    z, logdet = flow(x)
    return standard_normal_log_prob(z) + logdet


def _per_example_jacobians(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """The Jacobian of ``fn`` at each example of x, as (B, D, D) (``fn`` maps (B, ...) to (B, ...))."""
    batch = len(x)
    rows = []
    for i in range(batch):
        xi = x[i:i + 1]

        def single(v: Tensor, shape=xi.shape) -> Tensor:
            return fn(v.reshape(shape)).reshape(-1)  # (D,)

        rows.append(torch.autograd.functional.jacobian(single, xi.reshape(-1)))  # (D, D)
    return torch.stack(rows)  # (B, D, D)


def autograd_log_det(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """log |det J_fn(x)| per example from the full Jacobian built by autograd: (B, ...) -> (B,).

    ``fn`` maps a batch to a batch of the same size (an invertible layer's output ``z`` only).
    Costs D backward passes per example: a check for small D (2-D points, tiny images), not a tool
    for training. See: book/07_diffusion/normalizing_flows.ipynb.
    """
    if x.dim() < 2:
        raise ValueError(f"expected a batch (B, ...), got shape {tuple(x.shape)}")
    jacobians = _per_example_jacobians(fn, x.double() if x.dtype == torch.float64 else x)
    return torch.linalg.slogdet(jacobians)[1]  # (B,)


def numerical_log_det(fn: Callable[[Tensor], Tensor], x: Tensor, eps: float = 1e-5) -> Tensor:
    """log |det J_fn(x)| per example by central finite differences: (B, D) -> (B,).

    Column j of the Jacobian is ``(fn(x + eps e_j) - fn(x - eps e_j)) / (2 eps)``; use float64.
    See: book/07_diffusion/normalizing_flows.ipynb.
    """
    if x.dim() != 2:
        raise ValueError(f"expected points of shape (B, D), got {tuple(x.shape)}; flatten images first")
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    batch, dim = x.shape
    columns = []
    for j in range(dim):
        step = torch.zeros_like(x)
        step[:, j] = eps
        columns.append((fn(x + step) - fn(x - step)).reshape(batch, dim) / (2 * eps))  # (B, D)
    jacobians = torch.stack(columns, dim=2)  # (B, D, D): [b, i, j] = d fn_i / d x_j
    return torch.linalg.slogdet(jacobians)[1]


def dequantize(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Uniform dequantization of 8-bit images: ``y = (k + u) / 256`` with ``k = round(255 x)`` in 0..255
    and ``u ~ U[0, 1)`` per pixel, so y lies in [0, 1) and each pixel value owns a cell of width 1/256.

    ``images``: (B, C, H, W) in [0, 1] (``load_mnist`` stores k / 255). A density on y gives a lower
    bound on the log-probability of the discrete pixels (see :func:`bits_per_dim_8bit`).
    See: book/07_diffusion/normalizing_flows.ipynb.
    """
    if images.min() < 0 or images.max() > 1:
        raise ValueError(f"dequantize needs images in [0, 1] (k / 255), got [{images.min():.3g}, "
                         f"{images.max():.3g}]; map them with genlab.data.to_unit_range first")
    levels = (images * 255).round()  # (B, C, H, W) integers 0..255
    where = generator.device if generator is not None else images.device
    u = torch.rand(images.shape, generator=generator, device=where).to(images.device, images.dtype)
    return (levels + u) / 256


def bits_per_dim_8bit(log_prob: Tensor, num_dims: int) -> Tensor:
    """Bits per dimension of 8-bit data from log p(y) of dequantized y in [0, 1)^D: (B,) -> (B,).

    ``bpd = -log p(y) / (D ln 2) + 8``. The density of ``v = 256 y`` (pixel units) is
    ``p(y) / 256^D``, and by Jensen ``log P(k) >= E_u log p_v(k + u)``, so this is an upper bound on
    the discrete model's bits/dim. A uniform density on [0, 1)^D (log p = 0) gives exactly 8.
    See: book/07_diffusion/normalizing_flows.ipynb.
    """
    if num_dims < 1:
        raise ValueError(f"num_dims must be >= 1, got {num_dims}")
    return -log_prob / (num_dims * math.log(2.0)) + 8.0


@torch.no_grad()
def dequantized_bits_per_dim(flow: nn.Module, images: Tensor, batch_size: int = 250,
                             generator: torch.Generator | None = None) -> dict[str, float]:
    """Test-set bits/dim of a flow on 8-bit images: mean of :func:`bits_per_dim_8bit` over images,
    one dequantization draw each. ``flow.log_prob(y)`` must give log p(y) for y in [0, 1)^D.

    Returns dict(bits_per_dim, nats (per image, of the 8-bit data), num_images). Eval mode, no gradients.
    See: book/07_diffusion/normalizing_flows.ipynb.
    """
    if images.dim() != 4 or len(images) == 0:
        raise ValueError(f"expected images (N, C, H, W), got {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(flow.parameters()).device
    num_dims = images[0].numel()
    total = 0.0
    with eval_mode(flow):
        for start in range(0, len(images), batch_size):
            y = dequantize(images[start:start + batch_size].to(device), generator)
            total += bits_per_dim_8bit(flow.log_prob(y).double(), num_dims).sum().item()
    bpd = total / len(images)
    if not math.isfinite(bpd):
        raise ValueError(f"bits/dim is not finite ({bpd}): the flow returned NaN or inf log-densities")
    return {"bits_per_dim": bpd, "nats": bpd * num_dims * math.log(2.0), "num_images": len(images)}


def logit_transform(y: Tensor, alpha: float = 0.05) -> tuple[Tensor, Tensor]:
    """``x = logit(alpha + (1 - 2 alpha) y)`` for y in [0, 1] (RealNVP's pre-processing), with
    log |det dx/dy| per example: (B, ...) -> ((B, ...), (B,)).

    Squeezing y away from 0 and 1 keeps the logit finite; the map is elementwise, so its log-det is
    ``sum log(1 - 2 alpha) - log s - log(1 - s)`` with ``s = alpha + (1 - 2 alpha) y``.
    See: book/07_diffusion/normalizing_flows.ipynb.
    """
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    s = alpha + (1 - 2 * alpha) * y
    x = torch.log(s) - torch.log1p(-s)
    logdet = (math.log(1 - 2 * alpha) - torch.log(s) - torch.log1p(-s)).reshape(len(y), -1).sum(dim=1)
    return x, logdet


def logit_transform_inverse(x: Tensor, alpha: float = 0.05) -> Tensor:
    """The inverse of :func:`logit_transform`: ``y = (sigmoid(x) - alpha) / (1 - 2 alpha)``.

    See: book/07_diffusion/normalizing_flows.ipynb.
    """
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    return (torch.sigmoid(x) - alpha) / (1 - 2 * alpha)


def temperature_noise(shape: tuple[int, ...], temperature: float = 1.0, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> Tensor:
    """Base samples for a flow at a temperature: ``z = T * eps``, eps ~ N(0, I), i.e. z ~ N(0, T^2 I).

    ``T < 1`` samples from (a density proportional to) ``p_z(z)^(1/T^2)`` in latent space:
    typical but less varied samples (Kingma and Dhariwal, 2018, Glow).
    See: book/07_diffusion/normalizing_flows.ipynb.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    where = generator.device if generator is not None else device
    return temperature * torch.randn(shape, generator=generator, device=where).to(device)
