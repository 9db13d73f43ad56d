"""PixelCNNTask: an autoregressive image model trained on the exact NLL of binarized images (Part 7).

See: book/07_diffusion/pixelcnn.ipynb.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genlab.autoregressive import bernoulli_nll, check_binary, sample_autoregressive
from genlab.runtime import eval_mode
from genlab.tasks.base import Task, _range_error

__all__ = ["PixelCNNTask"]


class PixelCNNTask(Task):
    """A PixelCNN (``genlab.models.pixelcnn``) trained by minimising the mean exact NLL in nats per image.

    ``binarize=True`` (the default) draws ``x ~ Bernoulli(pixels)`` afresh for every batch
    (dynamic binarization, the protocol of the likelihood literature, as ``VAETask(binarize=True)``),
    so the data may be grey images in [0, 1]; ``binarize=False`` trains on the images as they
    are, which must then be 0s and 1s. Metrics: ``loss`` (nats per image) and ``bits_per_dim``.
    ``sample(n)`` runs the network once per pixel (:func:`genlab.autoregressive.sample_autoregressive`).
    See: book/07_diffusion/pixelcnn.ipynb.
    """

    divergence_hint = "lower the learning rate, or check the images are finite and in [0, 1]"

    def __init__(self, model: nn.Module, lr: float = 1e-3, binarize: bool = True) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.model, self.binarize = model, binarize
        self.models = {"pixelcnn": model}
        self.optimizers = {"pixelcnn": torch.optim.Adam(model.parameters(), lr=lr)}

    def check_data(self, images: Tensor, labels: Tensor | None) -> None:
        if images.min() < 0 or images.max() > 1:
            raise _range_error(images, (0.0, 1.0), "PixelCNNTask (its pixels are Bernoulli probabilities)")
        if not self.binarize:
            check_binary(images, "PixelCNNTask(binarize=False)")

    def training_step(self, batch: tuple, step: int, generator: torch.Generator | None = None) -> dict:
        images, _ = batch
        x = torch.bernoulli(images, generator=generator) if self.binarize else images  # (B, 1, 28, 28) in {0, 1}
        with self.autocast():
            logits = self.model(x)  # (B, 1, 28, 28): all 784 conditionals in one pass
        loss = bernoulli_nll(logits, x).mean()  # nats per image
        self.update("pixelcnn", loss)
        loss = loss.detach()
        return {"loss": loss, "bits_per_dim": loss / (x[0].numel() * math.log(2.0))}

    @torch.no_grad()
    def sample(self, n: int, labels=None, generator: torch.Generator | None = None) -> Tensor:
        """``n`` binary images (n, 1, H, W) in {0, 1}, drawn pixel by pixel (H x W network passes)."""
        self.labels_for(labels, n, self.model)  # unconditional: refuses labels with a clear message
        shape = getattr(self.model, "image_shape", (1, 28, 28))
        with eval_mode(self.model):
            return sample_autoregressive(self.model, n, shape, generator=generator)
