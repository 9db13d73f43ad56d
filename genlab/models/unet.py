"""A small U-Net for diffusion and flow matching on 28x28 images (Ronneberger et al., 2015).

The network predicts a tensor of the input's shape (the noise ``eps`` for DDPM, the velocity
for flow matching) from a noisy image ``x``, a time ``t`` and optionally a class label::

    x (B, 1, 28, 28) --pixel-unshuffle--> (B, 4, 14, 14)      # fold 2x2 pixels into channels
      stem conv -> C channels at 14x14
      level 0 (14x14, C)     : residual blocks ----------------------------- skip ---+
      downsample (stride 2)                                                          |
      level 1 (7x7, 2C)      : residual blocks --------------- skip ---+             |
      middle (7x7)           : residual block, self-attention, residual block        |
      level 1 up (7x7)       : concat skip, residual blocks <----------+             |
      upsample (nearest x2)                                                          |
      level 0 up (14x14)     : concat skip, residual blocks <------------------------+
      out conv -> 4 channels --pixel-shuffle--> (B, 1, 28, 28)

Every residual block adds a projection of the *conditioning vector* to its feature maps:
the time ``t`` (a float, e.g. the DDPM step 1..1000 or 1000 * s for flow matching) goes
through sinusoidal features and a small MLP; a label embedding is added to it. A conditional
model (``num_classes=K``) has K + 1 label embeddings: index K is the *null* label that
classifier-free guidance uses for the unconditional prediction (``labels=None`` means "all
null"). The output convolution starts at zero, so the untrained network predicts 0.

Pixel-unshuffle (``pixel_unshuffle=True``, the default) halves the resolution before the first
convolution: on a CPU a step costs about a quarter as much as at 28x28, which decides how far a
few minutes of training get. See: book/07_diffusion/diffusion_mnist.ipynb.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PRETRAINED_UNETS", "UNet", "load_unet_weights", "save_unet_weights", "timestep_embedding"]

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
# The shipped, longer-trained networks (weights float16, a card .json/.md beside each).
PRETRAINED_UNETS: dict[str, Path] = {"mnist_flow": ASSETS_DIR / "mnist_flow_unet.pt"}
WEIGHTS_FORMAT = "genlab-unet-v1"
REGENERATE_HINT = "regenerate it with `python scripts/train_diffusion.py` (from the repository root)"


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal features of the times ``t`` (B,): (B, dim), as in the Transformer and DDPM.

    Half the features are ``cos(t * f_k)``, half ``sin(t * f_k)``, with frequencies ``f_k``
    from 1 down to ``1 / max_period`` (geometric). See: book/07_diffusion/diffusion_mnist.ipynb.
    """
    if t.dim() != 1:
        raise ValueError(f"t must be a 1-D tensor of times (B,), got shape {tuple(t.shape)}")
    if dim < 2 or dim % 2:
        raise ValueError(f"dim must be an even int >= 2, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)  # (B, dim)


def _groups(channels: int) -> int:
    """GroupNorm groups: 8 when they divide the channels, else the largest divisor <= 8."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, add the projected conditioning vector, GroupNorm-SiLU-conv, plus a skip."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.cond = nn.Linear(cond_dim, out_channels)
        self.norm2 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:  # x (B, Cin, H, W), cond (B, cond_dim)
        h = self.conv1(F.silu(self.norm1(x)))  # (B, Cout, H, W)
        h = h + self.cond(cond)[:, :, None, None]  # the time (and label) enter every block
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Single-head self-attention over the H*W positions (used at 7x7 only: 49 tokens, cheap)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W)
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).unbind(1)  # 3 x (B, C, HW)
        h = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # (B, HW, C)
        return x + self.out(h.transpose(1, 2).reshape(B, C, H, W))


class UNet(nn.Module):
    """A small conditional U-Net: ``model(x, t, labels=None) -> tensor shaped like x``.

    ``base_channels`` C: channels at the first level; ``channel_mults``: one multiplier per
    level (each level after the first halves the resolution); ``num_res_blocks`` per level;
    ``attention``: self-attention in the middle (lowest resolution); ``num_classes``: class-
    conditional with a null label at index ``num_classes`` (``labels=None`` selects it);
    ``pixel_unshuffle``: fold 2x2 pixels into channels first (28x28x1 -> 14x14x4).
    ``t`` is a float tensor (B,) (a Python number or a 0-d tensor is broadcast).
    See: book/07_diffusion/diffusion_mnist.ipynb.
    """

    def __init__(self, in_channels: int = 1, base_channels: int = 32, channel_mults: Sequence[int] = (1, 2),
                 num_res_blocks: int = 1, attention: bool = True, num_classes: int | None = None,
                 pixel_unshuffle: bool = True, image_size: int = 28) -> None:
        super().__init__()
        if in_channels < 1 or base_channels < 1 or num_res_blocks < 1 or not channel_mults:
            raise ValueError(f"need in_channels, base_channels, num_res_blocks >= 1 and at least one channel "
                             f"multiplier; got {in_channels}, {base_channels}, {num_res_blocks}, {channel_mults}")
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
            raise ValueError(f"num_classes must be None or an int >= 2, got {num_classes!r}")
        factor = (2 if pixel_unshuffle else 1) * 2 ** (len(channel_mults) - 1)
        if image_size % factor:
            raise ValueError(f"image_size {image_size} must be divisible by {factor} (pixel-unshuffle and "
                             f"{len(channel_mults) - 1} downsamplings); use fewer channel_mults")
        self.in_channels, self.image_size, self.num_classes = in_channels, image_size, num_classes
        self.base_channels, self.pixel_unshuffle = base_channels, pixel_unshuffle
        self.config = {"in_channels": in_channels, "base_channels": base_channels,
                       "channel_mults": list(channel_mults), "num_res_blocks": num_res_blocks,
                       "attention": attention, "num_classes": num_classes,
                       "pixel_unshuffle": pixel_unshuffle, "image_size": image_size}
        cond_dim = 4 * base_channels
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        # K + 1 label embeddings: index K is the null label of classifier-free guidance
        self.label_embedding = nn.Embedding(num_classes + 1, cond_dim) if num_classes is not None else None

        stem_in = in_channels * 4 if pixel_unshuffle else in_channels
        self.stem = nn.Conv2d(stem_in, base_channels, 3, padding=1)
        widths = [base_channels * m for m in channel_mults]
        self.down_blocks, self.downsamples = nn.ModuleList(), nn.ModuleList()
        skip_widths, channels = [], base_channels
        for level, width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(channels, width, cond_dim))
                channels = width
                skip_widths.append(channels)
            self.down_blocks.append(blocks)
            last = level == len(widths) - 1
            self.downsamples.append(nn.Identity() if last else nn.Conv2d(channels, channels, 3, stride=2, padding=1))
        self.mid1 = ResBlock(channels, channels, cond_dim)
        self.mid_attention = SelfAttention(channels) if attention else nn.Identity()
        self.mid2 = ResBlock(channels, channels, cond_dim)
        self.up_blocks, self.upsamples = nn.ModuleList(), nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(channels + skip_widths.pop(), width, cond_dim))
                channels = width
            self.up_blocks.append(blocks)
            self.upsamples.append(nn.Identity() if level == 0 else nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, widths[level - 1], 3, padding=1)))
            if level:
                channels = widths[level - 1]
        self.out_norm = nn.GroupNorm(_groups(channels), channels)
        self.out = nn.Conv2d(channels, stem_in, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # the untrained network predicts 0
        nn.init.zeros_(self.out.bias)

    def condition(self, t: Tensor, labels: Tensor | None, batch_size: int) -> Tensor:
        """The conditioning vector (B, 4C): MLP(sinusoidal(t)) + label embedding (null if None)."""
        cond = self.time_mlp(timestep_embedding(t, self.base_channels))  # (B, 4C)
        if self.label_embedding is None:
            if labels is not None:
                raise ValueError("this UNet is unconditional (num_classes=None) but labels were passed; "
                                 "build it with num_classes=K to condition on labels")
            return cond
        if labels is None:  # the null label: the unconditional prediction
            labels = torch.full((batch_size,), self.num_classes, dtype=torch.long, device=t.device)
        if labels.shape != (batch_size,) or labels.is_floating_point():
            raise ValueError(f"labels must be an integer tensor of shape ({batch_size},), got "
                             f"{tuple(labels.shape)} {labels.dtype}")
        if bool(((labels < 0) | (labels > self.num_classes)).any()):
            raise ValueError(f"labels must lie in [0, {self.num_classes}] ({self.num_classes} = the null label), "
                             f"got values from {int(labels.min())} to {int(labels.max())}")
        return cond + self.label_embedding(labels.long())

    def forward(self, x: Tensor, t: Tensor | float, labels: Tensor | None = None) -> Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"expected x of shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        B = x.shape[0]
        t = torch.as_tensor(t, dtype=torch.float32, device=x.device)
        if t.dim() == 0:
            t = t.expand(B)
        if t.shape != (B,):
            raise ValueError(f"t must be a float tensor of shape ({B},) (one time per image), got {tuple(t.shape)}")
        cond = self.condition(t, labels, B)  # (B, 4C)
        h = F.pixel_unshuffle(x, 2) if self.pixel_unshuffle else x  # (B, 4, 14, 14)
        h = self.stem(h)  # (B, C, 14, 14)
        skips = []
        for blocks, down in zip(self.down_blocks, self.downsamples):
            for block in blocks:
                h = block(h, cond)
                skips.append(h)
            h = down(h)  # halves H and W, except after the last level
        h = self.mid2(self.mid_attention(self.mid1(h, cond)), cond)  # (B, C_last, 7, 7)
        for blocks, up in zip(self.up_blocks, self.upsamples):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), cond)
            h = up(h)  # doubles H and W, except after the first level
        h = self.out(F.silu(self.out_norm(h)))  # (B, 4, 14, 14)
        return F.pixel_shuffle(h, 2) if self.pixel_unshuffle else h  # (B, 1, 28, 28)


def save_unet_weights(model: UNet, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights as float16 with its config and ``metadata``, atomically.

    See: scripts/train_diffusion.py and book/07_diffusion/flow_matching.ipynb.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
             for k, v in model.state_dict().items()}
    payload = {"format": WEIGHTS_FORMAT, "config": dict(model.config), "state_dict": state,
               "metadata": dict(metadata or {})}
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp_name)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return path


def load_unet_weights(path: str | Path = PRETRAINED_UNETS["mnist_flow"],
                      device: str | torch.device | None = None) -> tuple[UNet, dict[str, Any]]:
    """``(model, metadata)`` from a file of :func:`save_unet_weights`: float32, eval mode, frozen.

    Loads with ``weights_only=True`` (no code runs); never downloads. A missing, corrupt or
    foreign file raises a ``RuntimeError`` saying how to regenerate it.
    See: book/07_diffusion/flow_matching.ipynb.
    """
    from genlab.runtime import get_device

    path = Path(path)
    if not path.exists():
        raise RuntimeError(f"U-Net weights {path.name} not found; {REGENERATE_HINT}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged pickle fails in many ways
        raise RuntimeError(f"U-Net weights {path.name} are corrupt or unreadable ({type(error).__name__}); "
                           f"{REGENERATE_HINT}") from error
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise RuntimeError(f"{path.name} is not a genlab U-Net file (expected format {WEIGHTS_FORMAT!r}); "
                           f"{REGENERATE_HINT}")
    model = UNet(**payload["config"])
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()})
    model.requires_grad_(False)
    return model.to(get_device(device)).eval(), payload["metadata"]
