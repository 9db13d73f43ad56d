"""FlowTask: a normalizing flow trained by maximum likelihood (Part 7).

See: book/07_diffusion/normalizing_flows.ipynb.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genlab.flows import bits_per_dim_8bit, dequantize
from genlab.runtime import eval_mode
from genlab.tasks.base import Task, _range_error

__all__ = ["FlowTask"]


class FlowTask(Task):
    """Maximum likelihood for a flow ``model`` with ``forward(x) -> (z, logdet)``, ``inverse``,
    ``log_prob`` and ``sample(n, temperature, generator)`` (``genlab.models.flow``).

    Data: images in [0, 1] (an ``ImageData``; 8-bit pixels k / 255), dequantized afresh for every
    batch (``genlab.flows.dequantize``), with the loss in bits per dimension of the 8-bit data
    (``genlab.flows.bits_per_dim_8bit``: a uniform density scores 8); or 2-D points (N, D), with
    the loss ``-log p(x) / (D ln 2)``, bits per dimension of a continuous density (can be negative).
    Adam with ``lr``, gradients clipped to ``grad_clip`` (None: no clipping). Metric: ``loss``.
    See: book/07_diffusion/normalizing_flows.ipynb.
    """

    divergence_hint = ("lower the learning rate or keep grad_clip on; for images, check they are k / 255 in "
                       "[0, 1] (the logit pre-processing is infinite outside)")

    def __init__(self, model: nn.Module, lr: float = 1e-3, grad_clip: float | None = 10.0) -> None:
        if lr <= 0 or (grad_clip is not None and grad_clip <= 0):
            raise ValueError(f"need lr > 0 and grad_clip > 0 or None, got {lr}, {grad_clip}")
        for method in ("inverse", "log_prob", "sample"):
            if not callable(getattr(model, method, None)):
                raise ValueError(f"FlowTask needs a flow with forward, inverse, log_prob and sample "
                                 f"(genlab.models.flow); {type(model).__name__} has no {method}")
        self.model, self.grad_clip = model, grad_clip
        self.event_shape = tuple(model.event_shape)
        self.models = {"flow": model}
        self.optimizers = {"flow": torch.optim.Adam(model.parameters(), lr=lr)}

    @property
    def is_image(self) -> bool:
        return len(self.event_shape) == 3

    def check_data(self, images: Tensor, labels: Tensor | None) -> None:
        if tuple(images.shape[1:]) != self.event_shape:
            raise ValueError(f"the flow models examples of shape {self.event_shape}, the data has "
                             f"{tuple(images.shape[1:])}")
        if not torch.isfinite(images).all():
            raise ValueError("the data contain NaN or infinite values")
        if self.is_image and (images.min() < 0 or images.max() > 1):
            raise _range_error(images, (0.0, 1.0), "FlowTask (it dequantizes 8-bit pixels k / 255 itself)")

    def loss(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mean negative log-likelihood in bits per dimension of a batch (dequantized when images)."""
        num_dims = math.prod(self.event_shape)
        if self.is_image:
            return bits_per_dim_8bit(self.model.log_prob(dequantize(x, generator)), num_dims).mean()
        return (-self.model.log_prob(x) / (num_dims * math.log(2.0))).mean()

    def training_step(self, batch: tuple, step: int, generator: torch.Generator | None = None) -> dict:
        x, _ = batch  # (B, 1, 28, 28) in [0, 1] or (B, 2)
        # no bf16 autocast: log-determinants are sums of hundreds of terms, and bits/dim differences
        # of 0.01 are differences of ~5 nats in a total of ~1,300; the flow trains in float32
        loss = self.loss(x, generator).float()
        self.update("flow", loss, self.grad_clip)
        return {"loss": loss.detach()}

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples at ``temperature`` (z ~ N(0, T^2 I)), in eval mode. Images come back as
        8-bit pixels k / 255 in [0, 1] (the dequantization cell floor(256 y) of the flow's y);
        points as they are."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        with eval_mode(self.model):
            x = self.model.sample(n, temperature=temperature, generator=generator).float()
        if self.is_image:
            return (x * 256).floor().clamp(0, 255) / 255
        return x
