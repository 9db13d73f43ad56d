"""VAETask: a VAE trained on the negative ELBO (Part 3).

See: book/03_vae/mnist_vae.ipynb.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.losses import elbo, iwae_bound
from genlab.runtime import eval_mode
from genlab.tasks.base import Task, _check_labels, _range_error

__all__ = ["VAETask"]


class VAETask(Task):
    """A VAE trained by minimising ``-mean ELBO`` (``genlab.losses.elbo``).

    ``beta`` weights the KL (beta-VAE); with ``kl_warmup_steps`` > 0 it ramps linearly
    ``beta_t = beta * min(1, t / kl_warmup_steps)``; ``free_bits`` floors each latent
    dimension's KL; ``binarize=True`` draws ``x ~ Bernoulli(pixels)`` afresh for every batch
    (the IWAE protocol). Metrics: ``loss``, ``reconstruction``, ``kl`` (nats), ``beta``.
    ``iwae_samples=k > 1`` trains on the importance-weighted bound ``L_k`` instead (Burda et al.
    2016; ``genlab.losses.iwae_bound``, k decoder passes per image): ``loss`` is ``-mean L_k``, a
    tighter bound than the ELBO, and the metrics are ``loss`` and ``beta`` only.
    See: book/03_vae/mnist_vae.ipynb (beta and free bits: book/03_vae/beta_vae.ipynb).
    """

    def __init__(self, model: nn.Module, lr: float = 1e-3, beta: float = 1.0, free_bits: float = 0.0,
                 kl_warmup_steps: int = 0, binarize: bool = False, iwae_samples: int = 1) -> None:
        if beta < 0 or free_bits < 0 or kl_warmup_steps < 0:
            raise ValueError(f"beta, free_bits and kl_warmup_steps must be >= 0, got {beta}, {free_bits}, "
                             f"{kl_warmup_steps}")
        if iwae_samples < 1:
            raise ValueError(f"iwae_samples must be >= 1 (1: the ELBO), got {iwae_samples}")
        if iwae_samples > 1 and (beta != 1.0 or free_bits > 0 or kl_warmup_steps > 0):
            raise ValueError("the importance-weighted bound (iwae_samples > 1) has no KL term to weight: "
                             "leave beta=1, free_bits=0 and kl_warmup_steps=0")
        self.iwae_samples = iwae_samples
        self.model, self.beta, self.free_bits = model, beta, free_bits
        self.kl_warmup_steps, self.binarize = kl_warmup_steps, binarize
        self.conditional = getattr(model, "num_classes", None) is not None
        self.models = {"vae": model}
        self.optimizers = {"vae": torch.optim.Adam(model.parameters(), lr=lr)}

    divergence_hint = "lower the learning rate, or check the images are finite and in [0, 1]"

    def check_data(self, images: Tensor, labels: Tensor | None) -> None:
        if images.min() < 0 or images.max() > 1:
            raise _range_error(images, (0.0, 1.0), "VAETask (its decoders model pixels in [0, 1])")
        if self.conditional:
            _check_labels(labels, self.model.num_classes, "VAETask")

    def beta_at(self, step: int) -> float:
        """The KL weight used at ``step`` (1-based)."""
        if self.kl_warmup_steps == 0:
            return self.beta
        return self.beta * min(1.0, step / self.kl_warmup_steps)

    def training_step(self, batch: tuple, step: int, generator: torch.Generator | None = None) -> dict:
        images, labels = batch
        x = torch.bernoulli(images, generator=generator) if self.binarize else images  # (B, 1, 28, 28)
        beta = self.beta_at(step)
        if self.iwae_samples > 1:
            with self.autocast():
                bound = iwae_bound(self.model, x, self.iwae_samples, labels if self.conditional else None,
                                   generator=generator)  # (B,)
                loss = -bound.float().mean()
            self.update("vae", loss)
            return {"loss": loss.detach(), "beta": beta}
        with self.autocast():
            terms = elbo(self.model, x, labels if self.conditional else None, beta=beta,
                         free_bits=self.free_bits, generator=generator)
            loss = -terms.elbo.float().mean()
        self.update("vae", loss)
        return {"loss": loss.detach(), "reconstruction": terms.reconstruction.detach().float().mean(),
                "kl": terms.kl.detach().float().mean(), "beta": beta}

    @torch.no_grad()
    def sample(self, n: int, labels=None, generator: torch.Generator | None = None) -> Tensor:
        """``n`` images in [0, 1] (``model.sample`` in eval mode; ``labels``: see :meth:`Task.labels_for`)."""
        labels = self.labels_for(labels, n, self.model)
        with eval_mode(self.model):
            return self.model.sample(n, labels=labels, generator=generator).float()
