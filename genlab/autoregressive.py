"""Autoregressive pixels: the chain rule for images, exact NLL, the sequential sampler, dependency maps.

An autoregressive model orders the D pixels (raster order: row by row, left to right) and
applies the chain rule of probability, which holds for ANY distribution::

    p(x) = p(x_1) p(x_2 | x_1) ... p(x_D | x_1, ..., x_{D-1}) = prod_i p(x_i | x_<i)

For binary pixels each factor is a Bernoulli with probability ``sigmoid(logit_i(x_<i))``, so
the negative log-likelihood is exact (no bound, no sampling) and is a sum of per-pixel binary
cross-entropies, in nats::

    -log p(x) = sum_i BCE(logit_i, x_i)

Training evaluates all D conditionals in one pass (the true pixels are known: *teacher
forcing*); sampling cannot, because x_i must be drawn before x_{i+1} can be conditioned on
it: D = 784 sequential network passes for an MNIST digit.

See: book/07_diffusion/pixelcnn.ipynb.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.runtime import eval_mode

__all__ = ["bernoulli_nll", "check_binary", "dependency_map", "exact_nll", "raster_predecessors",
           "sample_autoregressive"]


def check_binary(images: Tensor, who: str = "this function") -> None:
    """Raise a ValueError unless ``images`` holds only 0s and 1s (binarize grey images first)."""
    if not torch.is_tensor(images) or not images.is_floating_point():
        raise ValueError(f"{who} needs a float tensor of 0s and 1s, got {type(images).__name__} "
                         f"{getattr(images, 'dtype', '')}")
    if images.numel() and not bool(((images == 0) | (images == 1)).all()):
        low, high = images.min().item(), images.max().item()
        raise ValueError(f"{who} models binary pixels but got values in [{low:.3g}, {high:.3g}] that are not all "
                         "0 or 1: binarize them first (genlab.data.binarize(images) for images in [0, 1])")


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """Exact ``-log p(x)`` in nats per image of binary images under per-pixel Bernoulli logits.

    ``sum_i BCE(logit_i, x_i) = -sum_i [x_i log sigmoid(l_i) + (1 - x_i) log(1 - sigmoid(l_i))]``
    over every dimension but the first: (B, ...) logits and images -> (B,). All logits 0
    (every pixel 1/2) give ``D log 2``, 543.43 nats for 784 pixels.
    See: book/07_diffusion/pixelcnn.ipynb.
    """
    if logits.shape != x.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and images {tuple(x.shape)} must have the same shape")
    check_binary(x, "bernoulli_nll")
    bce = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none")  # (B, ...)
    return bce.flatten(1).sum(dim=1)  # (B,)


def exact_nll(model: nn.Module, images: Tensor, batch_size: int = 250) -> dict[str, float]:
    """The exact test NLL of an autoregressive model of binary images (one forward pass per batch).

    Returns ``dict(nats, bits_per_dim)``: the mean of :func:`bernoulli_nll` over ``images``
    (N, 1, H, W) in {0, 1}, and ``nats / (D ln 2)``. Runs in eval mode without gradients and
    restores the model's mode. Compare with a VAE's IWAE bound (``genlab.likelihood``) on the
    SAME binary images: that one is an upper bound on the NLL, this one is the NLL.
    See: book/07_diffusion/pixelcnn.ipynb.
    """
    if images.dim() != 4 or len(images) == 0:
        raise ValueError(f"expected a non-empty batch of images (N, C, H, W), got shape {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    check_binary(images, "exact_nll")
    device = next(model.parameters()).device
    total = 0.0
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(device)  # (b, 1, H, W)
            total += bernoulli_nll(model(x), x).double().sum().item()
    nats = total / len(images)
    return {"nats": nats, "bits_per_dim": nats / (images[0].numel() * math.log(2.0))}


@torch.no_grad()
def sample_autoregressive(model: nn.Module, n: int, image_shape: tuple[int, int, int] = (1, 28, 28),
                          generator: torch.Generator | None = None, crop_rows: bool = True) -> Tensor:
    """Draw ``n`` binary images pixel by pixel: one network pass per pixel (784 for MNIST).

    For each pixel i in raster order: ``logits = model(x)``, then ``x_i ~ Bernoulli(sigmoid(
    logit_i))``; pixels after i are still 0 and, by the masks, never read. ``crop_rows=True``
    feeds only the rows up to the current one: masked convolutions never look down, so the
    logits of row r are the same (tested) and a pass costs on average half as much. Returns
    (n, C, H, W) in {0, 1}, on the model's device; eval mode, restored afterwards.
    See: book/07_diffusion/pixelcnn.ipynb.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    channels, height, width = image_shape
    device = next(model.parameters()).device
    x = torch.zeros(n, channels, height, width, device=device)  # (n, C, H, W)
    with eval_mode(model):
        for row in range(height):
            for col in range(width):
                visible = x[:, :, :row + 1] if crop_rows else x  # (n, C, row+1 or H, W)
                probs = torch.sigmoid(model(visible)[:, :, row, col].float())  # (n, C)
                where = generator.device if generator is not None else device
                uniform = torch.rand(probs.shape, generator=generator, device=where).to(device)
                x[:, :, row, col] = (uniform < probs).float()
    return x


def dependency_map(model: nn.Module, position: tuple[int, int], image_shape: tuple[int, int, int] = (1, 28, 28),
                   seed: int = 0) -> Tensor:
    """Which input pixels the output at ``position = (row, col)`` depends on, found by gradients.

    Back-propagates the output logit at ``position`` to a random input (one image, values in
    {0, 1} drawn with ``seed``) and returns ``|d output / d input|`` summed over channels, an
    (H, W) map: zero where the output cannot depend on the pixel. For a PixelCNN the nonzero
    pixels lie before ``position`` in raster order (causality); the pixels before it that are
    zero form the *blind spot*. See: book/07_diffusion/pixelcnn.ipynb.
    """
    channels, height, width = image_shape
    row, col = position
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"position {position} is outside the {height}x{width} image")
    device = next(model.parameters()).device
    x = torch.bernoulli(torch.full((1, channels, height, width), 0.5),
                        generator=torch.Generator().manual_seed(seed)).to(device).requires_grad_(True)
    with eval_mode(model):
        out = model(x)  # (1, C, H, W)
        out[0, :, row, col].sum().backward()
    return x.grad[0].abs().sum(dim=0).detach().cpu()  # (H, W)


def raster_predecessors(position: tuple[int, int], height: int = 28, width: int = 28) -> Tensor:
    """The (H, W) boolean map of the pixels before ``position`` in raster order: all that
    ``p(x_i | x_<i)`` is allowed to (and, ideally, should) see. See: book/07_diffusion/pixelcnn.ipynb."""
    row, col = position
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"position {position} is outside the {height}x{width} image")
    index = torch.arange(height * width).reshape(height, width)
    return index < row * width + col
