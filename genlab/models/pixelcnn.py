"""PixelCNN for binary 28x28 images: masked convolutions, mask A then mask B (van den Oord et al., 2016).

An autoregressive image model factorises ``p(x) = prod_i p(x_i | x_<i)`` over the pixels in
raster order (row by row, left to right). A PixelCNN computes all 784 conditionals in ONE
forward pass during training, because every convolution is *masked*: its kernel is zeroed
wherever it would read a pixel that comes later in raster order::

    mask "A" (first layer; 5x5 shown)     mask "B" (every later layer)
        1 1 1 1 1                             1 1 1 1 1
        1 1 1 1 1                             1 1 1 1 1
        1 1 0 0 0      <- centre row ->       1 1 1 0 0
        0 0 0 0 0                             0 0 0 0 0
        0 0 0 0 0                             0 0 0 0 0

Mask A also hides the centre, so the first layer's output at pixel i never sees x_i itself;
mask B keeps the centre, which is safe afterwards because the feature at i already depends
only on x_<i. Stacks of such layers have a *blind spot* above and to the right of each pixel
(shown in the chapter); the gated PixelCNN's two stacks remove it (van den Oord et al., 2016b).

With one (binary) input channel no channel groups are needed (colour PixelCNNs split the
channels into R, G and B groups as well). See: book/07_diffusion/pixelcnn.ipynb.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MASK_TYPES", "MaskedConv2d", "PixelCNN", "ResidualMaskedBlock", "causal_mask"]

MASK_TYPES = ("A", "B")


def causal_mask(kernel_size: int, mask_type: str) -> Tensor:
    """The (kernel_size, kernel_size) 0/1 mask of a masked convolution: rows above the centre,
    and the centre row left of the centre (mask "A") or up to and including it (mask "B").

    See: book/07_diffusion/pixelcnn.ipynb (the masks drawn).
    """
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be 'A' (first layer, hides the centre) or 'B' (later layers), "
                         f"got {mask_type!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (the kernel needs a centre pixel), got {kernel_size}")
    centre = kernel_size // 2
    mask = torch.ones(kernel_size, kernel_size)
    mask[centre, centre + (mask_type == "B"):] = 0  # the centre row: the centre (A) and everything right of it
    mask[centre + 1:] = 0  # every row below the centre
    return mask


class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded convolution whose kernel is multiplied by :func:`causal_mask` on every call.

    The mask is a buffer (saved with the weights); the weights under the zeros receive zero
    gradient and never matter. See: book/07_diffusion/pixelcnn.ipynb.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str) -> None:
        mask = causal_mask(kernel_size, mask_type)  # validates mask_type and kernel_size first
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.mask_type = mask_type
        self.register_buffer("mask", mask[None, None])  # (1, 1, k, k), broadcast over (out, in)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class ResidualMaskedBlock(nn.Module):
    """The PixelCNN residual block: 1x1 (2h -> h), masked 3x3 "B" (h -> h), 1x1 (h -> 2h), plus the input.

    ReLU before each convolution, as in van den Oord et al. (2016a), Figure 5.
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(2 * channels, channels, 1)
        self.masked = MaskedConv2d(channels, channels, kernel_size, "B")
        self.expand = nn.Conv2d(channels, 2 * channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.reduce(F.relu(x))  # (B, h, H, W)
        h = self.masked(F.relu(h))  # (B, h, H, W), causal
        return x + self.expand(F.relu(h))  # (B, 2h, H, W)


class PixelCNN(nn.Module):
    """A small PixelCNN for binary images: one logit of ``p(x_i = 1 | x_<i)`` per pixel.

    Architecture: a 7x7 mask-"A" convolution (1 -> 2h channels), ``num_blocks`` residual
    blocks with 3x3 mask-"B" convolutions, then two 1x1 convolutions (ReLU between) to one
    logit per pixel. The input ``x`` in {0, 1} enters as ``2x - 1`` so that a black pixel
    (-1) differs from the zero padding at the border.

    ``forward(x) -> logits``, both (B, 1, H, W); the logit at pixel i depends only on the
    pixels before i in raster order (tests/test_autoregressive.py checks this by gradients).
    See: book/07_diffusion/pixelcnn.ipynb.
    """

    def __init__(self, channels: int = 32, num_blocks: int = 5, first_kernel: int = 7, block_kernel: int = 3,
                 output_channels: int = 64, image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__()
        if channels < 1 or num_blocks < 0 or output_channels < 1:
            raise ValueError(f"need channels >= 1, num_blocks >= 0 and output_channels >= 1, got {channels}, "
                             f"{num_blocks}, {output_channels}")
        if image_shape[0] != 1:
            raise ValueError(f"this PixelCNN models single-channel binary images, got image_shape={image_shape}")
        self.image_shape = tuple(image_shape)
        self.first = MaskedConv2d(1, 2 * channels, first_kernel, "A")
        self.blocks = nn.Sequential(*[ResidualMaskedBlock(channels, block_kernel) for _ in range(num_blocks)])
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(2 * channels, output_channels, 1), nn.ReLU(),
                                  nn.Conv2d(output_channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"expected images (B, 1, H, W), got shape {tuple(x.shape)}")
        h = self.first(2 * x - 1)  # (B, 2h, H, W): sees only pixels strictly before each position
        h = self.blocks(h)  # (B, 2h, H, W)
        return self.head(h)  # (B, 1, H, W) logits
